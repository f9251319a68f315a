"""Thin helpers over delta-spark that behave the same on Delta 3.2 and 4.x."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def is_delta(spark: SparkSession, uri: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, uri)


def table_version(spark: SparkSession, uri: str) -> int | None:
    """The latest committed version, or None when there is no table yet."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, uri):
        return None
    row = DeltaTable.forPath(spark, uri).history(1).select("version").first()
    return int(row[0]) if row else None


def read_version(spark: SparkSession, uri: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(uri)


@contextmanager
def idempotent_session_txn(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Set Delta's session-level ``txnAppId``/``txnVersion`` around one write (MERGE included).

    Delta skips a write whose (appId, version) it has already committed, which makes a rerun
    after a crash a no-op. The settings are unset afterwards so they never leak to the next
    write in the session.
    """
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(version))
    try:
        yield
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")


def commit_tag(app_id: str, txn_version: int) -> str:
    """The ``userMetadata`` we stamp on an idempotent commit, to find it again in the history."""
    return f"{app_id}:{txn_version}"


def find_commit(spark: SparkSession, uri: str, tag: str) -> int | None:
    """The table version whose commit carries ``userMetadata == tag``, or None.

    After a crash between a Delta commit and our own bookkeeping, the rerun's write is skipped by
    Delta (same txnAppId/txnVersion); this is how the rerun learns which version it made.
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, uri):
        return None
    row = (
        DeltaTable.forPath(spark, uri)
        .history()
        .where(f"userMetadata = '{tag}'")
        .agg({"version": "max"})
        .first()
    )
    return None if row is None or row[0] is None else int(row[0])
