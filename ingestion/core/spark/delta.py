"""Thin helpers over delta-spark that behave the same on Delta 3.2 and 4.x."""

from __future__ import annotations

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


def head_version(spark: SparkSession, uri: str) -> int:
    """The latest committed version of a table known to exist (one log look, no existence probe).

    Raises:
        AnalysisException: there is no Delta table at ``uri``.
    """
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, uri).history(1).select("version").first()
    assert row is not None
    return int(row[0])


def read_version(spark: SparkSession, uri: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(uri)
