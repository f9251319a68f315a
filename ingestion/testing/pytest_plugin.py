"""pytest plugin: one local Spark + Delta session per test session, and a lake per test.

Installed with headwater (entry point ``pytest11``), so a project's own tests get:

* ``spark`` - session-scoped local SparkSession with Delta (built once; ~20 s).
* ``lake_settings`` - Settings pointing at a fresh local lake under ``tmp_path``.
* ``lake`` - the LocalStorage of that lake.
* ``catalog`` - the project's datasets from ``schemas/``.
* ``land`` - write a file into the landing zone and raise the same event a Function would.

Nothing here imports pyspark until the ``spark`` fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingestion.config import LakeSettings, Settings, SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.events import EventResult
    from ingestion.storage import LocalStorage


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A local Spark session with Delta, shared by the whole test session."""
    from ingestion.spark.session import get_spark

    settings = Settings(spark=SparkSettings(master="local[2]", shuffle_partitions=2))
    session = get_spark(settings, warehouse=tmp_path_factory.mktemp("warehouse"))
    yield session
    session.stop()


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    return Settings(
        lake=LakeSettings(kind="local", root=tmp_path / "lake"),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )


@pytest.fixture
def lake(lake_settings: Settings) -> LocalStorage:
    from ingestion.storage import LocalStorage

    return LocalStorage(lake_settings.lake.root)


@pytest.fixture
def catalog() -> Catalog:
    from ingestion.contracts import Catalog

    return Catalog.discover()


@pytest.fixture
def land(lake: LocalStorage, catalog: Catalog) -> Callable[..., EventResult]:
    """``land("orders/a.csv", b"...")``: write into landing and raise the file-landed event."""
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
