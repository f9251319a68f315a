"""Row changes applied to silver as current state (SCD1), with deletes and tombstones.

A change row has the table's columns plus ``_change_op`` (I, U or D once cast) and maybe
``_change_seq``; its key's changes are ordered by the dataset's sequence (``Cdc.sequence_by``,
then ingestion order). :func:`prepare` has already kept, per key, the newest valid change of
the batch. Then:

* **Never backwards.** A change replaces silver's row only when it is newer than it (the same
  comparison as for whole rows, :func:`transforms.silver.silver.merge`).
* **Hard deletes leave a tombstone** in ``system/tombstones/<dataset>``: the key with its delete's
  order. A change older than its key's tombstone is dropped before the MERGE, so a late update
  cannot bring a deleted row back (silver no longer holds the row to compare with). Tombstones
  older than ``Cdc.tombstone_days`` are removed by the next tombstone write.
* **Soft deletes** keep the row with ``_deleted = true`` and its last values; the row itself is
  the tombstone.

Each write is idempotent by its own tag (tombstones, then silver, both at the range's bronze end
version), so a crash between them is completed by the rerun: the rerun's source passes the
tombstones of its own deletes (equal order is not older).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F

from ingestion.core import lake
from ingestion.core.reasons import RunCode
from ingestion.core.spark.commits import CommitTag, write_once
from ingestion.core.spark.delta import is_delta
from transforms.silver.casting import quote
from transforms.silver.errors import CurateError
from transforms.silver.silver import merge, newer_sql, order_columns

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from ingestion.contracts import Dataset
    from ingestion.core.storage import Storage

INSERT, UPDATE, DELETE = "I", "U", "D"


def normalize_op(raw: Column) -> Column:
    """``raw`` as I, U or D; any other value unchanged (the ``operation`` check quarantines it)."""
    text = F.upper(F.trim(raw.cast("string")))
    out = F.when(F.lit(False), F.lit(None).cast("string"))
    for letter, spellings in lake.CHANGE_OP_SPELLINGS.items():
        out = out.when(text.isin(*spellings), F.lit(letter))
    return out.otherwise(raw.cast("string"))


def is_delete() -> Column:
    """True on a delete change (never null)."""
    return F.coalesce(F.col(lake.CHANGE_OP) == F.lit(DELETE), F.lit(False))


def bad_operation() -> Column:
    """True where ``_change_op`` is missing or none of I/U/D (never null)."""
    return F.coalesce(~F.col(lake.CHANGE_OP).isin(INSERT, UPDATE, DELETE), F.lit(True))


def change_columns(bronze_columns: list[str]) -> list[Column]:
    """The change columns as silver keeps them: the operation normalized, the sequence a long."""
    have = set(bronze_columns)
    op = normalize_op(F.col(lake.CHANGE_OP)) if lake.CHANGE_OP in have else F.lit(None).cast("string")
    seq = F.col(lake.CHANGE_SEQ) if lake.CHANGE_SEQ in have else F.lit(None)
    return [op.alias(lake.CHANGE_OP), seq.cast("long").alias(lake.CHANGE_SEQ)]


def tombstone_tag(dataset: str, txn: int, *, replay: bool = False) -> CommitTag:
    """The tag of a tombstone commit: ``headwater-tombstones-<dataset>[-replay]:<txn>``.

    ``txn`` is a curate range's bronze end version, or a replay's quarantine version.

    Two app ids, because Delta skips a txn version not above the last one of its app id, and the
    two numbers count different things.
    """
    return CommitTag("tombstones", f"{dataset}-replay" if replay else dataset, txn)


def _tombstone_columns(dataset: Dataset) -> list[str]:
    return [*dataset.primary_key, *order_columns(dataset)]


def drop_older_than_tombstones(
    spark: SparkSession, uri: str, source: DataFrame, dataset: Dataset
) -> DataFrame:
    """``source`` without the changes older than their key's tombstone (the table exists)."""
    tomb = spark.read.format("delta").load(uri).select(*[quote(c) for c in _tombstone_columns(dataset)])
    on = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in dataset.primary_key)
    first_key = quote(dataset.primary_key[0])
    keep = f"t.{first_key} IS NULL OR {newer_sql(dataset, 's', 't', strict=False)}"
    return (
        source.alias("s")
        .join(tomb.alias("t"), F.expr(on), "left")
        .where(F.expr(keep))
        .select(*[F.col(f"s.{quote(c)}") for c in source.columns])
    )


def write_tombstones(
    spark: SparkSession,
    storage: Storage,
    source: DataFrame,
    dataset: Dataset,
    *,
    tag: CommitTag,
    per_sequence: bool = False,
) -> dict[str, int]:
    """Record the batch's hard deletes as tombstones and remove expired ones, once per range.

    SCD1 keeps one tombstone per key (its newest delete); SCD2 (``per_sequence``) one per key
    and delete sequence, since every delete bounds an interval of history.

    Returns:
        ``{"tombstones": rows written or updated, "tombstones_expired": rows removed}``.
    """
    from delta.tables import DeltaTable

    assert dataset.cdc is not None
    table = lake.tombstones_table(dataset.name)
    uri = storage.uri(table)
    deletes = source.where(is_delete()).select(
        *[F.col(quote(c)) for c in _tombstone_columns(dataset)],
        F.current_timestamp().alias(lake.TOMBSTONED_AT),
    )
    if not is_delta(spark, uri):
        deletes.limit(0).write.format("delta").mode("append").save(uri)
    cutoff = time.time() - dataset.cdc.tombstone_days * 86400
    match = list(dataset.primary_key)
    if per_sequence:
        match.append(dataset.cdc.sequence_by)
        deletes = deletes.dropDuplicates(match)  # a redelivered delete: one tombstone
    on = " AND ".join(f"t.{quote(k)} <=> s.{quote(k)}" for k in match)
    builder = (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(deletes.alias("s"), on)
        .whenMatchedUpdateAll(condition=newer_sql(dataset))
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete(condition=f"t.{lake.TOMBSTONED_AT} < timestamp_seconds({cutoff:.3f})")
    )
    commit = write_once(spark, storage, table, tag, lambda _s: builder.execute(), merge=True)
    if commit is None:
        return {"tombstones": 0, "tombstones_expired": 0}
    return {
        "tombstones": commit.metric("numTargetRowsInserted") + commit.metric("numTargetRowsUpdated"),
        "tombstones_expired": commit.metric("numTargetRowsDeleted"),
    }


def apply_scd1(
    spark: SparkSession,
    storage: Storage,
    source: DataFrame,
    dataset: Dataset,
    *,
    tag: CommitTag,
    tombstone: CommitTag,
    stable_source: bool = False,
) -> tuple[int | None, dict[str, Any]]:
    """Apply one change per key (``source``) to silver as current state.

    Args:
        spark: the session.
        storage: the lake.
        source: the newest valid change of each key in the batch (``Prepared.silver_rows``).
        dataset: a dataset with ``cdc`` declared.
        tag: silver's commit tag for the range.
        tombstone: the tag of the batch's tombstone commit (:func:`tombstone_tag`).
        stable_source: ``source`` reads a local checkpoint (see :func:`merge`).

    Returns:
        Silver's version carrying the write and its metrics, plus the tombstone counts.

    Raises:
        CurateError: the dataset's CDC mode is not one this function applies.
    """
    cdc = dataset.cdc
    if cdc is None or cdc.mode != "scd1":
        mode = None if cdc is None else cdc.mode
        raise CurateError(dataset.name, f"cdc mode {mode!r} cannot be applied as scd1", RunCode.CONTRACT)
    extra: dict[str, Any] = {}
    if cdc.deletes == "soft":
        source = source.withColumn(lake.DELETED, is_delete())
        keep = [lake.DELETED, *lake.CHANGE_COLUMNS, *order_columns(dataset), *lake.LINEAGE_COLUMNS]
        version, metrics = merge(
            spark,
            storage,
            source,
            dataset,
            tag=tag,
            soft_delete_when=f"s.{lake.CHANGE_OP} = '{DELETE}'",
            soft_delete_set=sorted(set(keep)),
            stable_source=stable_source,
        )
        return version, {**metrics, **extra}
    tomb_uri = storage.uri(lake.tombstones_table(dataset.name))
    if source.where(is_delete()).limit(1).count():
        extra = write_tombstones(spark, storage, source, dataset, tag=tombstone)
    joined = is_delta(spark, tomb_uri)
    if joined:
        source = drop_older_than_tombstones(spark, tomb_uri, source, dataset)
    version, metrics = merge(
        spark,
        storage,
        source,
        dataset,
        tag=tag,
        delete_when=f"s.{lake.CHANGE_OP} = '{DELETE}'",
        # Joined with the tombstones, the source is no longer the bare checkpoint.
        stable_source=stable_source and not joined,
    )
    return version, {**metrics, **extra}
