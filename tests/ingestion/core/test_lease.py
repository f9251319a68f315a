import threading

import pytest

from ingestion.core.errors import LeaseHeldError
from ingestion.core.lease import Lease, LeaseLostError


def test_one_holder_at_a_time_and_release(lake):
    a = Lease(lake, "orders", owner="a", seconds=60, heartbeat=False).acquire()
    with pytest.raises(LeaseHeldError, match="being written by run a"):
        Lease(lake, "orders", owner="b", seconds=60, heartbeat=False).acquire()
    a.release()
    Lease(lake, "orders", owner="b", seconds=60, heartbeat=False).acquire().release()


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(lake):
    now = [1000.0]
    old = Lease(lake, "orders", owner="old", seconds=10, clock=lambda: now[0], heartbeat=False).acquire()
    now[0] += 11
    new = Lease(lake, "orders", owner="new", seconds=10, clock=lambda: now[0], heartbeat=False).acquire()
    with pytest.raises(LeaseLostError):
        old.renew()
    with pytest.raises(LeaseLostError):
        old.check()
    new.release()


def test_racing_acquirers_one_wins(lake):
    wins = []
    go = threading.Barrier(6)

    def attempt(i):
        go.wait()
        try:
            Lease(lake, "orders", owner=str(i), seconds=60, heartbeat=False).acquire()
            wins.append(i)
        except LeaseHeldError:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_wait_gets_the_lease_when_released(lake):
    holder = Lease(lake, "orders", owner="h", seconds=60, heartbeat=False).acquire()
    threading.Timer(0.5, holder.release).start()
    got = Lease(lake, "orders", owner="w", seconds=60, heartbeat=False).acquire(wait=10, poll=0.1)
    assert got.owner == "w"
    got.release()


def test_heartbeat_keeps_a_short_lease_alive(lake):
    import time

    lease = Lease(lake, "orders", owner="hb", seconds=0.6).acquire()
    time.sleep(1.5)  # several lease lengths: only renewal keeps it ours
    with pytest.raises(LeaseHeldError):
        Lease(lake, "orders", owner="other", seconds=1, heartbeat=False).acquire()
    lease.release()


def test_scopes_are_separate_writer_roles_of_one_dataset(lake):
    bronze = Lease(lake, "orders", owner="ingest", seconds=60, heartbeat=False).acquire()
    silver = Lease(lake, "orders", owner="curate", scope="silver", seconds=60, heartbeat=False).acquire()
    with pytest.raises(LeaseHeldError, match=r"'orders \(silver\)' is being written by run curate"):
        Lease(lake, "orders", owner="replay", scope="silver", seconds=60, heartbeat=False).acquire()
    assert lake.info("system/leases/orders.json") and lake.info("system/leases/orders.silver.json")
    bronze.release()
    silver.release()
    assert lake.info("system/leases/orders.silver.json") is None
