from ingestion.contracts import Catalog
from ingestion.events import EventHandler, Ledger, backfill


def test_redelivery_is_a_no_op_and_a_new_etag_is_a_new_entry(lake):
    handler = EventHandler(Ledger(lake), Catalog.discover(), clock=lambda: 100.0)
    first = handler.file_landed("orders/a.csv", etag='"1"', size=10)
    again = [handler.file_landed("landing/orders/a.csv", etag='"1"', size=10) for _ in range(2)]
    assert first.outcome == "queued" and {a.outcome for a in again} == {"duplicate"}
    newer = handler.file_landed("orders/a.csv", etag='"2"', size=12)
    assert newer.outcome == "queued"
    queued = Ledger(lake).queued("orders")
    assert [(q.path, q.size, q.received_at) for q in queued] == [
        ("orders/a.csv", 10, 100.0),
        ("orders/a.csv", 12, 100.0),
    ]


def test_unknown_and_hostile_paths_are_rejected_and_recorded(lake):
    handler = EventHandler(Ledger(lake), Catalog.discover())
    unknown = handler.file_landed("invoices/a.csv", etag='"1"', size=1)
    hostile = handler.file_landed("orders/../../secrets.csv", etag='"1"', size=1)
    assert (unknown.outcome, unknown.reason_code) == ("rejected", "no_dataset")
    assert (hostile.outcome, hostile.reason_code) == ("rejected", "traversal")
    entries = {e.path: (e.status, e.reason_code) for e in Ledger(lake).entries("_unrouted")}
    assert entries == {
        "invoices/a.csv": ("rejected", "no_dataset"),
        "orders/../../secrets.csv": ("rejected", "traversal"),
    }
    assert Ledger(lake).queued("orders") == []


def test_ledger_update_moves_status_and_dequeues(lake):
    ledger = Ledger(lake)
    EventHandler(ledger, Catalog.discover()).file_landed("orders/a.csv", etag='"1"', size=1)
    entry = next(ledger.entries("orders"))
    moved = ledger.update(entry, status="batched", batch=4)
    assert (moved.status, moved.batch) == ("batched", 4)
    assert ledger.queued("orders") == []
    ledger.update(moved, status="pending")
    assert [q.path for q in ledger.queued("orders")] == ["orders/a.csv"]


def test_backfill_queues_unseen_files_once_and_respects_min_age(lake):
    lake.write_bytes("landing/orders/a.csv", b"x")
    lake.write_bytes("landing/customers/b.jsonl", b"{}")
    lake.write_bytes("landing/misc/readme.txt", b"?")
    cat = Catalog.discover()
    assert backfill(lake, cat, min_age=3600) == []
    first = {(r.path, r.outcome) for r in backfill(lake, cat)}
    assert first == {
        ("orders/a.csv", "queued"),
        ("customers/b.jsonl", "queued"),
        ("misc/readme.txt", "rejected"),
    }
    assert backfill(lake, cat) == []
    lake.write_bytes("landing/orders/c.csv", b"y")
    assert [(r.path, r.outcome) for r in backfill(lake, cat, dataset="orders")] == [
        ("orders/c.csv", "queued")
    ]
