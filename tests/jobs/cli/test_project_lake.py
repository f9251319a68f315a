"""Every command finds the project's lake the same way, and the demo advises commands that work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ingestion.contracts import Catalog
from ingestion.core.config import LakeSettings, Settings, get_settings
from ingestion.core.profiles import resolve
from ingestion.core.storage import open_storage
from ingestion.events import EventHandler, Ledger
from jobs.cli import app
from jobs.cli.demo import demo_lake

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("HEADWATER_"):
            monkeypatch.delenv(name)
    root = tmp_path / "proj"
    (root / "environments").mkdir(parents=True)
    (root / "headwater.toml").write_text('[lake]\nroot = "lake"\n')
    (root / "environments" / "qa.toml").write_text('[lake]\nkind = "azure"\naccount = "hwqa"\n')
    get_settings.cache_clear()
    yield root.resolve()
    get_settings.cache_clear()


def test_a_command_run_anywhere_in_the_project_reads_the_project_lake(project, monkeypatch):
    lake = project / "lake"
    settings = Settings(lake=LakeSettings(kind="local", root=lake))
    EventHandler(Ledger(open_storage(settings)), Catalog.discover(settings=settings)).file_landed(
        "orders/a.csv", etag='"1"', size=10
    )
    sub = project / "schemas"
    sub.mkdir()
    monkeypatch.chdir(sub)
    out = runner.invoke(app, ["batching", "--json", "--dataset", "orders"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["orders"]["decision"]["files"] == 1
    assert not (sub / "lake").exists() and not (project / "spark-warehouse").exists()


def test_the_demo_writes_the_lake_its_advice_reads(project, monkeypatch):
    monkeypatch.chdir(project)
    own, prefix = demo_lake(resolve().settings, None)
    assert (own, prefix) == (project / "lake", "")  # `headwater status` as printed reads it

    other, prefix = demo_lake(resolve().settings, Path("elsewhere"))
    assert (other, prefix) == (Path("elsewhere"), "HEADWATER_LAKE__ROOT=elsewhere ")
    # ...and that prefix, followed as printed, points the commands at it.
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", "elsewhere")
    assert resolve().settings.lake.root == Path("elsewhere")
    monkeypatch.delenv("HEADWATER_LAKE__ROOT")

    same, prefix = demo_lake(resolve().settings, project / "lake")
    assert prefix == ""
    with pytest.raises(typer.Exit) as refused:
        demo_lake(resolve(env="qa").settings, None)
    assert refused.value.exit_code == 2
