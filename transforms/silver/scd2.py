"""Row changes applied to silver as full history (SCD2).

Silver holds one row per version of a key: its values, ``__start_at`` and ``__end_at`` (the type
of the dataset's ``sequence_by``; a null ``__end_at`` marks the current row). A MERGE cannot
match several source rows to one target row, so a batch does not MERGE its changes one by one:
for every key the batch touches, the history is *recomputed* from what silver holds plus the
batch's changes, then written back in one MERGE on ``(key, __start_at)`` that updates, inserts,
and deletes the rows that are no longer part of it.

Recomputing, per key, from events ordered by sequence (then arrival):

* silver's rows are events at their ``__start_at``; every hard delete is kept as a tombstone
  (``system/tombstones/<dataset>``, one per key and sequence, written first under its own tag),
  and a row closed where no row starts is a delete at its ``__end_at`` too (tombstones expire);
* the batch's changes are events at their sequence, *all* of them (several changes of a key in
  one batch all enter history); a delete ends the current row and starts none;
* two events at one sequence: the later arrival wins (a redelivered change changes nothing);
* with ``track_history_columns``, an event that changes none of them updates the row it
  continues in place instead of opening a new one;
* each remaining row starts at its event and ends where the next one (or a delete) starts.

A late change therefore lands at its place in history, and intervals never overlap.
``current_rows`` is the view gold reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F
from pyspark.sql import Window

from ingestion.core import lake
from ingestion.core.spark.commits import CommitTag, write_once
from ingestion.core.spark.delta import is_delta
from transforms.silver.casting import quote
from transforms.silver.cdc import DELETE, is_delete, write_tombstones
from transforms.silver.silver import ORDER_LINEAGE

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.contracts import Dataset
    from ingestion.core.storage import Storage

START, END = "__start_at", "__end_at"
_KIND, _SEQ, _GROUP, _CHANGED, _ACTION = "__kind", "__seq", "__group", "__changed", "__action"


def current_rows(history: DataFrame) -> DataFrame:
    """The current row of every key (``__end_at`` null): what gold reads of an SCD2 silver."""
    return history.where(F.col(END).isNull())


def _events(
    spark: SparkSession, storage: Storage, uri: str, changes: DataFrame, dataset: Dataset
) -> tuple[DataFrame, DataFrame | None]:
    """The events of the touched keys, and silver's rows of those keys.

    Events: silver's rows, the deletes that closed them, the batch's changes. Silver's rows are
    None before its first write.
    """
    assert dataset.cdc is not None
    seq = dataset.cdc.sequence_by
    keys = list(dataset.primary_key)
    new = changes.withColumns(
        {_SEQ: F.col(quote(seq)), _KIND: F.when(is_delete(), F.lit(DELETE)).otherwise(F.lit("R"))}
    )
    touched = changes.select(*[quote(k) for k in keys]).distinct()
    tomb_uri = storage.uri(lake.tombstones_table(dataset.name))
    if is_delta(spark, tomb_uri):
        # Every delete the key had, also those that closed no row (a delete before any insert).
        tombs = spark.read.format("delta").load(tomb_uri).join(touched, keys, "left_semi")
        tombs = tombs.withColumns({_SEQ: F.col(quote(seq)), _KIND: F.lit(DELETE)}).drop(lake.TOMBSTONED_AT)
        new = new.unionByName(tombs, allowMissingColumns=True).select(*new.columns)
    if not is_delta(spark, uri):
        return new, None
    old = spark.read.format("delta").load(uri).join(touched, keys, "left_semi")
    rows = old.withColumns({_SEQ: F.col(START), _KIND: F.lit("R")}).drop(START, END)
    # A row closed where no row of its key starts was ended by a delete: keep that delete.
    starts = old.select(*[quote(k) for k in keys], F.col(START).alias(_SEQ))
    ended = old.where(F.col(END).isNotNull()).select(*[quote(k) for k in keys], F.col(END).alias(_SEQ))
    deletes = ended.join(starts, [*keys, _SEQ], "left_anti").withColumn(_KIND, F.lit(DELETE))
    cols = new.columns
    events = new.unionByName(rows.select(*[c for c in cols if c in rows.columns]), allowMissingColumns=True)
    events = events.unionByName(deletes, allowMissingColumns=True)
    return events.select(*cols), old


def recompute(events: DataFrame, dataset: Dataset) -> DataFrame:
    """The history rows (with ``__start_at``/``__end_at``) the events of each key make."""
    assert dataset.cdc is not None
    keys = [F.col(quote(k)) for k in dataset.primary_key]
    by_seq = Window.partitionBy(*keys, F.col(_SEQ)).orderBy(*[F.col(c).desc() for c in ORDER_LINEAGE])
    events = events.withColumn("__n", F.row_number().over(by_seq)).where(F.col("__n") == 1).drop("__n")
    ordered = Window.partitionBy(*keys).orderBy(F.col(_SEQ))
    tracked = list(dataset.cdc.track_history_columns)
    prev_kind = F.lag(F.col(_KIND)).over(ordered)
    changed = prev_kind.isNull() | (prev_kind == F.lit(DELETE)) | (F.col(_KIND) == F.lit(DELETE))
    if tracked:
        for c in tracked:
            changed = changed | ~F.lag(F.col(quote(c))).over(ordered).eqNullSafe(F.col(quote(c)))
    else:
        changed = F.lit(True)
    events = events.withColumn(_CHANGED, changed.cast("int"))
    events = events.withColumn(
        _GROUP, F.sum(_CHANGED).over(ordered.rowsBetween(Window.unboundedPreceding, 0))
    )
    # Per group: it starts at its first event and carries its last event's values.
    in_group = Window.partitionBy(*keys, F.col(_GROUP))
    last_first = in_group.orderBy(F.col(_SEQ).desc())
    grouped = (
        events.withColumn(START, F.min(_SEQ).over(in_group))
        .withColumn("__last", F.row_number().over(last_first))
        .where(F.col("__last") == 1)
        .drop("__last")
    )
    by_start = Window.partitionBy(*keys).orderBy(F.col(START))
    history = grouped.withColumn(END, F.lead(F.col(START)).over(by_start)).where(
        F.col(_KIND) != F.lit(DELETE)
    )
    return history.drop(_SEQ, _KIND, _CHANGED, _GROUP)


def apply_scd2(
    spark: SparkSession,
    storage: Storage,
    changes: DataFrame,
    dataset: Dataset,
    *,
    tag: CommitTag,
    tombstone: CommitTag,
) -> tuple[int | None, dict[str, Any]]:
    """Recompute the history of every key ``changes`` touch and write it back, once per ``tag``.

    Args:
        spark: the session.
        storage: the lake.
        changes: every valid change of the batch (not one per key).
        dataset: a dataset with ``cdc=Cdc(mode="scd2")``.
        tag: silver's commit tag for the range.
        tombstone: the tag of the batch's tombstone commit (its deletes).

    Returns:
        Silver's version carrying the write, and its metrics.
    """
    from delta.tables import DeltaTable

    table = lake.silver_table(dataset.name)
    uri = storage.uri(table)
    extra: dict[str, Any] = {}
    if changes.where(is_delete()).limit(1).count():
        extra = write_tombstones(spark, storage, changes, dataset, tag=tombstone, per_sequence=True)
    events, old = _events(spark, storage, uri, changes, dataset)
    history = recompute(events, dataset).localCheckpoint()
    keys = list(dataset.primary_key)
    if old is None:
        writer = history.limit(0).write.format("delta").mode("append")
        parts = [p for p in dataset.partition_by if p in history.columns]
        (writer.partitionBy(*parts) if parts else writer).save(uri)
    upserts = history.withColumn(_ACTION, F.lit("upsert"))
    source = upserts
    if old is not None:
        gone = old.join(history.select(*[quote(k) for k in keys], START), [*keys, START], "left_anti")
        source = upserts.unionByName(gone.withColumn(_ACTION, F.lit("delete")), allowMissingColumns=True)
    on = " AND ".join([*(f"t.{quote(k)} = s.{quote(k)}" for k in keys), f"t.{START} = s.{START}"])
    cols = list(history.columns)
    builder = (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(source.alias("s"), on)
        .whenMatchedDelete(condition=f"s.{_ACTION} = 'delete'")
        .whenMatchedUpdate(set={quote(c): f"s.{quote(c)}" for c in cols})
        .whenNotMatchedInsert(
            condition=f"s.{_ACTION} = 'upsert'", values={quote(c): f"s.{quote(c)}" for c in cols}
        )
    )
    conf = {"spark.databricks.delta.schema.autoMerge.enabled": str(dataset.schema_policy != "freeze").lower()}
    commit = write_once(spark, storage, table, tag, lambda _s: builder.execute(), merge=True, conf=conf)
    return (None, extra) if commit is None else (commit.version, {**commit.metrics, **extra})
