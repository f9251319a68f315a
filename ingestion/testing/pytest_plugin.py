"""pytest plugin: one local Spark + Delta session per test session, and a lake per test.

Installed with headwater (entry point ``pytest11``), so a project's own tests get:

* ``spark`` - session-scoped local SparkSession with Delta (built once; ~20 s).
* ``lake_settings`` - Settings pointing at a fresh local lake under ``tmp_path``.
* ``lake`` - the LocalStorage of that lake.
* ``catalog`` - the project's datasets from ``schemas/``.
* ``land`` - write a file into the landing zone and raise the same event a Function would.
* ``run_contract`` - run a dataset's contract on small inputs: land -> bronze -> silver, and get
  the bronze, silver and quarantine rows back.
* ``headwater_jobs`` - the ingest and curate jobs ``run_contract`` runs. They come from the
  ``headwater.jobs`` entry points the installed distributions declare (headwater declares its
  own); a project overrides the fixture in its ``conftest.py`` to run other jobs. The plugin
  itself imports no job: the engine's test kit does not depend on the stages it tests.

Nothing here imports pyspark until the ``spark`` fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingestion.core.config import LakeSettings, Settings, SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import LocalStorage
    from ingestion.events import EventResult


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A local Spark session with Delta, shared by the whole test session.

    Two cores, two shuffle partitions (test data is small); stopped when the session ends.

    Returns:
        The SparkSession (a generator fixture: yields it).
    """
    from ingestion.core.spark.session import get_spark

    settings = Settings(spark=SparkSettings(master="local[2]", shuffle_partitions=2))
    session = get_spark(settings, warehouse=tmp_path_factory.mktemp("warehouse"))
    yield session
    session.stop()


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    """Settings for a fresh local lake under the test's ``tmp_path`` (``<tmp_path>/lake``).

    Returns:
        Settings; pass them to jobs that take ``settings=`` so they use this lake.
    """
    return Settings(
        lake=LakeSettings(kind="local", root=tmp_path / "lake"),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )


@pytest.fixture
def lake(lake_settings: Settings) -> LocalStorage:
    """The storage of the ``lake_settings`` lake: empty at the start of each test.

    Returns:
        A LocalStorage rooted at ``lake_settings.lake.root``.
    """
    from ingestion.core.storage import LocalStorage

    return LocalStorage(lake_settings.lake.root)


@pytest.fixture
def catalog() -> Catalog:
    """The project's datasets, discovered from ``schemas/`` (or ``$HEADWATER_SCHEMAS_PACKAGE``).

    Returns:
        The Catalog.
    """
    from ingestion.contracts import Catalog

    return Catalog.discover()


@pytest.fixture
def land(lake: LocalStorage, catalog: Catalog) -> Callable[..., EventResult]:
    """``land("orders/a.csv", b"...")``: write into landing and raise the file-landed event.

    Returns:
        ``land(path, data, *, events=1)``: ``path`` is relative to the landing zone; ``events``
        raises the event that many times (at-least-once delivery). It returns the last event's
        EventResult.
    """
    from ingestion.events import EventHandler, Ledger

    handler = EventHandler(Ledger(lake), catalog)

    def _land(path: str, data: bytes, *, events: int = 1) -> EventResult:
        info = lake.write_bytes(f"landing/{path}", data)
        result = None
        for _ in range(events):
            result = handler.file_landed(path, etag=info.etag, size=info.size)
        assert result is not None
        return result

    return _land


ENTRY_POINT_GROUP = "headwater.jobs"


@dataclass(frozen=True)
class JobRunners:
    """The jobs ``run_contract`` runs, each called as ``job(spark, storage, catalog, dataset)``."""

    ingest: Callable[..., Any]
    curate: Callable[..., Any]


def runners_from_entry_points(group: str = ENTRY_POINT_GROUP) -> JobRunners:
    """The ``ingest`` and ``curate`` jobs the installed distributions declare under ``group``.

    Args:
        group: the entry-point group (``headwater.jobs``).

    Returns:
        The loaded jobs.

    Raises:
        LookupError: a job is not declared (an install older than the declaration: reinstall
            headwater, or override the ``headwater_jobs`` fixture).
    """
    found = {ep.name: ep for ep in entry_points(group=group)}
    missing = [name for name in ("ingest", "curate") if name not in found]
    if missing:
        raise LookupError(
            f"no {', '.join(missing)} job in the {group!r} entry points: reinstall headwater, "
            "or override the `headwater_jobs` fixture in conftest.py"
        )
    return JobRunners(ingest=found["ingest"].load(), curate=found["curate"].load())


@pytest.fixture(scope="session")
def headwater_jobs() -> JobRunners:
    """The jobs ``run_contract`` runs (from the ``headwater.jobs`` entry points)."""
    return runners_from_entry_points()


@dataclass
class ContractRun:
    """What one ``run_contract`` call produced (frames read back from the lake's Delta tables)."""

    bronze: DataFrame
    silver: DataFrame | None
    quarantine: DataFrame | None
    ingest: Any
    curate: Any


@pytest.fixture
def run_contract(
    spark: SparkSession,
    lake: LocalStorage,
    catalog: Catalog,
    land: Callable[..., EventResult],
    headwater_jobs: JobRunners,
) -> Callable[[str, Mapping[str, bytes]], ContractRun]:
    """``run_contract("orders", {"orders/a.csv": b"..."})``: land the files, ingest, curate.

    Returns:
        A function of the dataset's name and ``{landing path: bytes}`` returning a
        :class:`ContractRun` (the bronze, silver and quarantine frames, and both runs' results).
    """

    def _run(dataset: str, files: Mapping[str, bytes]) -> ContractRun:
        from ingestion.core.lake import bronze_table, quarantine_rows_table, silver_table
        from ingestion.core.spark.delta import is_delta

        for path, data in files.items():
            land(path, data)
        ingested = headwater_jobs.ingest(spark, lake, catalog, dataset)
        curated = headwater_jobs.curate(spark, lake, catalog, dataset)

        def read(path: str) -> DataFrame | None:
            uri = lake.uri(path)
            return spark.read.format("delta").load(uri) if is_delta(spark, uri) else None

        bronze = read(bronze_table(dataset))
        assert bronze is not None, f"nothing reached bronze for {dataset}: {ingested}"
        return ContractRun(
            bronze, read(silver_table(dataset)), read(quarantine_rows_table(dataset)), ingested, curated
        )

    return _run
