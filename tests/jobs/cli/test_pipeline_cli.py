"""``headwater run pipeline`` as a person and a script use it."""

import json

import pytest
from typer.testing import CliRunner

from ingestion.core.config import get_settings
from jobs.cli import app

runner = CliRunner()
pytestmark = pytest.mark.spark


@pytest.fixture
def cli_lake(lake_settings, monkeypatch):
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    get_settings.cache_clear()
    yield lake_settings.lake.root
    get_settings.cache_clear()


def test_run_pipeline_with_nothing_to_do_and_an_unknown_dataset(spark, cli_lake):
    out = runner.invoke(app, ["run", "pipeline", "--dataset", "orders", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["job"], data["status"]) == ("pipeline", "skipped")
    assert data["outcomes"] == {
        "ingest": "skipped",
        "curate": "skipped",
        "publish:customer_features": "waiting",
    }

    table = runner.invoke(app, ["run", "pipeline", "--dataset", "orders"])
    assert table.exit_code == 0 and "waiting" in table.stdout

    bad = runner.invoke(app, ["run", "pipeline", "--dataset", "nope"])
    assert bad.exit_code == 2 and "no dataset named 'nope'" in bad.output
