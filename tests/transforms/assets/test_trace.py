"""Trace a landed file to its asset versions and an asset version back to its files.

Bronze commits, batch manifests and ledger entries are written in the documented layout (the
ingest job's), silver with the curate job's commit tag; publish and register are the real ones.
"""

from __future__ import annotations

import json
import time

import gold_fixtures as gf
import pytest

from ingestion.core.lake import batches_dir, bronze_table
from ingestion.core.runs import RunLedger, RunRecord
from ingestion.events.ledger import Ledger

pytestmark = pytest.mark.spark
pytest.importorskip("mltable")


def _ingest(spark, lake, dataset: str, batch: int, paths: list[str]) -> int:
    """What the ingest job leaves behind for one batch: entries, manifest, tagged bronze commit."""
    from ingestion.core.spark.delta import table_version

    uri = lake.uri(bronze_table(dataset))
    spark.conf.set(gf.USER_METADATA, f"headwater-bronze-{dataset}:{batch}")
    try:
        spark.createDataFrame([(p,) for p in paths], "_source_path string").write.format("delta").mode(
            "append"
        ).save(uri)
    finally:
        spark.conf.unset(gf.USER_METADATA)
    version = table_version(spark, uri)
    ledger = Ledger(lake)
    files = []
    for entry in ledger.entries(dataset):
        if entry.path in paths:
            ledger.update(entry, status="ingested", batch=batch, sha256="ab" * 32)
            files.append(
                {
                    "key": entry.key,
                    "path": entry.path,
                    "etag": entry.etag,
                    "size": entry.size,
                    "sha256": "ab" * 32,
                    "disposition": "ingest",
                    "reason": None,
                    "rows": 3,
                }
            )
    manifest = {
        "dataset": dataset,
        "batch": batch,
        "status": "committed",
        "run_id": f"ingest-{dataset}-{batch}",
        "created_at": time.time(),
        "committed_at": time.time(),
        "bronze_version": version,
        "rows": 3 * len(files),
        "files": files,
    }
    lake.write_bytes(f"{batches_dir(dataset)}/{batch:08d}.json", json.dumps(manifest).encode())
    return version


def _curated(spark, lake, dataset: str, rows: list[tuple], bronze_end: int) -> int:
    version = gf.write_silver(spark, lake, dataset, rows, bronze_end=bronze_end)
    RunLedger(spark, lake).append(
        RunRecord(
            job="curate", dataset=dataset, run_id=f"curate-{dataset}-{version}", output_version=version
        ).finish("succeeded")
    )
    return version


@pytest.fixture(scope="module")
def pipeline(spark, module_lake):
    from ingestion.contracts import Catalog
    from ingestion.events import EventHandler
    from transforms.assets import LocalRegistry, register
    from transforms.gold import publish

    lake_settings, lake = module_lake
    catalog = Catalog.discover()
    handler = EventHandler(Ledger(lake), catalog)

    def land(path: str, data: bytes) -> None:
        info = lake.write_bytes(f"landing/{path}", data)
        handler.file_landed(path, etag=info.etag, size=info.size)

    land("orders/2026/a.csv", b"order_id\nO-0001\n")
    land("customers/c.jsonl", b'{"customer_id": "C-001"}\n')
    b0 = _ingest(spark, lake, "orders", 1, ["orders/2026/a.csv"])
    c0 = _ingest(spark, lake, "customers", 1, ["customers/c.jsonl"])
    _curated(spark, lake, "customers", gf.customers(4), c0)
    _curated(spark, lake, "orders", gf.orders(4, 10, seed=1), b0)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    register(spark, lake, catalog, "orders", settings=lake_settings)

    land("orders/2026/b.csv", b"order_id\nO-0011\n")
    b1 = _ingest(spark, lake, "orders", 2, ["orders/2026/b.csv"])
    _curated(spark, lake, "orders", gf.orders(4, 10, seed=1) + gf.orders(4, 5, seed=2, start=11), b1)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    register(spark, lake, catalog, "orders", settings=lake_settings)
    return LocalRegistry(lake), lake, catalog


def test_trace_a_landed_file_forward_to_every_asset_version_holding_it(spark, pipeline):
    registry, lake, catalog = pipeline
    from transforms.assets.trace import trace_file

    first = trace_file(spark, lake, catalog, "landing/orders/2026/a.csv", registry=registry)
    (chain,) = first["landings"]
    assert chain["ledger"]["status"] == "ingested" and chain["ledger"]["batch"] == 1
    assert chain["batch"] == {
        "batch": 1,
        "status": "committed",
        "run_id": "ingest-orders-1",
        "disposition": "ingest",
        "rows": 3,
    }
    assert chain["bronze"]["version"] == 0
    assert chain["silver"]["version"] == 0 and chain["silver"]["later_versions"] == [1]
    assert chain["silver"]["run_id"] == "curate-orders-0"
    (gold,) = chain["gold"]
    assert gold["table"] == "gold/customer_features" and gold["version"] == 1
    assert gold["run_id"].startswith("publish-")
    assert [a["asset"] for a in gold["assets"]] == ["customer_features:1", "customer_features:2"]

    later = trace_file(spark, lake, catalog, "orders/2026/b.csv", registry=registry)
    (chain,) = later["landings"]
    assert (chain["batch"]["batch"], chain["bronze"]["version"], chain["silver"]["version"]) == (2, 1, 1)
    assert chain["gold"][0]["version"] == 2
    assert [a["asset"] for a in chain["gold"][0]["assets"]] == ["customer_features:2"]


def test_trace_an_asset_version_back_to_its_source_files(spark, pipeline):
    registry, lake, catalog = pipeline
    from transforms.assets.trace import trace_asset

    v1 = trace_asset(spark, lake, catalog, "customer_features:1", registry=registry)
    assert v1["gold"]["version"] == 1 and v1["run_id"].startswith("register-")
    by_ds = {i["dataset"]: i for i in v1["inputs"]}
    assert by_ds["orders"]["silver"] == {"version": 0, "run_id": "curate-orders-0"}
    assert [f["path"] for b in by_ds["orders"]["batches"] for f in b["files"]] == ["orders/2026/a.csv"]
    assert [f["path"] for b in by_ds["customers"]["batches"] for f in b["files"]] == ["customers/c.jsonl"]

    v2 = trace_asset(spark, lake, catalog, "customer_features:2", registry=registry)
    orders = next(i for i in v2["inputs"] if i["dataset"] == "orders")
    assert [(b["batch"], b["run_id"]) for b in orders["batches"]] == [
        (1, "ingest-orders-1"),
        (2, "ingest-orders-2"),
    ]
    assert [f["path"] for b in orders["batches"] for f in b["files"]] == [
        "orders/2026/a.csv",
        "orders/2026/b.csv",
    ]


def test_trace_explains_unknown_inputs(spark, pipeline):
    registry, lake, catalog = pipeline
    from ingestion.core.errors import RejectedPathError
    from transforms.assets import AssetNotFoundError, TraceError
    from transforms.assets.trace import trace_asset, trace_file

    with pytest.raises(TraceError, match="no ledger entry"):
        trace_file(spark, lake, catalog, "orders/2026/never.csv", registry=registry)
    with pytest.raises(RejectedPathError):
        trace_file(spark, lake, catalog, "elsewhere/x.bin", registry=registry)
    with pytest.raises(AssetNotFoundError, match="customer_features:9"):
        trace_asset(spark, lake, catalog, "customer_features:9", registry=registry)
