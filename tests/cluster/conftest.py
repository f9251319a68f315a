"""One real Spark standalone cluster per test session, and the wheel venv its jobs run from.

The cluster is a master and two workers (one core, 1g each), each its own JVM started with
pyspark's ``spark-class``; the venv holds the project's wheel, installed non-editable with its
pinned dependencies (cached by the wheel's content hash under ``~/.cache/headwater/wheel-venvs``,
so only a code change pays for a new one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion.testing.cluster import StandaloneCluster, delta_jars
from tests.cluster.venv import job_venv_python


@pytest.fixture(scope="session")
def job_python() -> Path:
    """The python of a venv with this checkout's wheel installed (not editable).

    Started in the background when collection put the cluster tests last (``tests/conftest.py``).
    """
    return job_venv_python()


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A running master + 2 workers on loopback; stopped when the test session ends."""
    cluster = StandaloneCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def job_jars(job_python: Path) -> Path | None:
    """Delta's jars for the job venv, fetched once (None without Maven: ``--packages`` then)."""
    return delta_jars(job_python)
