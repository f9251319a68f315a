"""No secret value reaches anything headwater writes or prints.

Known secret values are configured everywhere a secret can be (the ABFS client secret's
variable, a SQL source's connection string, spark-submit's extra environment); then ingest and
curate run (with a bad row, so quarantine and the ledger get reasons), a pull fails to connect
with that connection string, and ``settings show`` and ``status`` print. Everything written is
scanned: the log (INFO and DEBUG records of every logger), the CLI's output and its error log,
every file of the lake's system area, landing and quarantine (as bytes), and the rows of every
Delta table (read back through Spark, since Parquet pages are compressed).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingestion.core.config import get_settings
from jobs.cli import app
from jobs.cli.app import LOG_FILE

pytestmark = pytest.mark.spark

SECRETS = {
    "abfs": "abfs-Zx8Q~k2Lm9Np4Rs7Tu1Vw3Yz",
    "sql": "sqlpw-Q3r7T9u2W5",
    "token": "tok-Ab3De6Gh9Jk2",
}
ORDERS = (
    "order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    "O-0001,C-001,paid,5.00,1,2026-11-01,,2026-11-01T10:00:00\n"
    "O-0002,C-001,paid,-1,1,2026-11-01,,2026-11-01T10:00:00\n"
)


@pytest.fixture
def secret_env(lake_settings, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("HEADWATER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    monkeypatch.setenv("HEADWATER_ABFS_CLIENT_SECRET", SECRETS["abfs"])
    monkeypatch.setenv("HEADWATER_SUBMIT__ENV", json.dumps({"API_TOKEN": SECRETS["token"]}))
    # A connection string whose driver does not exist: the pull fails, and says so without it.
    monkeypatch.setenv(
        "CLUB_SQL_CONNECTION", f"Driver={{No Such Driver}};Database=club;Uid=hw;Pwd={SECRETS['sql']};"
    )
    get_settings.cache_clear()
    yield lake_settings.lake.root
    get_settings.cache_clear()


def _delta_tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if p.is_dir())


def test_no_secret_value_is_logged_stored_or_printed(spark, secret_env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    before = LOG_FILE.read_text() if LOG_FILE.exists() else ""
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS)
    printed = []
    for args in (
        ["-v", "ingest", str(src), "--dest", "orders/2026/", "--json"],
        ["-v", "run", "curate", "--dataset", "orders", "--json"],
        ["-v", "pull", "--source", "club", "--json"],
        ["settings", "show", "--json"],
        ["settings", "show"],
        ["status", "--json"],
    ):
        out = runner.invoke(app, args)
        printed.append(out.output)
        if args[1:3] == ["run", "curate"]:
            record = json.loads(out.stdout)
            # The run did what it should (so the scan below covers real output, not an empty lake).
            assert (record["status"], record["rows_written"], record["rows_quarantined"]) == (
                "succeeded",
                1,
                1,
            ), out.output
        if args[1] == "pull":
            assert out.exit_code != 0 and "could not connect" in out.output

    settings_rows = json.loads(printed[3])["settings"]
    assert {r["setting"]: r["value"] for r in settings_rows}["submit.env.API_TOKEN"] == "<redacted>"

    written: dict[str, str] = {"cli output": "\n".join(printed), "log records": caplog.text}
    if LOG_FILE.exists():
        written["cli error log"] = LOG_FILE.read_text()[len(before) :]
    root = Path(secret_env)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any("system" in p.parts for p in files) and any("quarantine" in p.parts for p in files)
    for path in files:
        written[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    tables = _delta_tables(root)
    assert {t.relative_to(root).as_posix() for t in tables} >= {
        "bronze/orders",
        "silver/orders",
        "quarantine/orders/rows",
    }
    for table in tables:
        rows = spark.read.format("delta").load(str(table)).collect()
        written[f"rows of {table.relative_to(root)}"] = "\n".join(str(r.asDict()) for r in rows)

    leaks = [
        (where, name) for where, text in written.items() for name, value in SECRETS.items() if value in text
    ]
    assert leaks == []
    # The scan can see: the secrets are where they were put.
    assert os.environ["HEADWATER_ABFS_CLIENT_SECRET"] == SECRETS["abfs"]
    assert get_settings().secret("CLUB_SQL_CONNECTION").get_secret_value().endswith(f"Pwd={SECRETS['sql']};")
