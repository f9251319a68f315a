"""Fixtures for the curate tests: bronze tables written directly in the documented layout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from ingestion import lake as layout

LINEAGE_SCHEMA = (
    "_rescued_data string, _corrupt_record string, _parse_error string, _source_path string, "
    "_source_sha256 string, _source_row long, _ingested_at timestamp, _batch_id long"
)


@pytest.fixture
def write_bronze(spark, lake) -> Callable[..., int]:  # noqa: ANN001
    """``write_bronze(dataset, columns, rows, batch=n)``: append one tagged bronze batch.

    ``rows`` are dicts of raw string values (missing keys are null) and may carry
    ``_corrupt_record``/``_parse_error``/``_rescued_data``/``_source_path``; ``_source_row`` counts
    from 1 per path. Returns the bronze version written.
    """
    from ingestion.core.spark.delta import table_version

    def _write(
        dataset: str,
        columns: list[str],
        rows: list[dict[str, Any]],
        *,
        batch: int,
        path: str | None = None,
        extra: list[str] = (),  # type: ignore[assignment]
    ) -> int:
        cols = list(columns) + list(extra)
        schema = ", ".join(f"`{c}` string" for c in cols) + ", " + LINEAGE_SCHEMA
        now = datetime.now(timezone.utc)
        per_path: dict[str, int] = {}
        data = []
        for r in rows:
            src = r.get("_source_path", path or f"{dataset}/batch-{batch}.csv")
            per_path[src] = per_path.get(src, 0) + 1
            data.append(
                tuple(r.get(c) for c in cols)
                + (
                    r.get("_rescued_data"),
                    r.get("_corrupt_record"),
                    r.get("_parse_error"),
                    src,
                    "sha-" + src,
                    r.get("_source_row", per_path[src]),
                    now,
                    batch,
                )
            )
        uri = lake.uri(layout.bronze_table(dataset))
        (
            spark.createDataFrame(data, schema)
            .write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")
            .option("userMetadata", f"headwater-bronze-{dataset}:{batch}")
            .save(uri)
        )
        return table_version(spark, uri)

    return _write
