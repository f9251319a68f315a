"""The silver table: schema policy checks and the MERGE that never rolls back.

A row replaces the silver row of its key only when it is *newer*: its ``(order_by, _batch_id,
_source_path, _source_row)`` compares greater (ingestion order breaks ties, and is the whole
order when the contract has no ``order_by``). Replaying an old batch, or an older update that
arrives late, therefore never rolls silver back, and re-applying the same row changes nothing.

For CDC (``transforms.silver.cdc``): with ``delete_when`` (a SQL condition on the source ``s``)
a newer row carrying a delete marker deletes its key instead of upserting it; with
``soft_delete_when`` it updates only ``soft_delete_set`` (the delete flag, operation, sequence
and lineage) and keeps the row's last values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F

from ingestion.core import lake
from ingestion.core.spark.commits import CommitTag, Stamp, write_once
from ingestion.core.spark.delta import is_delta
from transforms.silver.casting import quote

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from ingestion.contracts import Dataset
    from ingestion.core.storage import Storage

ORDER_LINEAGE = (lake.BATCH_ID, lake.SOURCE_PATH, lake.SOURCE_ROW)
SCHEMA_CHECK = "schema"


def silver_tag(dataset: str, bronze_end: int) -> CommitTag:
    """A curate range's silver commit: ``headwater-silver-<dataset>:<bronze end version>``."""
    return CommitTag("silver", dataset, bronze_end)


def order_columns(dataset: Dataset) -> list[str]:
    """What "newer" compares, most significant first."""
    return ([dataset.sequence] if dataset.sequence else []) + list(ORDER_LINEAGE)


def newer_sql(dataset: Dataset, s: str = "s", t: str = "t", *, strict: bool = True) -> str:
    """SQL: row ``s`` is newer than row ``t`` (``strict=False``: or equal).

    For change rows a key-only delete may have no sequence (the SQL trigger's deletes carry only
    the key): a comparison with a null sequence on either side falls back to arrival order.
    """
    cmp = ">" if strict else ">="

    def compare(cols: list[str]) -> str:
        left = ", ".join(f"{s}.{quote(c)}" for c in cols)
        right = ", ".join(f"{t}.{quote(c)}" for c in cols)
        return f"struct({left}) {cmp} struct({right})"

    full = compare(order_columns(dataset))
    if dataset.cdc is None or not dataset.sequence:
        return full
    seq = quote(dataset.sequence)
    arrival = compare(list(ORDER_LINEAGE))
    return f"(CASE WHEN {s}.{seq} IS NULL OR {t}.{seq} IS NULL THEN {arrival} ELSE {full} END)"


def schema_problems(
    spark: SparkSession, uri: str, incoming: StructType, dataset: Dataset
) -> list[tuple[str, str]]:
    """(column, reason) for each change silver cannot take under the dataset's policy.

    A changed type is always breaking; a new column is breaking only under ``freeze``.
    """
    schema = silver_schema(spark, uri)
    if schema is None:
        return []
    current = {f.name: f.dataType for f in schema.fields}
    problems: list[tuple[str, str]] = []
    for f in incoming.fields:
        old = current.get(f.name)
        if old is None:
            if dataset.schema_policy == "freeze":
                problems.append((f.name, "new column, but the schema policy is freeze"))
        elif old != f.dataType:
            problems.append(
                (f.name, f"silver has {old.simpleString()}, the batch has {f.dataType.simpleString()}")
            )
    return problems


def silver_schema(spark: SparkSession, uri: str) -> StructType | None:
    """Silver's current schema, or None before its first write."""
    if not is_delta(spark, uri):
        return None
    return spark.read.format("delta").load(uri).schema


def ensure_table(spark: SparkSession, uri: str, source: DataFrame, dataset: Dataset) -> None:
    """Create the (empty) silver table with the source's schema, partitioned per the contract."""
    if is_delta(spark, uri):
        return
    writer = source.limit(0).write.format("delta").mode("append")
    parts = [p for p in dataset.partition_by if p in source.columns]
    if parts:
        writer = writer.partitionBy(*parts)
    writer.save(uri)


def merge(
    spark: SparkSession,
    storage: Storage,
    source: DataFrame,
    dataset: Dataset,
    *,
    tag: CommitTag,
    delete_when: str | None = None,
    soft_delete_when: str | None = None,
    soft_delete_set: list[str] | None = None,
    target_schema: StructType | None = None,
    stable_source: bool = False,
) -> tuple[int | None, dict[str, Any]]:
    """MERGE ``source`` (one row per key) into silver, once per ``tag`` (its txnAppId/txnVersion).

    Returns the silver version carrying this write (also when Delta skipped it as a rerun) and
    its operation metrics. ``target_schema``: silver's schema when the caller has it already.
    ``stable_source``: the source reads a local checkpoint (fixed rows that read the same
    twice), so Delta need not copy it again before its two passes (it would, seeing a non-Delta
    leaf).
    """
    from delta.tables import DeltaTable

    table = lake.silver_table(dataset.name)
    uri = storage.uri(table)
    if target_schema is None:
        ensure_table(spark, uri, source, dataset)
        target_schema = spark.read.format("delta").load(uri).schema
    target_cols = target_schema
    # Columns silver has but the batch lacks (dropped from the contract) are written as null.
    missing = [f for f in target_cols.fields if f.name not in source.columns]
    if missing:
        source = source.withColumns({f.name: F.lit(None).cast(f.dataType) for f in missing})
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in dataset.primary_key)
    newer = newer_sql(dataset)
    builder = DeltaTable.forPath(spark, uri).alias("t").merge(source.alias("s"), on)
    if delete_when:
        builder = builder.whenMatchedDelete(condition=f"({newer}) AND ({delete_when})")
    if soft_delete_when:
        builder = builder.whenMatchedUpdate(
            condition=f"({newer}) AND ({soft_delete_when})",
            set={quote(c): f"s.{quote(c)}" for c in soft_delete_set or []},
        )
    builder = builder.whenMatchedUpdateAll(condition=newer)
    builder = builder.whenNotMatchedInsertAll(condition=f"NOT ({delete_when})" if delete_when else None)
    conf = {
        "spark.databricks.delta.schema.autoMerge.enabled": str(dataset.schema_policy != "freeze").lower(),
    }
    if stable_source:
        conf["spark.databricks.delta.merge.materializeSource"] = "none"
    commit = write_once(spark, storage, table, tag, lambda _stamp: builder.execute(), merge=True, conf=conf)
    return (None, {}) if commit is None else (commit.version, commit.metrics)


def append(
    spark: SparkSession, storage: Storage, table: str, frame: DataFrame, *, tag: CommitTag
) -> int | None:
    """Append once per ``tag``; returns the version carrying it.

    The idempotency token and tag are writer options, scoped to this write alone (they take
    precedence over session settings), so the append may run while a MERGE holds its own.
    """

    def write(stamp: Stamp) -> None:
        stamp(frame.write.format("delta").mode("append").option("mergeSchema", "true")).save(
            storage.uri(table)
        )

    commit = write_once(spark, storage, table, tag, write)
    return None if commit is None else commit.version
