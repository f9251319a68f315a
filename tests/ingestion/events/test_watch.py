"""headwater watch: the file system's notifications raise the events, and runs follow."""

import threading
import time

from ingestion.core.errors import LeaseHeldError
from ingestion.events import Ledger
from ingestion.events.watch import LandingWatcher

ORDERS = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\nO-1,C-1,new,1,1,2026-01-01,,x\n"


def _rounds_in_thread(watcher, stop, rounds):
    def loop():
        for r in watcher.rounds(stop=stop):
            rounds.append(r)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_notified_file_is_queued_once_settled_and_its_dataset_runs(lake, catalog):
    ran: list[str] = []
    watcher = LandingWatcher(lake, catalog, ran.append, settle=0.3, sweep_seconds=3600)
    stop, rounds = threading.Event(), []
    thread = _rounds_in_thread(watcher, stop, rounds)
    try:
        assert _wait_for(lambda: rounds)  # the start-up sweep: nothing there yet
        assert rounds[0].trigger == "sweep" and rounds[0].events == [] and ran == []
        landed = time.monotonic()
        lake.write_bytes("landing/orders/2026/a.csv", ORDERS)
        assert _wait_for(lambda: ran == ["orders"])
        queued_after = time.monotonic() - landed
    finally:
        stop.set()
        thread.join(10)
    notify = [r for r in rounds if r.trigger == "notify"]
    assert [(e.path, e.outcome) for r in notify for e in r.events] == [("orders/2026/a.csv", "queued")]
    (entry,) = Ledger(lake).entries("orders")
    assert (entry.path, entry.status) == ("orders/2026/a.csv", "pending")
    assert queued_after < 10  # by notification, long before the (1 hour) sweep would find it
    assert not any(r.trigger == "sweep" for r in rounds[1:])


def test_a_file_landing_while_the_start_up_sweep_runs_is_notified(lake, catalog):
    lake.write_bytes("landing/orders/2026/before.csv", ORDERS)  # landed while nothing watched
    ran: list[str] = []

    def runner(name: str) -> None:
        if not ran:  # the start-up sweep's run: another file lands meanwhile
            lake.write_bytes("landing/orders/2026/during.csv", ORDERS)
            time.sleep(1.0)
        ran.append(name)

    watcher = LandingWatcher(lake, catalog, runner, settle=0.2, sweep_seconds=3600)
    stop, rounds = threading.Event(), []
    thread = _rounds_in_thread(watcher, stop, rounds)
    try:
        assert _wait_for(lambda: any(r.trigger == "notify" for r in rounds))
    finally:
        stop.set()
        thread.join(10)
    assert rounds[0].trigger == "sweep"
    assert [e.path for e in rounds[0].events] == ["orders/2026/before.csv"]
    notified = [(e.path, e.outcome) for r in rounds if r.trigger == "notify" for e in r.events]
    assert notified == [("orders/2026/during.csv", "queued")]  # not left for the hourly sweep
    assert {e.path for e in Ledger(lake).entries("orders")} == {
        "orders/2026/before.csv",
        "orders/2026/during.csv",
    }


def test_a_file_still_being_written_waits_until_it_settles(lake, catalog):
    ran: list[str] = []
    watcher = LandingWatcher(lake, catalog, ran.append, settle=1.0, sweep_seconds=3600)
    stop, rounds = threading.Event(), []
    thread = _rounds_in_thread(watcher, stop, rounds)
    try:
        assert _wait_for(lambda: rounds)
        path = lake.root / "landing" / "orders" / "slow.csv"
        path.parent.mkdir(parents=True)
        with path.open("wb") as fh:  # a writer appending in pieces, 0.3 s apart
            for i in range(4):
                fh.write(ORDERS if i == 0 else b"O-%d,C-1,new,1,1,2026-01-01,,x\n" % i)
                fh.flush()
                time.sleep(0.3)
        assert _wait_for(lambda: ran)
    finally:
        stop.set()
        thread.join(10)
    (entry,) = Ledger(lake).entries("orders")
    assert entry.size == path.stat().st_size  # admitted whole, once: one ledger entry


def test_the_sweep_is_the_safety_net_and_a_held_lease_is_reported_not_fatal(lake, catalog):
    # A file that landed while nothing watched is found by the start-up sweep.
    lake.write_bytes("landing/orders/before.csv", ORDERS)
    time.sleep(0.2)

    def runner(name: str):
        raise LeaseHeldError(name, "another-run", 30.0)

    watcher = LandingWatcher(lake, catalog, runner, settle=0.1, sweep_seconds=3600)
    first = next(watcher.rounds())
    assert first.trigger == "sweep"
    assert [(e.path, e.outcome) for e in first.events] == [("orders/before.csv", "queued")]
    assert list(first.refused) == ["orders"] and first.refused["orders"].startswith("lease_held: ")
    assert [e.status for e in Ledger(lake).entries("orders")] == ["pending"]  # still queued
