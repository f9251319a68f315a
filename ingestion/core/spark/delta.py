"""Thin helpers over delta-spark that behave the same on Delta 3.2 and 4.x."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)


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


def latest_version(spark: SparkSession, storage: Storage, table: str) -> int:
    """The latest committed version of ``table`` (lake-relative), known to exist; cheaply.

    Every Delta reader finds the latest version by listing the table's log, so the cost grows
    with the log however few commits are new. Spark pays per listed file (a snapshot refresh,
    then ``history(1)``); delta-rs, the second reader, lists once and natively: on a log of
    2,000 commits 20 ms against about 350 ms. So delta-rs reads it when it can reach the lake
    (:meth:`Storage.delta_rs_options`), and Spark does otherwise or when delta-rs fails.

    Raises:
        AnalysisException: there is no Delta table at ``table``.
    """
    uri = storage.uri(table)
    options = storage.delta_rs_options()
    if options is not None:
        try:
            from deltalake import DeltaTable as RsTable

            parsed = urlparse(uri)
            target = unquote(parsed.path) if parsed.scheme == "file" else uri
            version = RsTable(target, storage_options=options or None).version()
            if version is not None and version >= 0:
                return int(version)
        except Exception as err:  # noqa: BLE001 - any failure: Spark reads it instead
            log.debug(
                "delta-rs could not read the version of %s (%s); asking Spark", table, type(err).__name__
            )
    return head_version(spark, uri)


def read_version(spark: SparkSession, uri: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(uri)
