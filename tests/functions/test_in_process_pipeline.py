"""The in-process submitter end to end: landed files reach the count threshold, the batcher
runs the real pipeline job (local Spark + Delta), bronze and silver hold their rows, and a run
that meets another run's lease is coalesced, not failed."""

from __future__ import annotations

import pytest

from functions.runtime import LandingRuntime, submitter_from_settings
from ingestion.core.config import BatchingSettings

pytestmark = pytest.mark.spark

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"


def test_count_threshold_runs_a_pipeline_in_process(spark, lake, lake_settings, catalog):
    settings = lake_settings.model_copy(
        update={"batching": BatchingSettings(max_files=2, max_bytes=10**9, max_age_seconds=3600)}
    )
    rt = LandingRuntime(settings, lake, catalog=catalog, submitter=submitter_from_settings(settings))
    files = {
        "orders/2026/11/a.csv": HEADER + b"O-0001,C-001,new,10.00,1,2026-11-01,,2026-11-01T10:00:00\n",
        "orders/2026/11/b.csv": HEADER + b"O-0002,C-002,paid,20.50,2,2026-11-02,,2026-11-02T10:00:00\n"
        b"O-0003,C-001,shipped,5.00,1,2026-11-02,2026-11-03,2026-11-03T09:00:00\n",
    }
    results = []
    for name, body in files.items():
        info = lake.write_bytes(f"landing/{name}", body)
        results.append(rt.handle_file(name, etag=info.etag, size=info.size))

    assert [r.outcome for r in results] == ["queued", "queued"]
    assert results[0].batch is not None and results[0].batch.outcome == "idle"
    batch = results[1].batch
    assert batch is not None and batch.outcome == "ran", batch
    assert [d.reason for d in batch.started_by] == ["files"]
    assert rt.ledger.queued("orders") == []
    assert {e.status for e in rt.ledger.entries("orders")} == {"ingested"}

    rows = (
        spark.read.format("delta")
        .load(lake.uri("bronze/orders"))
        .select("order_id", "_source_path")
        .orderBy("order_id")
        .collect()
    )
    assert [(r.order_id, r._source_path) for r in rows] == [
        ("O-0001", "orders/2026/11/a.csv"),
        ("O-0002", "orders/2026/11/b.csv"),
        ("O-0003", "orders/2026/11/b.csv"),
    ]
    # The run went on past ingest: the batch is curated, and the gold (which also reads
    # customers, not curated yet) says what it waits for.
    summary = batch.runs[0]
    assert (summary["job"], summary["status"], summary["stopped_at"]) == ("pipeline", "succeeded", None)
    assert summary["outcomes"] == {
        "ingest": "succeeded",
        "curate": "succeeded",
        "publish:customer_features": "waiting",
    }
    silver = spark.read.format("delta").load(lake.uri("silver/orders")).select("order_id", "status")
    assert sorted(tuple(r) for r in silver.collect()) == [
        ("O-0001", "new"),
        ("O-0002", "paid"),
        ("O-0003", "shipped"),
    ]


def test_a_pipeline_meeting_a_held_ingest_lease_is_coalesced(spark, lake, lake_settings, catalog):
    from ingestion.core.lease import Lease
    from ingestion.core.reasons import RunCode

    settings = lake_settings.model_copy(
        update={"batching": BatchingSettings(max_files=1, max_bytes=10**9, max_age_seconds=3600)}
    )
    rt = LandingRuntime(settings, lake, catalog=catalog, submitter=submitter_from_settings(settings))
    holder = Lease(lake, "orders", owner="run-elsewhere", seconds=60, heartbeat=False).acquire()
    try:
        name = "orders/2026/11/c.csv"
        info = lake.write_bytes(
            f"landing/{name}", HEADER + b"O-0009,C-001,new,1.00,1,2026-11-01,,2026-11-01T10:00:00\n"
        )
        handled = rt.handle_file(name, etag=info.etag, size=info.size)
    finally:
        holder.release()
    assert handled.batch is not None
    assert (handled.batch.outcome, handled.batch.code) == ("coalesced", RunCode.LEASE_HELD)
    assert "run-elsewhere" in (handled.batch.error or "")
    assert [q.path for q in rt.ledger.queued("orders")] == [name]  # left for the holder or the sweep
