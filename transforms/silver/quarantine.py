"""The quarantine table: rows that failed validation, as bronze had them, with their reasons.

``quarantine/<dataset>/rows`` (Delta) holds each row's contract columns as the raw bronze
strings (so a replay can cast, transform and validate them again), the kept extra columns,
``_corrupt_record``/``_parse_error``, the lineage columns, ``_errors`` (array of
``{column, check, value}``), and ``_quarantine_id`` (stable per bronze row), ``_quarantined_at``,
``_run_id`` and ``_bronze_version``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F

from ingestion.core import lake
from ingestion.core.spark.commits import CommitTag
from ingestion.core.spark.delta import is_delta
from transforms.silver.casting import RAW, quote
from transforms.silver.expectations import ERRORS

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.core.storage import Storage

QUARANTINE_ID = "_quarantine_id"
QUARANTINED_AT = "_quarantined_at"
RUN_ID = "_run_id"
BRONZE_VERSION = "_bronze_version"
BOOKKEEPING = (QUARANTINE_ID, QUARANTINED_AT, RUN_ID, BRONZE_VERSION)


def quarantine_tag(dataset: str, bronze_end: int) -> CommitTag:
    """A curate range's quarantine append: ``headwater-quarantine-<dataset>:<bronze end version>``."""
    return CommitTag("quarantine", dataset, bronze_end)


def quarantine_id() -> F.Column:
    """Stable per bronze row: the same row quarantined twice gets the same id."""
    return F.sha2(
        F.concat_ws(
            "\u241f",
            F.col(lake.SOURCE_PATH),
            F.col(lake.SOURCE_SHA256),
            F.col(lake.SOURCE_ROW).cast("string"),
            F.col(lake.BATCH_ID).cast("string"),
        ),
        256,
    )


def to_quarantine_rows(
    df: DataFrame, *, contract: list[str], extras: list[str], run_id: str, bronze_version: int | None
) -> DataFrame:
    """Shape validated rows (with ``_raw`` and ``_errors``) as quarantine rows."""
    raw = [F.col(f"{RAW}.{quote(c)}").alias(c) for c in contract]
    return df.select(
        *raw,
        *[F.col(quote(c)) for c in extras],
        F.col(lake.CORRUPT_RECORD),
        F.col(lake.PARSE_ERROR),
        *[F.col(c) for c in lake.LINEAGE_COLUMNS],
        F.col(ERRORS),
        quarantine_id().alias(QUARANTINE_ID),
        F.current_timestamp().alias(QUARANTINED_AT),
        F.lit(run_id).alias(RUN_ID),
        F.lit(bronze_version).cast("long").alias(BRONZE_VERSION),
    )


def frame(spark: SparkSession, storage: Storage, dataset: str) -> DataFrame | None:
    uri = storage.uri(lake.quarantine_rows_table(dataset))
    if not is_delta(spark, uri):
        return None
    return spark.read.format("delta").load(uri)


def counts_by_reason(spark: SparkSession, storage: Storage, dataset: str) -> list[dict[str, Any]]:
    """Rows in quarantine per (column, check), most frequent first. No values."""
    df = frame(spark, storage, dataset)
    if df is None:
        return []
    rows = (
        df.select(F.explode(ERRORS).alias("e"))
        .groupBy(F.col("e.column").alias("column"), F.col("e.check").alias("check"))
        .count()
        .orderBy(F.col("count").desc(), "column", "check")
        .collect()
    )
    return [
        {"dataset": dataset, "column": r["column"], "check": r["check"], "rows": r["count"]} for r in rows
    ]


def show(spark: SparkSession, storage: Storage, dataset: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Quarantined rows with their reasons, oldest first (for ``headwater quarantine show``).

    This is the one place row contents leave the lake: on a person's explicit request.
    """
    df = frame(spark, storage, dataset)
    if df is None:
        return []
    rows = df.orderBy(QUARANTINED_AT, lake.BATCH_ID, lake.SOURCE_PATH, lake.SOURCE_ROW).limit(limit).collect()
    return [r.asDict(recursive=True) for r in rows]
