"""Which bronze rows a curate run reads: those committed in a bronze version range.

Bronze is append-only and each ingest batch is one Delta commit tagged with userMetadata
``headwater-bronze-<dataset>:<n>``; its rows carry ``_batch_id = n``. The rows of versions
``(after, upto]`` are therefore the rows of the batches tagged in those commits, read from the
snapshot at ``upto``. A data commit in the range without a tag would make rows unattributable,
so it is an error (never a silent skip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyspark.sql.functions as F

from ingestion.core import lake
from ingestion.core.reasons import RunCode
from ingestion.core.spark.commits import CommitTag, recent_commits
from transforms.silver.errors import CurateError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

# Operations that add rows to an append-only table.
_DATA_OPS = {
    "WRITE",
    "STREAMING UPDATE",
    "CREATE TABLE AS SELECT",
    "REPLACE TABLE AS SELECT",
    "CREATE OR REPLACE TABLE AS SELECT",
    "MERGE",
    "UPDATE",
    "COPY INTO",
}


def bronze_tag_prefix(dataset: str) -> str:
    return f"{CommitTag('bronze', dataset, 0).app_id}:"


@dataclass(frozen=True)
class BronzeRange:
    """Bronze versions ``(after, upto]``, their batches, and how many rows they added."""

    after: int
    upto: int
    batches: tuple[int, ...]
    rows: int


def bronze_range(spark: SparkSession, dataset: str, uri: str, *, after: int, upto: int) -> BronzeRange:
    """Describe the bronze commits in ``(after, upto]``, reading only those from the log."""
    batches: list[int] = []
    rows = 0
    for c in recent_commits(spark, uri, after=after, upto=upto):
        added = c.metric("numOutputRows")
        tag = c.tag
        if tag is not None and tag.layer == "bronze" and tag.name == dataset:
            batches.append(tag.txn)
            rows += added
        elif c.operation in _DATA_OPS and added > 0:
            raise CurateError(
                dataset,
                f"bronze version {c.version} ({c.operation}, {added} rows) carries no "
                f"'{bronze_tag_prefix(dataset)}<batch>' tag, so its rows cannot be attributed",
                RunCode.UNTAGGED_BRONZE_COMMIT,
            )
    return BronzeRange(after=after, upto=upto, batches=tuple(sorted(set(batches))), rows=rows)


def read_range(spark: SparkSession, uri: str, rng: BronzeRange) -> DataFrame:
    """The bronze rows added in the range (snapshot at ``upto``, filtered by batch)."""
    df = spark.read.format("delta").option("versionAsOf", rng.upto).load(uri)
    if not rng.batches:
        return df.limit(0)
    return df.where(F.col(lake.BATCH_ID).isin(list(rng.batches)))
