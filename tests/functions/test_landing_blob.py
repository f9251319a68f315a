"""The landing functions invoked with real binding objects against Azurite (Blob API)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import azure.functions as func
import pytest

from functions.runtime import LandingRuntime, set_runtime
from ingestion.core.config import BatchingSettings, BatchThresholds
from ingestion.events.ledger import entry_key

pytestmark = pytest.mark.azurite

CSV = (
    b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    b"O-0001,C-001,new,10.00,1,2026-11-01,,2026-11-01T10:00:00\n"
)


# What the worker hands a function's `context` parameter: the host's trace of the invocation.
INVOCATION = SimpleNamespace(
    trace_context=SimpleNamespace(
        Traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate=""
    )
)


def _entries(rt: LandingRuntime, dataset: str) -> list:
    return list(rt.ledger.entries(dataset))


def _event(event_type: str, data: dict, subject: str) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=f"evt-{abs(hash((event_type, subject, json.dumps(data, sort_keys=True))))}",
        data=data,
        topic="/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/lake",
        subject=subject,
        event_type=event_type,
        event_time=datetime.now(timezone.utc),
        data_version="",
    )


def _subject(rt: LandingRuntime, name: str) -> str:
    return f"/blobServices/default/containers/{rt.landing_container}/blobs/{name}"


def _dfs_url(rt: LandingRuntime, name: str) -> str:
    return f"https://devstoreaccount1.dfs.core.windows.net/{rt.landing_container}/{name}"


def test_small_csv_is_recorded_once_with_the_blobs_etag(
    runtime, azurite_storage, bind_blob, function, submitter
):
    info = azurite_storage.write_bytes("landing/orders/2026/11/a.csv", CSV)

    function("landing_blob")(bind_blob("orders/2026/11/a.csv"), INVOCATION)

    (entry,) = _entries(runtime, "orders")
    assert (entry.path, entry.etag, entry.size, entry.status) == (
        "orders/2026/11/a.csv",
        info.etag,
        len(CSV),
        "pending",
    )
    assert [q.path for q in runtime.ledger.queued("orders")] == ["orders/2026/11/a.csv"]
    assert submitter.calls == []  # thresholds not reached: no run yet


def test_count_threshold_turns_pending_files_into_one_run(
    runtime, azurite_storage, bind_blob, function, submitter
):
    runtime.batcher.policy.settings.datasets["orders"] = BatchThresholds(max_files=2)
    for name in ("orders/a.csv", "orders/b.csv"):
        azurite_storage.write_bytes(f"landing/{name}", CSV)
    function("landing_blob")(bind_blob("orders/a.csv"), INVOCATION)
    assert submitter.calls == []
    function("landing_blob")(bind_blob("orders/b.csv"), INVOCATION)
    assert submitter.calls == ["orders"]


def test_zero_length_create_file_is_ignored_until_data_is_flushed(runtime, azurite_storage, bind_blob):
    azurite_storage.write_bytes("landing/orders/c.csv", b"")  # what CreateFile leaves

    handled = runtime.on_blob(bind_blob("orders/c.csv"))

    assert (handled.outcome, handled.reason_code) == ("ignored", "zero_length")
    assert _entries(runtime, "orders") == [] and runtime.ledger.queued("orders") == []
    # The completed write (FlushWithClose) is a new version: it counts.
    info = azurite_storage.write_bytes("landing/orders/c.csv", CSV)
    handled = runtime.on_blob(bind_blob("orders/c.csv"))
    assert handled.outcome == "queued" and handled.etag == info.etag


def test_redelivered_event_is_a_no_op(runtime, azurite_storage, bind_blob, function, submitter):
    runtime.batcher.policy.settings.datasets["orders"] = BatchThresholds(max_files=1)
    azurite_storage.write_bytes("landing/orders/d.csv", CSV)
    function("landing_blob")(bind_blob("orders/d.csv"), INVOCATION)
    (entry,) = _entries(runtime, "orders")
    raw = azurite_storage.read_bytes(f"system/ledger/orders/{entry.key}.json")
    assert submitter.calls == ["orders"]

    again = runtime.on_blob(bind_blob("orders/d.csv"))
    function("landing_blob")(bind_blob("orders/d.csv"), INVOCATION)

    assert again.outcome == "duplicate" and again.batch is None
    assert azurite_storage.read_bytes(f"system/ledger/orders/{entry.key}.json") == raw
    assert len(_entries(runtime, "orders")) == 1
    assert submitter.calls == ["orders"]  # no second run for a redelivery


def test_rename_into_landing_is_handled_from_blob_renamed(runtime, azurite_storage, function):
    # Azurite has no DFS rename: do what a rename leaves behind (the file under its new name),
    # then deliver the BlobRenamed event ADLS raises (it carries no etag or size).
    azurite_storage.write_bytes("landing/_tmp/upload-123.part", CSV)
    azurite_storage.copy("landing/_tmp/upload-123.part", "landing/orders/renamed.csv")
    azurite_storage.delete("landing/_tmp/upload-123.part")
    info = azurite_storage.info("landing/orders/renamed.csv")
    event = _event(
        "Microsoft.Storage.BlobRenamed",
        {
            "api": "RenameFile",
            "sourceUrl": _dfs_url(runtime, "_tmp/upload-123.part"),
            "destinationUrl": _dfs_url(runtime, "orders/renamed.csv"),
            "sequencer": "01",
        },
        _subject(runtime, "orders/renamed.csv"),
    )

    function("landing_events")(event, INVOCATION)

    (entry,) = _entries(runtime, "orders")
    assert (entry.path, entry.etag, entry.size) == ("orders/renamed.csv", info.etag, len(CSV))


def test_directory_renamed_into_landing_records_each_file(runtime, azurite_storage):
    for i in range(3):
        azurite_storage.write_bytes(f"landing/orders/2026/12/part-{i}.csv", CSV)
    results = runtime.on_event(
        "Microsoft.Storage.DirectoryRenamed",
        _subject(runtime, "orders/2026/12"),
        {"api": "RenameDirectory", "destinationUrl": _dfs_url(runtime, "orders/2026/12")},
    )
    assert sorted((r.outcome, r.path) for r in results) == [
        ("queued", f"orders/2026/12/part-{i}.csv") for i in range(3)
    ]


def test_event_grid_filtering(runtime, azurite_storage, function):
    azurite_storage.write_bytes("landing/orders/e.csv", CSV)
    subject = _subject(runtime, "orders/e.csv")
    url = f"https://devstoreaccount1.blob.core.windows.net/{runtime.landing_container}/orders/e.csv"

    create = runtime.on_event(
        "Microsoft.Storage.BlobCreated", subject, {"api": "CreateFile", "contentLength": 0, "url": url}
    )
    deleted = runtime.on_event("Microsoft.Storage.BlobDeleted", subject, {"api": "DeleteFile", "url": url})
    other = runtime.on_event(
        "Microsoft.Storage.BlobCreated",
        "/blobServices/default/containers/elsewhere/blobs/orders/e.csv",
        {"api": "PutBlob", "url": "https://devstoreaccount1.blob.core.windows.net/elsewhere/orders/e.csv"},
    )
    assert [(r.outcome, r.reason_code) for r in create + deleted + other] == [
        ("ignored", "incomplete_write"),
        ("ignored", "event_type"),
        ("ignored", "other_container"),
    ]
    assert _entries(runtime, "orders") == []

    function("landing_events")(
        _event(
            "Microsoft.Storage.BlobCreated",
            {"api": "FlushWithClose", "contentLength": len(CSV), "url": url},
            subject,
        ),
        INVOCATION,
    )
    assert [e.path for e in _entries(runtime, "orders")] == ["orders/e.csv"]


def test_every_path_keys_one_version_the_same(runtime, azurite_storage, bind_blob):
    """Blob trigger, Event Grid and reconcile see one file version as one ledger entry."""
    azurite_storage.write_bytes("landing/orders/f.csv", CSV)
    url = f"https://devstoreaccount1.blob.core.windows.net/{runtime.landing_container}/orders/f.csv"

    first = runtime.on_blob(bind_blob("orders/f.csv"))
    (second,) = runtime.on_event(
        "Microsoft.Storage.BlobCreated",
        _subject(runtime, "orders/f.csv"),
        {"api": "PutBlob", "url": url, "eTag": "0x8DEADBEEF"},
    )
    report = runtime.reconcile(min_age=0)

    assert (first.outcome, second.outcome) == ("queued", "duplicate")
    assert report.outcomes["known"] == 1 and report.seen == 1
    assert len(_entries(runtime, "orders")) == 1


def test_reconcile_records_missed_files_and_fires_the_age_threshold(
    azure_settings, azurite_storage, submitter
):
    now = [datetime.now(timezone.utc).timestamp() + 3600]  # files are an hour old
    azure_settings.batching = BatchingSettings(max_files=100, max_bytes=10**12, max_age_seconds=600)
    rt = LandingRuntime(azure_settings, azurite_storage, submitter=submitter, clock=lambda: now[0])
    submitter.ledger = rt.ledger
    azurite_storage.write_bytes("landing/orders/missed.csv", CSV)
    azurite_storage.write_bytes("landing/customers/c.jsonl", b'{"customer_id": "C-001"}\n')
    azurite_storage.write_bytes("landing/unknown/x.bin", b"?")
    azurite_storage.write_bytes("landing/orders/empty.csv", b"")  # old and empty: really empty

    report = rt.reconcile()

    assert report.seen == 4 and report.errors == []
    assert report.outcomes == {"queued": 3, "rejected": 1}
    assert {e.path for e in _entries(rt, "orders")} == {"orders/missed.csv", "orders/empty.csv"}
    # Received "now": not old enough yet for the age threshold.
    assert submitter.calls == []
    now[0] += 601
    report = rt.reconcile()
    assert report.outcomes == {"known": 4}
    assert sorted(submitter.calls) == ["customers", "orders"]
    ran = {b.dataset: b.runs[0]["files"] for b in report.batches if b.outcome == "ran"}
    assert ran == {"customers": ["customers/c.jsonl"], "orders": ["orders/empty.csv", "orders/missed.csv"]}
    assert rt.ledger.queued("orders") == [] and rt.ledger.queued("customers") == []


def test_reconcile_leaves_young_files_for_the_next_pass(runtime, azurite_storage):
    azurite_storage.write_bytes("landing/orders/young.csv", b"")
    report = runtime.reconcile(min_age=300)
    assert report.outcomes == {"too_young": 1}
    assert _entries(runtime, "orders") == []


def test_failing_blob_is_parked_after_bounded_attempts_and_never_blocks_others(
    runtime, azurite_storage, bind_blob, function, monkeypatch
):
    azurite_storage.write_bytes("landing/orders/bad.csv", CSV)
    azurite_storage.write_bytes("landing/orders/good.csv", CSV)
    real = runtime.handler.file_landed
    calls = []

    def flaky(path, *, etag, size):
        calls.append(path)
        if path == "orders/bad.csv":
            raise OSError("ledger write timed out")
        return real(path, etag=etag, size=size)

    monkeypatch.setattr(runtime.handler, "file_landed", flaky)
    landing_blob = function("landing_blob")

    for _ in range(2):  # below the bound the error propagates: the host retries
        with pytest.raises(OSError):
            landing_blob(bind_blob("orders/bad.csv"), INVOCATION)
        landing_blob(bind_blob("orders/good.csv"), INVOCATION)  # others carry on
    handled = runtime.on_blob(bind_blob("orders/bad.csv"))  # third attempt: parked, no raise

    assert handled.outcome == "parked" and "ledger write timed out" in handled.reason
    info = azurite_storage.info("landing/orders/bad.csv")
    record = json.loads(
        azurite_storage.read_bytes(f"system/poison/orders/{entry_key('orders/bad.csv', info.etag)}.json")
    )
    assert (record["attempts"], record["reason_code"], record["path"]) == (3, "storage", "orders/bad.csv")
    assert [r.path for r in runtime.poison.parked("orders")] == ["orders/bad.csv"]
    # Parked: a further delivery does not even try.
    n = len(calls)
    assert runtime.on_blob(bind_blob("orders/bad.csv")).outcome == "parked"
    assert len(calls) == n
    assert [e.path for e in _entries(runtime, "orders")] == ["orders/good.csv"]
    # A new version of the file starts afresh.
    azurite_storage.write_bytes(
        "landing/orders/bad.csv", CSV + b"O-0002,C-002,new,1.00,1,2026-11-02,,2026-11-02T10:00:00\n"
    )
    monkeypatch.setattr(runtime.handler, "file_landed", real)
    assert runtime.on_blob(bind_blob("orders/bad.csv")).outcome == "queued"


def test_blob_from_another_container_is_ignored(runtime, azurite_storage, bind_blob):
    azurite_storage.write_bytes("bronze/orders/x.csv", CSV)
    handled = runtime.on_blob(bind_blob("orders/x.csv", container=azurite_storage.container_name("bronze")))
    assert (handled.outcome, handled.reason_code) == ("ignored", "other_container")


def test_blob_gone_before_the_event_is_ignored(runtime, bind_blob):
    handled = runtime.on_blob(bind_blob("orders/never-was.csv"))
    assert (handled.outcome, handled.reason_code) == ("ignored", "gone")


def test_the_default_runtime_is_built_from_settings(azurite_storage, monkeypatch):
    from functions.runtime import get_runtime
    from ingestion.core.config import get_settings
    from ingestion.testing.azurite import CONNECTION_ENV

    monkeypatch.setenv("HEADWATER_LAKE__KIND", "azure")
    monkeypatch.setenv("HEADWATER_LAKE__CONNECTION_STRING_ENV", CONNECTION_ENV)
    for zone, container in azurite_storage.containers.items():
        monkeypatch.setenv(f"HEADWATER_LAKE__CONTAINERS__{zone.upper()}", container)
    get_settings.cache_clear()
    set_runtime(None)
    try:
        rt = get_runtime()
        assert rt is get_runtime()
        assert rt.landing_container == azurite_storage.container_name("landing")
        azurite_storage.write_bytes("landing/orders/g.csv", CSV)
        (handled,) = rt.on_event(
            "Microsoft.Storage.BlobCreated",
            _subject(rt, "orders/g.csv"),
            {
                "api": "PutBlockList",
                "url": f"http://127.0.0.1:1/devstoreaccount1/{rt.landing_container}/orders/g.csv",
            },
        )
        assert handled.outcome == "queued"
    finally:
        set_runtime(None)
        get_settings.cache_clear()


@pytest.mark.parametrize("name", ["../system/ledger/orders/x.json", "orders/%0a.csv", "orders//a.csv"])
def test_hostile_names_in_events_never_reach_the_lake(runtime, monkeypatch, name):
    from urllib.parse import unquote

    def no_lake(*args, **kwargs):
        raise AssertionError("the lake was touched for a hostile name")

    monkeypatch.setattr(runtime.storage, "info", no_lake)
    monkeypatch.setattr(runtime.storage, "list", no_lake)
    url = f"https://lake.dfs.core.windows.net/{runtime.landing_container}/{name}"
    for event_type in ("Microsoft.Storage.BlobRenamed", "Microsoft.Storage.DirectoryRenamed"):
        (handled,) = runtime.on_event(event_type, None, {"api": "Rename", "destinationUrl": url})
        assert handled.outcome in ("rejected", "ignored"), handled
        if handled.outcome == "rejected":
            assert handled.path == unquote(name) and handled.reason
