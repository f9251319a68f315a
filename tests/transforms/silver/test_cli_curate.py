"""``headwater run curate``, ``quarantine show``, ``replay`` and the status sections."""

import json

import pytest
from typer.testing import CliRunner

from ingestion.core.config import get_settings
from jobs.cli import app

ORDERS = ["order_id", "customer_id", "status", "amount", "quantity", "order_date", "ship_date", "updated_at"]


@pytest.fixture
def cli_lake(lake, lake_settings, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    get_settings.cache_clear()
    yield lake
    get_settings.cache_clear()


def test_run_curate_show_quarantine_status(spark, cli_lake, write_bronze):
    good = {
        "order_id": "O-0001",
        "customer_id": "C-001",
        "status": "paid",
        "amount": "5.00",
        "quantity": "1",
        "order_date": "2026-11-01",
        "updated_at": "2026-11-01T10:00:00",
    }
    write_bronze("orders", ORDERS, [good, {**good, "order_id": "O-0002", "amount": "-1"}], batch=1)
    runner = CliRunner()
    res = runner.invoke(app, ["run", "curate", "--dataset", "orders", "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert (rec["status"], rec["rows_written"], rec["rows_quarantined"]) == ("succeeded", 1, 1)
    res = runner.invoke(app, ["quarantine", "show", "--dataset", "orders", "--json"])
    rows = json.loads(res.stdout)
    assert [(r["order_id"], r["amount"], r["_errors"]) for r in rows] == [
        ("O-0002", "-1", [{"column": "amount", "check": "greater_than_or_equal_to", "value": "-1.00"}])
    ]
    res = runner.invoke(app, ["quarantine", "show", "--dataset", "orders"])
    assert res.exit_code == 0 and "greater_than_or_equal_to" in res.stdout
    res = runner.invoke(app, ["status", "--dataset", "orders", "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["quarantine"] == [
        {"dataset": "orders", "column": "amount", "check": "greater_than_or_equal_to", "rows": 1}
    ]
    assert status["runs"][0]["job"] == "curate" and status["runs"][0]["rows_quarantined"] == 1
    res = runner.invoke(app, ["replay", "--dataset", "orders", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["rows_quarantined"] == 1


def test_spark_submit_entry_point_runs_and_reports(spark, cli_lake, write_bronze, capsys):
    from jobs import curate as entry

    assert entry.main(["--dataset", "orders"]) == 0  # no bronze yet: nothing to do
    out = json.loads(capsys.readouterr().out)
    assert (out["job"], out["status"], out["details"]["reason"]) == (
        "curate",
        "skipped",
        "no bronze table yet",
    )


def test_a_held_silver_lease_is_a_clear_refusal_then_waited_for(spark, cli_lake, write_bronze, capsys):
    import threading

    from ingestion.core.lease import Lease
    from jobs import curate as entry

    good = {
        "order_id": "O-0001",
        "customer_id": "C-001",
        "status": "paid",
        "amount": "5.00",
        "quantity": "1",
        "order_date": "2026-11-01",
        "updated_at": "2026-11-01T10:00:00",
    }
    write_bronze("orders", ORDERS, [good], batch=1)
    holder = Lease(cli_lake, "orders", scope="silver", owner="run-7", seconds=60, heartbeat=False).acquire()
    res = CliRunner().invoke(app, ["run", "curate", "--dataset", "orders"])
    assert res.exit_code == 2 and "'orders (silver)' is being written by run run-7" in res.output
    assert entry.main(["--dataset", "orders", "--replay"]) == 2
    assert "being written by run run-7" in capsys.readouterr().err
    threading.Timer(1.0, holder.release).start()
    res = CliRunner().invoke(app, ["run", "curate", "--dataset", "orders", "--lease-wait", "30", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows_written"] == 1
