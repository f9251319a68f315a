"""`headwater batching` and `headwater parked`: what the Function side leaves for people."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ingestion.core.config import get_settings
from ingestion.events import EventHandler, Ledger
from ingestion.poison import PoisonBox


@pytest.fixture
def cli(lake_settings, monkeypatch):
    from jobs.cli import app

    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    monkeypatch.setenv("HEADWATER_BATCHING__DATASETS__ORDERS__MAX_FILES", "2")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_batching_shows_pending_files_against_thresholds(cli, lake, catalog):
    handler = EventHandler(Ledger(lake), catalog)
    handler.file_landed("orders/a.csv", etag='"1"', size=10)
    out = cli("batching", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["orders"]["decision"]["files"] == 1 and data["orders"]["decision"]["due"] is False
    assert data["orders"]["thresholds"]["max_files"] == 2  # the per-dataset override
    assert data["customers"]["decision"]["files"] == 0
    handler.file_landed("orders/b.csv", etag='"1"', size=10)
    data = json.loads(cli("batching", "--json", "--dataset", "orders").output)
    assert (data["orders"]["decision"]["due"], data["orders"]["decision"]["reason"]) == (True, "files")
    table = cli("batching")
    assert table.exit_code == 0 and "orders" in table.output and "yes (files)" in table.output


def test_parked_list_and_release(cli, lake):
    box = PoisonBox(lake, max_attempts=1)

    def boom():
        raise OSError("disk on fire")

    box.guard(boom, path="orders/bad.csv", etag='"7"', dataset="orders")
    out = cli("parked", "list", "--json")
    assert out.exit_code == 0, out.output
    (rec,) = json.loads(out.output)
    assert (rec["path"], rec["reason"], rec["attempts"]) == ("orders/bad.csv", "OSError: disk on fire", 1)

    assert cli("parked", "release", "--dataset", "orders", "--key", rec["key"]).exit_code == 0
    assert json.loads(cli("parked", "list", "--json").output) == []
    missing = cli("parked", "release", "--dataset", "orders", "--key", rec["key"])
    assert missing.exit_code != 0 and "no parked file" in missing.output
