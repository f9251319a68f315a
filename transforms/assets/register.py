"""Register: a new gold Delta version becomes asset version N+1, pinned, checked and profiled.

Nothing is created when gold has no new data since the last registered version, so reruns never
duplicate a version. Before anything is registered the asset is read back through ``mltable`` and
compared with ``spark.read.option("versionAsOf", V)``. The run ledger gets one ``register`` row
per run: succeeded, skipped (unchanged) or failed (with the reason; the next run retries).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestion.core.config import Settings, get_settings
from ingestion.core.lake import gold_table, silver_table
from ingestion.core.lease import Lease
from ingestion.core.lifecycle import JobRun, job_run
from ingestion.core.runs import RunLedger, RunRecord
from ingestion.core.spark.commits import recent_commits
from ingestion.core.spark.delta import read_version, table_version
from ingestion.core.storage import LocalStorage, Storage
from transforms.assets.errors import GoldNotPublishedError, LoadCheckError
from transforms.assets.lineage import bronze_end_at
from transforms.assets.mltable_io import (
    check_mltable_yaml,
    load_check,
    snapshot_check,
    write_mltable,
    write_snapshot,
)
from transforms.assets.profile import (
    compare_profiles,
    drifted_columns,
    profile_frame,
    schema_hash,
    schema_json,
)
from transforms.assets.registry import AssetRegistry, AssetVersion, LocalRegistry, version_dir
from transforms.assets.report import render_report
from transforms.gold.publish import RETENTION_SLACK_DAYS, gold_of, inputs_at

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog, Dataset, Gold

log = logging.getLogger(__name__)
JOB = "register"
ASSET_SCOPE = "asset"  # the lease register holds while it makes the next version


@dataclass
class RegisterResult(RunRecord):
    """What a register run did: the run's record plus the asset version it made or kept.

    ``status`` is the run's: ``succeeded`` (a version was registered), ``skipped`` (gold
    unchanged, ``asset`` is the latest version) or ``failed``; :attr:`outcome` says it in
    register's words.
    """

    asset: AssetVersion | None = None
    previous: AssetVersion | None = None
    drift: dict[str, Any] | None = None
    report_path: str | None = None  # lake path of the HTML report
    report_uri: str | None = None  # where to open it
    reason: str = ""
    drifted: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``registered``, ``unchanged`` or ``failed``."""
        return {"succeeded": "registered", "skipped": "unchanged"}.get(self.status, self.status)

    def as_dict(self) -> dict[str, Any]:
        """The run's record with the asset's label, version, drift verdict and report."""
        out = RunRecord.as_dict(self)
        for name in ("asset", "previous", "drift", "report_path", "report_uri"):
            out.pop(name, None)
        return {
            **out,
            "outcome": self.outcome,
            "asset": self.asset.label if self.asset else None,
            "previous": self.previous.label if self.previous else None,
            "delta_version": self.asset.delta_version if self.asset else None,
            "verdict": (self.drift or {}).get("verdict"),
            "report": self.report_uri,
        }


def open_registry(settings: Settings, storage: Storage, **azure_kwargs: Any) -> AssetRegistry:
    """The Azure ML registry when the workspace is configured, else the local one."""
    local = LocalRegistry(storage)
    if settings.ml.configured:
        from transforms.assets.azureml import AzureMLRegistry

        return AzureMLRegistry(settings.ml, local, **azure_kwargs)
    return local


def local_of(registry: AssetRegistry) -> LocalRegistry:
    return registry if isinstance(registry, LocalRegistry) else registry.mirror  # type: ignore[attr-defined]


def code_version(settings: Settings | None = None) -> str:
    """``settings.code_version``, else ``headwater <version>`` plus the git commit of a checkout."""
    configured = (settings or get_settings()).code_version
    if configured:
        return configured
    try:
        from importlib.metadata import version

        base = f"headwater {version('headwater')}"
    except Exception:  # not installed as a distribution
        base = "headwater"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{base} (git {sha})" if sha else base
    except (OSError, subprocess.SubprocessError):
        return base


def quality_figures(ledger: RunLedger, datasets: tuple[str, ...]) -> dict[str, Any]:
    """The latest successful curate run of each input dataset (counts and rule names only)."""
    out: dict[str, Any] = {}
    for ds in datasets:
        runs = [r for r in ledger.latest(dataset=ds, job="curate", limit=10) if r["status"] == "succeeded"]
        if not runs:
            out[ds] = None
            continue
        r = runs[0]
        out[ds] = {
            "run_id": r["run_id"],
            "read": r["rows_read"],
            "written": r["rows_written"],
            "quarantined": r["rows_quarantined"],
            "dropped": r["rows_dropped"],
            "warned": r["rows_warned"],
            "rules": dict(r["rules"] or {}),
        }
    return out


# Commits that never change a table's rows: a version made only of these is the same data.
NO_DATA_OPERATIONS = frozenset(
    {
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "CHANGE COLUMN",
        "REORG",
    }
)


def _same_data(spark: SparkSession, uri: str, old: int, new: int) -> bool:
    """Whether every commit after ``old`` up to ``new`` left the rows as they were."""
    ops = [c.operation for c in recent_commits(spark, uri, after=old, upto=new)]
    return bool(ops) and all(op in NO_DATA_OPERATIONS for op in ops)


def _commit_age_days(spark: SparkSession, uri: str, version: int) -> float | None:
    import time

    found = recent_commits(spark, uri, after=version - 1, upto=version)
    if not found or found[0].timestamp is None:
        return None
    # PySpark hands timestamps back as naive local datetimes; .timestamp() reads them the same way.
    return (time.time() - found[0].timestamp.timestamp()) / 86400


def _lake_file(storage: Storage, path: str) -> str:
    if isinstance(storage, LocalStorage):
        return str(Path(storage.root) / path)
    return storage.uri(path)


def register(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset_name: str,
    *,
    settings: Settings | None = None,
    registry: AssetRegistry | None = None,
    max_check_rows: int = 200_000,
    lease_wait: float = 0.0,
) -> RegisterResult:
    """Register gold's current Delta version as the next asset version, if its data changed.

    Args:
        spark: the session (Delta configured).
        storage: the lake.
        catalog: the project's datasets.
        dataset_name: the dataset (or its gold name).
        settings: environment and Azure ML settings; default :func:`get_settings`.
        registry: defaults to Azure ML when configured, else the local registry.
        max_check_rows: the load check compares every row up to this many; above, counts and
            schema only.
        lease_wait: seconds to wait for a running register of the dataset.

    Raises:
        GoldNotPublishedError, LoadCheckError, RegistryUnavailableError: recorded as a failed
            register run first; gold is never touched.
        LeaseHeldError: another register of the dataset is running (nothing recorded).
    """
    settings = settings or get_settings()
    ds, gold = gold_of(catalog, dataset_name)
    registry = registry or open_registry(settings, storage)
    result = RegisterResult(job=JOB, dataset=ds.name)
    result.details = {"asset": gold.name, "registry": registry.kind, "env": settings.env.value}
    lease = Lease(storage, ds.name, scope=ASSET_SCOPE, owner=result.run_id, seconds=settings.lease_seconds)
    with job_run(spark, storage, result, lease=lease, lease_wait=lease_wait) as run:
        _register(spark, storage, ds, gold, registry, settings, run, max_check_rows=max_check_rows)
    return result


def _register(
    spark: SparkSession,
    storage: Storage,
    ds: Dataset,
    gold: Gold,
    registry: AssetRegistry,
    settings: Settings,
    run: JobRun,
    *,
    max_check_rows: int,
) -> None:
    record = run.record
    assert isinstance(record, RegisterResult)
    local = local_of(registry)
    ledger = RunLedger(spark, storage)
    gold_path = gold_table(gold.name)
    uri = storage.uri(gold_path)
    version = table_version(spark, uri)
    if version is None:
        raise GoldNotPublishedError(gold.name, gold_path)
    record.input_to = version
    last = registry.latest(gold.name)
    if last is not None and (
        last.delta_version >= version or _same_data(spark, uri, last.delta_version, version)
    ):
        reason = f"gold has no new data since {last.label} (Delta version {last.delta_version})"
        record.output_version = last.version
        record.details["asset_version"] = last.version
        record.asset, record.reason = last, reason
        run.skip(reason)
        return

    df = read_version(spark, uri, version)
    if df.isEmpty():
        # A gold created but not yet given rows (its inputs were empty): no asset to read.
        reason = f"gold Delta version {version} holds no rows: nothing to register yet"
        record.reason = reason
        run.skip(reason)
        return

    lag = _commit_age_days(spark, uri, version)
    if lag is not None and lag > RETENTION_SLACK_DAYS:
        record.details["warning"] = (
            f"Delta version {version} was committed {lag:.0f} days ago: the table's retention "
            f"covers registrations within {RETENTION_SLACK_DAYS} days of a publish"
        )
        log.warning(record.details["warning"])
    number = registry.next_version(gold.name)
    label = f"{gold.name}:{number}"
    record.details["asset_version"] = number

    # 1. the asset folder, read back the way a data scientist will read it
    if gold.asset_type == "mltable":
        folder, text = write_mltable(storage, gold_path, version)
        problems = check_mltable_yaml(text, delta_version=version)
        check = load_check(spark, storage, folder, uri, version, max_rows=max_check_rows)
        problems += check.problems
    else:
        folder = write_snapshot(spark, storage, gold_path, version)
        check = snapshot_check(spark, storage, folder, uri, version)
        problems = check.problems
    if problems:
        raise LoadCheckError(label, folder, problems)
    record.rows_read = check.rows_delta
    target = registry.asset_uri(storage, folder)

    # 2. profile, drift against the previous version's stored profile, report
    prev_profile = local.read_json(last.name, last.version, "profile.json") if last else None
    profile = profile_frame(df, skip=gold.keys, exclude=gold.drift_exclude, reference=prev_profile)
    profile["delta_version"] = version
    drift = compare_profiles(prev_profile, profile, warn=ds.drift.warn, drift=ds.drift.drift)
    flagged = drifted_columns(drift, level="drift")

    # 3. lineage and tags
    inputs = inputs_at(spark, storage, gold.name, version) or {}
    lineage = {
        "asset": label,
        "gold": {"name": gold.name, "table_uri": uri, "delta_version": version},
        "silver": {
            name: {
                "version": v,
                "table_uri": storage.uri(silver_table(name)),
                "bronze_end_version": bronze_end_at(spark, storage, name, v),
            }
            for name, v in sorted(inputs.items())
        },
    }
    lineage_path = f"{version_dir(gold.name, number)}/lineage.json"
    report_path = f"{version_dir(gold.name, number)}/drift.html"
    tags = {
        "delta_version": str(version),
        "table_uri": uri,
        "row_count": str(profile["rows"]),
        "schema_hash": schema_hash(df.schema),
        "schema": schema_json(df.schema),
        "quality": json.dumps(quality_figures(ledger, gold.inputs), sort_keys=True, separators=(",", ":")),
        "lineage": storage.uri(lineage_path),
        "silver_versions": ",".join(f"{k}@{v}" for k, v in sorted(inputs.items())),
        "run_id": record.run_id,
        "environment": settings.env.value,
        "code_version": code_version(settings),
        "drift_verdict": drift["verdict"],
        "drift_columns": ",".join(flagged),
        "drift_report": storage.uri(report_path),
        "previous_version": str(last.version) if last else "",
    }
    asset = AssetVersion(
        name=gold.name,
        version=number,
        asset_type=gold.asset_type,
        dataset=ds.name,
        delta_version=version,
        table_uri=uri,
        path=folder,
        asset_uri=target,
        tags=tags,
        description=gold.description or ds.description,
        run_id=record.run_id,
        retention_days=gold.asset_retention_days,
        registry=registry.kind,
    )
    html = render_report(asset=label, previous=last.label if last else None, drift=drift, tags=tags)
    # Artifacts first (keyed by the version, overwritten by a retry), then the version itself.
    local.write_artifact(gold.name, number, "profile.json", json.dumps(profile, default=str).encode())
    local.write_artifact(gold.name, number, "drift.json", json.dumps(drift, indent=1, default=str).encode())
    local.write_artifact(gold.name, number, "lineage.json", json.dumps(lineage, indent=1).encode())
    local.write_artifact(gold.name, number, "drift.html", html.encode())
    registry.create(asset)

    record.output_version = number
    record.rows_written = profile["rows"]
    record.details.update(
        delta_version=version,
        verdict=drift["verdict"],
        drifted=flagged,
        report=report_path,
        load_check={"rows": check.rows_asset, "compared_rows": check.compared_rows},
    )
    record.asset, record.previous, record.drift, record.drifted = asset, last, drift, flagged
    record.report_path, record.report_uri = report_path, _lake_file(storage, report_path)
    log.info("registered %s (Delta v%s, drift %s)", label, version, drift["verdict"])
