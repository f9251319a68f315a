"""Reading the pins each layer stamps on its Delta commits, from the commit index.

bronze: ``headwater-bronze-<dataset>:<batch>``, one commit per ingest batch;
silver: ``headwater-silver-<dataset>:<bronze_end_version>``, each curate commit;
gold:   ``headwater-gold-<name>:<txn>;inputs=<dataset>@<silver version>,...``.

The index (``system/commits``, see :mod:`ingestion.core.spark.commits`) outlives the commit
JSONs Delta deletes after ``logRetentionDuration``; commits it has not recorded yet are read
from the log since the newest version it knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingestion.core.lake import bronze_table, silver_table
from ingestion.core.spark.commits import CommitIndex

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.core.storage import Storage

_TABLES = {"bronze": bronze_table, "silver": silver_table}


@dataclass(frozen=True)
class LayerCommit:
    version: int
    dataset: str
    value: int  # bronze: batch number; silver: bronze end version
    timestamp: object


def layer_commits(spark: SparkSession, storage: Storage, dataset: str, layer: str) -> list[LayerCommit]:
    """The tagged commits of a dataset's bronze or silver table, oldest first."""
    table = _TABLES[layer](dataset)
    index = CommitIndex(storage, table).sync(spark, storage.uri(table))
    out = []
    for c in index.entries():
        tag = c.tag
        if tag is not None and tag.layer == layer:
            out.append(LayerCommit(c.version, tag.name, tag.txn, c.timestamp))
    return out


def bronze_end_at(spark: SparkSession, storage: Storage, dataset: str, silver_version: int) -> int | None:
    """The bronze version a silver version has consumed up to (newest tag at or before it)."""
    found = [c for c in layer_commits(spark, storage, dataset, "silver") if c.version <= silver_version]
    return found[-1].value if found else None
