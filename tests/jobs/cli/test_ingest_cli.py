"""The ingestion commands as a person and a script use them."""

import json

import pytest
from typer.testing import CliRunner

from ingestion.core.config import get_settings
from jobs.cli import app

runner = CliRunner()


@pytest.fixture
def cli_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield tmp_path / "lake"
    get_settings.cache_clear()


@pytest.fixture
def broken_schemas(monkeypatch):
    monkeypatch.setenv("HEADWATER_SCHEMAS_PACKAGE", "tests.jobs.broken_schemas")
    get_settings.cache_clear()  # the settings read the package's name
    yield
    get_settings.cache_clear()


def test_validate_explains_a_broken_contract(broken_schemas):
    result = runner.invoke(app, ["validate", "--json"])
    assert result.exit_code == 1
    problems = {(p["dataset"], p["code"]) for p in json.loads(result.stdout)["problems"]}
    assert problems == {
        ("bad", "format"),
        ("bad", "unknown_type"),
        ("bad", "primary_key"),
        ("bad", "order_by"),
        ("bad", "pattern_overlap"),
    }
    human = runner.invoke(app, ["validate"])
    assert human.exit_code == 1
    assert "'identifier'" in human.stdout and "5 problem(s)" in human.stdout


def test_validate_ok_on_the_shipped_contracts():
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.stdout
    assert "3 dataset(s) valid: customers, members, orders" in result.stdout


def test_ingest_no_run_queues_and_routes_by_dataset(cli_lake, tmp_path):
    src = tmp_path / "export.csv"
    src.write_bytes(b"order_id,customer_id\nO-0001,C-001\n")
    result = runner.invoke(app, ["ingest", str(src), "--dest", "orders/2026/", "--no-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(e["path"], e["outcome"], e["dataset"]) for e in out["events"]] == [
        ("orders/2026/export.csv", "queued", "orders")
    ]
    assert (cli_lake / "landing/orders/2026/export.csv").read_bytes() == src.read_bytes()
    # The same file again is the same event: the ledger makes it a no-op.
    again = json.loads(
        runner.invoke(app, ["ingest", str(src), "--dest", "orders/2026/", "--no-run", "--json"]).stdout
    )
    assert again["events"][0]["outcome"] == "duplicate"


def test_ingest_rejects_hostile_and_unknown_destinations(cli_lake, tmp_path):
    src = tmp_path / "x.csv"
    src.write_bytes(b"a\n1\n")
    hostile = runner.invoke(app, ["ingest", str(src), "--dest", "../../etc/x.csv", "--no-run"])
    assert hostile.exit_code == 2
    assert "path traversal" in hostile.output
    assert not (tmp_path / "etc").exists() and not (cli_lake / "landing").exists()
    other = tmp_path / "notes.txt"
    other.write_bytes(b"?")
    unknown = runner.invoke(app, ["ingest", str(other), "--no-run"])
    assert unknown.exit_code == 1
    assert "fits no dataset; say where it goes with --dest" in unknown.output.replace("\n", " ")


@pytest.mark.spark
def test_ingest_then_status_and_readmit(cli_lake, tmp_path, spark):
    good = tmp_path / "good.csv"
    good.write_bytes(
        b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
        b"O-0001,C-001,new,1.00,1,2026-01-01,,2026-01-01T00:00:00\n"
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["ingest", str(good), str(empty), "--dest", "orders/", "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert (run["rows"], run["files_ingested"], run["files_rejected"]) == (1, 1, 1)
    status = json.loads(runner.invoke(app, ["status", "--dataset", "orders", "--json"]).stdout)
    assert status["ledger"]["orders"] == {"ingested": 1, "rejected": 1}
    assert status["tables"]["orders"]["bronze"] == {"version": 0, "rows": 1}
    assert status["batches"]["orders"][0]["rejected"] == 1
    readmit = json.loads(
        runner.invoke(app, ["readmit", "--dataset", "orders", "--code", "empty", "--json"]).stdout
    )
    assert readmit["readmitted"] == ["orders/empty.csv"]


@pytest.mark.spark
def test_backfill_and_watch_pick_up_files_written_straight_into_landing(cli_lake, spark):
    header = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    target = cli_lake / "landing/orders/2026/direct.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(header + b"O-0100,C-001,new,2.00,1,2026-01-01,,2026-01-01T00:00:00\n")
    queued = json.loads(runner.invoke(app, ["backfill", "--no-run", "--json"]).stdout)
    assert [(e["path"], e["outcome"]) for e in queued["events"]] == [("orders/2026/direct.csv", "queued")]
    # watch: one scan finds nothing new to record, ingests what is queued, then exits.
    later = cli_lake / "landing/orders/2026/later.csv"
    later.write_bytes(header + b"O-0101,C-001,new,3.00,1,2026-01-01,,2026-01-01T00:00:00\n")
    result = runner.invoke(app, ["watch", "--once", "--settle", "0", "--ingest-only"])
    assert result.exit_code == 0, result.output
    assert "queued: orders/2026/later.csv" in result.output
    status = json.loads(runner.invoke(app, ["status", "--dataset", "orders", "--json"]).stdout)
    assert status["ledger"]["orders"] == {"ingested": 2}
    assert status["tables"]["orders"]["bronze"]["rows"] == 2
    assert json.loads(runner.invoke(app, ["backfill", "--json"]).stdout) == {"events": [], "runs": []}
