"""Reading the pins each layer stamps on its Delta commits.

bronze: ``userMetadata = headwater-bronze-<dataset>:<batch>``, one commit per ingest batch;
silver: ``headwater-silver-<dataset>:<bronze_end_version>``, each curate commit;
gold:   ``headwater-gold-<name>:<txn>;inputs=<dataset>@<silver version>,...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

_LAYER_RE = re.compile(r"^headwater-(?P<layer>bronze|silver)-(?P<ds>[a-z0-9_]+):(?P<n>\d+)$")


@dataclass(frozen=True)
class LayerCommit:
    version: int
    dataset: str
    value: int  # bronze: batch number; silver: bronze end version
    timestamp: object


def layer_commits(spark: SparkSession, uri: str, layer: str) -> list[LayerCommit]:
    """The tagged commits of a bronze or silver table, oldest first."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, uri):
        return []
    out = []
    for r in (
        DeltaTable.forPath(spark, uri).history().select("version", "timestamp", "userMetadata").collect()
    ):
        m = _LAYER_RE.match(r["userMetadata"] or "")
        if m and m.group("layer") == layer:
            out.append(LayerCommit(int(r["version"]), m.group("ds"), int(m.group("n")), r["timestamp"]))
    return sorted(out, key=lambda c: c.version)


def bronze_end_at(spark: SparkSession, silver_uri: str, silver_version: int) -> int | None:
    """The bronze version a silver version has consumed up to (newest tag at or before it)."""
    found = [c for c in layer_commits(spark, silver_uri, "silver") if c.version <= silver_version]
    return found[-1].value if found else None
