"""Trace a landed file forward to the asset versions holding it, or an asset version back.

An asset version traces back to its source files through the pins every layer leaves:

landing file -> ledger entry (dataset, etag, batch) -> batch manifest (bronze version, run id)
-> first silver version whose ``bronze_end_version`` covers it -> first gold version whose
``inputs`` cover that silver version -> asset versions pinned at or after that gold version.
Run ids come from the batch manifest, the run ledger and the asset record.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ingestion.core.lake import batches_dir, bronze_table, gold_table, silver_table
from ingestion.core.runs import RunLedger
from ingestion.events.ledger import Ledger
from transforms.assets.errors import TraceError
from transforms.assets.lineage import bronze_end_at, layer_commits
from transforms.assets.registry import AssetRegistry, parse_ref
from transforms.gold.publish import gold_commits, inputs_at

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import Storage


def _manifest(storage: Storage, dataset: str, batch: int) -> dict[str, Any] | None:
    path = f"{batches_dir(dataset)}/{batch:08d}.json"
    return json.loads(storage.read_bytes(path)) if storage.exists(path) else None


def _manifests(storage: Storage, dataset: str) -> list[dict[str, Any]]:
    out = []
    for obj in storage.list(batches_dir(dataset)):
        if obj.path.endswith(".json"):
            out.append(json.loads(storage.read_bytes(obj.path)))
    return sorted(out, key=lambda m: m.get("batch", 0))


def _run_id(
    ledger: RunLedger, *, dataset: str, job: str, output_version: int, gold: str | None = None
) -> str | None:
    for run in ledger.latest(dataset=dataset, job=job, limit=200):
        if run["status"] == "succeeded" and run["output_version"] == output_version:
            if gold is None or json.loads(run["details"] or "{}").get("gold") == gold:
                return run["run_id"]
    return None


def trace_file(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    path: str,
    *,
    registry: AssetRegistry,
) -> dict[str, Any]:
    """Follow one landed file through every layer (one chain per time it landed)."""
    dataset, rel = catalog.route(path)
    entries = [e for e in Ledger(storage).entries(dataset.name) if e.path == rel]
    if not entries:
        raise TraceError(f"{path}: no ledger entry (the file never landed, or its event was not handled)")
    ledger = RunLedger(spark, storage)
    silver = layer_commits(spark, storage, dataset.name, "silver")
    chains = []
    for entry in sorted(entries, key=lambda e: e.received_at):
        chain: dict[str, Any] = {
            "ledger": {
                "dataset": entry.dataset,
                "path": entry.path,
                "etag": entry.etag,
                "status": entry.status,
                "batch": entry.batch,
                "sha256": entry.sha256,
                "reason": entry.reason,
            },
        }
        chains.append(chain)
        if entry.batch is None:
            continue
        manifest = _manifest(storage, dataset.name, entry.batch)
        if manifest is None:
            continue
        files = [f for f in manifest.get("files", []) if f.get("path") == rel]
        chain["batch"] = {
            "batch": manifest["batch"],
            "status": manifest.get("status"),
            "run_id": manifest.get("run_id"),
            "disposition": files[0].get("disposition") if files else None,
            "rows": files[0].get("rows") if files else None,
        }
        bronze_v = manifest.get("bronze_version")
        if bronze_v is None:
            continue
        chain["bronze"] = {"table": bronze_table(dataset.name), "version": bronze_v}
        covering = next((c for c in silver if c.value >= bronze_v), None)
        if covering is None:
            continue
        chain["silver"] = {
            "table": silver_table(dataset.name),
            "version": covering.version,
            "later_versions": [c.version for c in silver if c.version > covering.version],
            "run_id": _run_id(ledger, dataset=dataset.name, job="curate", output_version=covering.version),
        }
        chain["gold"] = []
        for owner in catalog:
            gold = owner.gold
            if gold is None or dataset.name not in gold.inputs:
                continue
            commit = next(
                (
                    c
                    for c in gold_commits(spark, storage, gold.name)
                    if c.inputs.get(dataset.name, -1) >= covering.version
                ),
                None,
            )
            if commit is None:
                continue
            assets = [a for a in registry.versions(gold.name) if a.delta_version >= commit.version]
            chain["gold"].append(
                {
                    "table": gold_table(gold.name),
                    "version": commit.version,
                    "run_id": _run_id(
                        ledger,
                        dataset=owner.name,
                        job="publish",
                        output_version=commit.version,
                        gold=gold.name,
                    ),
                    "assets": [
                        {"asset": a.label, "delta_version": a.delta_version, "run_id": a.run_id}
                        for a in assets
                    ],
                }
            )
    return {"path": rel, "dataset": dataset.name, "landings": chains}


def trace_asset(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    ref: str,
    *,
    registry: AssetRegistry,
) -> dict[str, Any]:
    """From ``name:version`` back to the silver, bronze and landed files it was built from."""
    name, version = parse_ref(ref)
    asset = registry.get(name, version)
    inputs = inputs_at(spark, storage, asset.name, asset.delta_version) or {}
    ledger = RunLedger(spark, storage)
    out: dict[str, Any] = {
        "asset": asset.label,
        "run_id": asset.run_id,
        "gold": {
            "table": gold_table(asset.name),
            "version": asset.delta_version,
            "run_id": _run_id(
                ledger,
                dataset=asset.dataset,
                job="publish",
                output_version=asset.delta_version,
                gold=asset.name,
            ),
        },
        "inputs": [],
    }
    for ds, silver_v in sorted(inputs.items()):
        bronze_end = bronze_end_at(spark, storage, ds, silver_v)
        item: dict[str, Any] = {
            "dataset": ds,
            "silver": {
                "version": silver_v,
                "run_id": _run_id(ledger, dataset=ds, job="curate", output_version=silver_v),
            },
            "bronze_end_version": bronze_end,
            "batches": [],
        }
        if bronze_end is not None:
            for m in _manifests(storage, ds):
                bv = m.get("bronze_version")
                if m.get("status") != "committed" or bv is None or bv > bronze_end:
                    continue
                item["batches"].append(
                    {
                        "batch": m["batch"],
                        "bronze_version": bv,
                        "run_id": m.get("run_id"),
                        "files": [
                            {"path": f["path"], "sha256": f.get("sha256"), "rows": f.get("rows")}
                            for f in m.get("files", [])
                            if f.get("disposition") == "ingest"
                        ],
                    }
                )
        out["inputs"].append(item)
    if not inputs:
        raise TraceError(f"{asset.label}: gold version {asset.delta_version} carries no publish pins")
    return out
