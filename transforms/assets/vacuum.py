"""VACUUM that never breaks a live asset version.

Delta's own check only knows a retention period. Here every live registered version (not
archived, within its retention) is pinned: the files its Delta version reads are compared with
what ``VACUUM ... DRY RUN`` would delete, and on any overlap nothing is deleted and the error
names the versions and files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingestion.core.lake import gold_table
from ingestion.core.spark.commits import session_conf
from transforms.assets.errors import GoldNotPublishedError, VacuumRefusedError
from transforms.assets.registry import AssetRegistry
from transforms.gold.publish import RETENTION_SLACK_DAYS, gold_of

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import Storage

_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
_LISTING_CONF = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def _norm(path: str) -> str:
    """One spelling per file: ``file:/a``, ``file:///a`` and ``/a`` are the same local file."""
    return re.sub(r"^file:/+", "/", path)


@dataclass
class VacuumResult:
    table: str
    retain_hours: float
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    protected: dict[str, int] = field(default_factory=dict)  # live asset label -> files it reads

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "retain_hours": self.retain_hours,
            "dry_run": self.dry_run,
            "files": len(self.deleted),
            "protected_versions": self.protected,
        }


def live_files(spark: SparkSession, uri: str, registry: AssetRegistry, name: str) -> dict[str, set[str]]:
    """Files each live asset version of ``name`` reads, by label."""
    out = {}
    for asset in registry.versions(name):
        if asset.is_live():
            files = (
                spark.read.format("delta").option("versionAsOf", asset.delta_version).load(uri).inputFiles()
            )
            out[asset.label] = {_norm(f) for f in files}
    return out


def vacuum(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset_name: str,
    *,
    registry: AssetRegistry,
    retain_hours: float | None = None,
    dry_run: bool = False,
) -> VacuumResult:
    """Vacuum a dataset's gold table unless a live asset version needs a file it would delete.

    Args:
        spark: the session (Delta configured).
        storage: the lake.
        catalog: the project's datasets.
        dataset_name: the dataset (or its gold name).
        registry: the asset registry whose live versions pin files.
        retain_hours: keep files removed from the table less than this long ago; defaults to
            the table's deleted-file retention (asset lifetime plus slack).
        dry_run: only list what would be deleted.

    Raises:
        VacuumRefusedError: live versions still read some of the files (nothing deleted).
    """
    from delta.tables import DeltaTable

    _ds, gold = gold_of(catalog, dataset_name)
    uri = storage.uri(gold_table(gold.name))
    if not DeltaTable.isDeltaTable(spark, uri):
        raise GoldNotPublishedError(gold.name, gold_table(gold.name))
    default = (gold.asset_retention_days + RETENTION_SLACK_DAYS) * 24  # the table's own setting
    hours = float(default if retain_hours is None else retain_hours)
    pinned = live_files(spark, uri, registry, gold.name)
    # Our guard below is stricter than Delta's period check for registered versions, so the
    # period check is lifted for this one command only.
    conf = {_CHECK_CONF: "false"}
    # VACUUM lists files with this many tasks (10000 by default): minutes for a small table on
    # a small cluster. Scale it to the cluster unless someone chose a value.
    if spark.conf.get(_LISTING_CONF, "10000") == "10000":
        conf[_LISTING_CONF] = str(max(8, spark.sparkContext.defaultParallelism * 4))
    with session_conf(spark, conf):
        candidates = [r[0] for r in spark.sql(f"VACUUM delta.`{uri}` RETAIN {hours} HOURS DRY RUN").collect()]
        doomed = {_norm(p) for p in candidates}
        needed = {label: len(files & doomed) for label, files in pinned.items() if files & doomed}
        if needed:
            samples = sorted({f.rsplit("/", 1)[-1] for files in pinned.values() for f in files & doomed})
            raise VacuumRefusedError(gold_table(gold.name), needed, samples)
        result = VacuumResult(
            gold_table(gold.name),
            hours,
            dry_run,
            sorted(candidates),
            {label: len(files) for label, files in pinned.items()},
        )
        if not dry_run and candidates:
            spark.sql(f"VACUUM delta.`{uri}` RETAIN {hours} HOURS")
        return result
