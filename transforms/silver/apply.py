"""Writing a validated batch to silver, the way its dataset declares: one place for curate and replay.

Whole rows MERGE by key, newest wins (``silver.merge``); row changes apply as current state
(``cdc.apply_scd1``) or as full history (``scd2.apply_scd2``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transforms.silver.cdc import apply_scd1
from transforms.silver.scd2 import apply_scd2
from transforms.silver.silver import merge

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Dataset
    from ingestion.core.spark.commits import CommitTag
    from ingestion.core.storage import Storage
    from transforms.silver.pipeline import Prepared


def write_batch(
    spark: SparkSession,
    storage: Storage,
    dataset: Dataset,
    prepared: Prepared,
    *,
    tag: CommitTag,
    tombstone: CommitTag,
) -> tuple[int | None, dict[str, Any]]:
    """Write ``prepared`` to silver once per ``tag``.

    Args:
        spark: the session.
        storage: the lake.
        dataset: the dataset (its ``cdc`` decides how).
        prepared: the validated batch.
        tag: silver's commit tag.
        tombstone: the tombstone commit's tag (used by CDC hard deletes).

    Returns:
        Silver's version carrying the write, and its metrics (with ``tombstones`` counts for CDC).
    """
    if dataset.cdc is None:
        return merge(spark, storage, prepared.silver_rows(), dataset, tag=tag, stable_source=prepared.stable)
    if dataset.cdc.mode == "scd2":
        return apply_scd2(spark, storage, prepared.kept_changes(), dataset, tag=tag, tombstone=tombstone)
    return apply_scd1(
        spark,
        storage,
        prepared.silver_rows(),
        dataset,
        tag=tag,
        tombstone=tombstone,
        stable_source=prepared.stable,
    )
