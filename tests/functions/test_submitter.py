"""The Function App's default submitter: ``jobs.pipeline.run`` (a pipeline run), imported only when a
run starts."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from functions.runtime import submitter_from_settings
from ingestion.batching import SubmitError, Submitter
from ingestion.core.config import Settings


def test_default_submitter_calls_the_pipeline_job_lazily(monkeypatch):
    settings = Settings()
    seen = []
    fake = types.ModuleType("jobs.pipeline")

    def run(dataset: str, *, settings: Settings | None = None) -> dict[str, Any]:
        seen.append((dataset, settings))
        return {"dataset": dataset, "status": "ok"}

    fake.run = run  # type: ignore[attr-defined]
    import jobs

    monkeypatch.setitem(sys.modules, "jobs.pipeline", fake)
    monkeypatch.setattr(jobs, "pipeline", fake, raising=False)
    sub = submitter_from_settings(settings)
    assert isinstance(sub, Submitter)
    assert sub.submit("orders") == {"dataset": "orders", "status": "ok"}
    assert seen == [("orders", settings)]


def test_default_submitter_without_the_job_says_what_to_install(monkeypatch):
    import jobs

    monkeypatch.setitem(sys.modules, "jobs.pipeline", None)  # import fails like a missing pyspark
    monkeypatch.delattr(jobs, "pipeline", raising=False)
    with pytest.raises(SubmitError, match="install the `local` extra"):
        submitter_from_settings(Settings()).submit("orders")


def test_spark_submit_is_chosen_by_settings():
    from pathlib import Path

    from ingestion.core.config import SubmitSettings
    from ingestion.submit import SparkSubmitSubmitter

    settings = Settings(
        submit=SubmitSettings(
            kind="spark-submit", master="spark://h:7077", python=Path(sys.executable), job="curate"
        )
    )
    sub = submitter_from_settings(settings)
    assert isinstance(sub, SparkSubmitSubmitter) and isinstance(sub, Submitter)
    argv = sub.argv("orders")
    assert argv[1:3] == ["--master", "spark://h:7077"] and argv[-3:] == ["curate", "--dataset", "orders"]
