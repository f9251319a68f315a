"""Helpers for the ingest tests: a small CSV contract per schema policy, and bronze readers."""

from collections.abc import Callable

import pytest

from ingestion.contracts import Catalog, Csv, Dataset
from ingestion.events import EventHandler, Ledger


def _columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Events(pa.DataFrameModel):
        id: T.StringType() = pa.Field()
        value: T.IntegerType() = pa.Field(nullable=True)

    return Events


def events_dataset(policy: str) -> Dataset:
    return Dataset(
        name=f"ev_{policy}",
        landing=f"ev_{policy}/*.csv",
        format=Csv(),
        columns=_columns,
        primary_key=("id",),
        schema_policy=policy,  # type: ignore[arg-type]
    )


@pytest.fixture
def policy_catalog() -> Catalog:
    return Catalog([events_dataset(p) for p in ("evolve", "freeze", "rescue")])


@pytest.fixture
def land_in(lake) -> Callable[..., object]:
    """``land_in(catalog, path, data, events=1)``: write into landing, raise the event(s)."""

    def _land(catalog: Catalog, path: str, data: bytes, *, events: int = 1):
        handler = EventHandler(Ledger(lake), catalog)
        info = lake.write_bytes(f"landing/{path}", data)
        result = None
        for _ in range(events):
            result = handler.file_landed(path, etag=info.etag, size=info.size)
        return result

    return _land


@pytest.fixture
def bronze(spark, lake):
    """``bronze("orders")``: the bronze table as a DataFrame (lineage timestamps dropped)."""

    def _read(dataset: str):
        return spark.read.format("delta").load(lake.uri(f"bronze/{dataset}")).drop("_ingested_at")

    return _read
