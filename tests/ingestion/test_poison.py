"""Poison handling: failures counted per file version, parked at the bound, released on demand."""

from __future__ import annotations

import json

import pytest

from ingestion.core.errors import FileRejectedError, StorageError
from ingestion.core.reasons import FileCode, RunCode
from ingestion.events.ledger import entry_key
from ingestion.poison import PoisonBox


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _fail(msg: str = "boom"):
    def fn():
        raise ValueError(msg)

    return fn


def test_errors_propagate_below_the_bound_then_the_version_is_parked(lake):
    box = PoisonBox(lake, max_attempts=3, clock=Clock())
    for attempt in (1, 2):
        with pytest.raises(ValueError, match="boom"):
            box.guard(_fail(), path="orders/a.csv", etag='"e1"', dataset="orders", size=10)
        assert box.attempts("orders/a.csv", '"e1"') == attempt
    got = box.guard(_fail("still broken"), path="orders/a.csv", etag='"e1"', dataset="orders", size=10)

    rec = got.parked
    assert rec is not None and not got.already_parked and got.value is None
    assert (rec.dataset, rec.path, rec.etag, rec.size, rec.attempts) == (
        "orders",
        "orders/a.csv",
        '"e1"',
        10,
        3,
    )
    # The code is closed now (it was the class name): an exception headwater does not know.
    assert (rec.reason, rec.reason_code) == ("ValueError: still broken", RunCode.UNKNOWN)
    assert [f.error for f in rec.failures] == [
        "ValueError: boom",
        "ValueError: boom",
        "ValueError: still broken",
    ]
    assert rec.first_failed_at < rec.parked_at
    key = entry_key("orders/a.csv", '"e1"')
    stored = json.loads(lake.read_bytes(f"system/poison/orders/{key}.json"))
    assert stored["reason"] == "ValueError: still broken"
    assert box.attempts("orders/a.csv", '"e1"') == 0  # the counter is gone once parked


def test_a_parked_version_is_not_retried_but_a_new_version_is(lake):
    box = PoisonBox(lake, max_attempts=1)
    assert box.guard(_fail(), path="orders/a.csv", etag='"e1"', dataset="orders").parked is not None
    ran = []
    again = box.guard(lambda: ran.append(1), path="orders/a.csv", etag='"e1"', dataset="orders")
    assert again.already_parked and ran == []
    fresh = box.guard(lambda: "ok", path="orders/a.csv", etag='"e2"', dataset="orders")
    assert (fresh.value, fresh.parked) == ("ok", None)


def test_success_clears_earlier_failures(lake):
    box = PoisonBox(lake, max_attempts=2)
    with pytest.raises(ValueError):
        box.guard(_fail(), path="orders/a.csv", etag='"e1"', dataset="orders")
    assert box.guard(lambda: 42, path="orders/a.csv", etag='"e1"', dataset="orders").value == 42
    assert box.attempts("orders/a.csv", '"e1"') == 0
    with pytest.raises(ValueError):  # counting starts over: one failure is below the bound again
        box.guard(_fail(), path="orders/a.csv", etag='"e1"', dataset="orders")


def test_parked_report_and_release(lake):
    box = PoisonBox(lake, max_attempts=1)
    box.guard(_fail("bad header"), path="orders/a.csv", etag='"e1"', dataset="orders")
    box.guard(_fail("?"), path="weird/x.bin", etag='"e9"', dataset=None)
    report = box.report()
    assert sorted(report) == ["_unrouted", "orders"]
    assert report["orders"][0]["reason"] == "ValueError: bad header"
    assert [r.path for r in box.parked("orders")] == ["orders/a.csv"]

    assert box.release("orders", entry_key("orders/a.csv", '"e1"')) is True
    assert box.release("orders", entry_key("orders/a.csv", '"e1"')) is False
    assert box.guard(lambda: "again", path="orders/a.csv", etag='"e1"', dataset="orders").value == "again"


def test_bound_must_be_positive(lake):
    with pytest.raises(ValueError, match="max_attempts"):
        PoisonBox(lake, max_attempts=0)


def test_a_terminal_failure_parks_at_once_with_its_code(lake):
    box = PoisonBox(lake, max_attempts=3)

    def bad():
        raise FileRejectedError("orders/a.csv", "binary content", FileCode.BINARY)

    got = box.guard(bad, path="orders/a.csv", etag='"e1"', dataset="orders")
    assert got.parked is not None and got.parked.attempts == 1
    assert got.parked.reason_code == FileCode.BINARY


def test_a_transient_failure_is_retried_up_to_the_bound(lake):
    box = PoisonBox(lake, max_attempts=2)

    def down():
        raise StorageError("lake unreachable")

    with pytest.raises(StorageError):
        box.guard(down, path="orders/a.csv", etag='"e1"', dataset="orders")
    got = box.guard(down, path="orders/a.csv", etag='"e1"', dataset="orders")
    assert got.parked is not None and (got.parked.attempts, got.parked.reason_code) == (2, RunCode.STORAGE)
