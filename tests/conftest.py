"""Test-suite wiring.

The platform-floor run (Spark 3.5 + Delta 3.2, `make test`'s second step) installs what a Spark
cluster has, not the Function App's or Azure ML's SDKs: tests of those parts are not collected
where their SDK is absent. Everywhere else (the main run) every SDK is installed and every test
is collected.
"""

import importlib.util

import pytest

from tests.cluster.venv import start_job_venv


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob: list[str] = []
if not _installed("azure.storage.blob") or not _installed("azure.functions"):
    collect_ignore_glob += ["functions/*", "ingestion/core/storage/test_azure_blob.py"]
if not _installed("azure.ai.ml") or not _installed("mltable"):
    collect_ignore_glob += ["interop/*", "transforms/assets/*"]


@pytest.fixture(scope="session")
def headwater_jobs():
    """The plugin's jobs from the entry points; an editable install made before they were
    declared lacks them, so the suite then names the same two jobs itself."""
    from ingestion.testing.pytest_plugin import JobRunners, runners_from_entry_points

    try:
        return runners_from_entry_points()
    except LookupError:
        from ingestion.bronze.job import ingest
        from transforms.silver import curate

        return JobRunners(ingest=ingest, curate=curate)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):  # noqa: ANN201
    """Cluster tests run last, and their job venv is built meanwhile.

    Building the wheel's venv (a minute on a clean machine: pip installs pyspark and the rest
    from the constraints) then overlaps the other tests instead of adding to the wall time.
    Acts after every other hook (``-m``/``-k`` deselection included): only tests that will run.
    """
    result = yield
    cluster = [i for i in items if i.get_closest_marker("cluster") is not None]
    if cluster and not config.option.collectonly:
        items[:] = [i for i in items if i.get_closest_marker("cluster") is None] + cluster
        if len(cluster) < len(items):
            start_job_venv()
    return result
