"""The batching policy (fake clock), the Batcher's one-run-at-a-time and coalescing, submitters."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from ingestion.batching import (
    Batcher,
    BatchingConfigError,
    BatchPolicy,
    InProcessSubmitter,
    SubmitError,
    Submitter,
    Thresholds,
    _summary_code,
)
from ingestion.core.config import BatchingSettings, BatchThresholds
from ingestion.core.errors import LeaseHeldError
from ingestion.events import EventHandler, Ledger
from ingestion.events.ledger import QueuedFile

MB = 1024 * 1024


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def q(key: str, size: int, at: float) -> QueuedFile:
    return QueuedFile("orders", key, f"orders/{key}.csv", size, at)


SETTINGS = BatchingSettings(
    max_files=3,
    max_bytes=10 * MB,
    max_age_seconds=60,
    datasets={"customers": BatchThresholds(max_files=1000, max_age_seconds=5)},
)


# --- policy ----------------------------------------------------------------------------------------
def test_thresholds_take_per_dataset_overrides_field_by_field():
    policy = BatchPolicy(SETTINGS)
    assert policy.thresholds("orders") == Thresholds(3, 10 * MB, 60)
    assert policy.thresholds("customers") == Thresholds(1000, 10 * MB, 5)


@pytest.mark.parametrize(
    "bad",
    [BatchingSettings(max_files=0), BatchingSettings(datasets={"orders": BatchThresholds(max_bytes=-1)})],
)
def test_non_positive_thresholds_are_refused_naming_the_dataset(bad):
    with pytest.raises(BatchingConfigError, match="must be > 0"):
        BatchPolicy(bad)


def test_nothing_queued_is_never_due():
    d = BatchPolicy(SETTINGS).decide("orders", [], now=5.0)
    assert (d.due, d.files, d.bytes, d.oldest_age, d.wait_seconds) == (False, 0, 0, None, None)


def test_count_threshold():
    policy, t = BatchPolicy(SETTINGS), 1000.0
    two = [q("a", 1, t), q("b", 1, t)]
    assert not policy.decide("orders", two, now=t).due
    d = policy.decide("orders", [*two, q("c", 1, t)], now=t)
    assert (d.due, d.reason, d.files) == (True, "files", 3)


def test_bytes_threshold():
    policy, t = BatchPolicy(SETTINGS), 1000.0
    d = policy.decide("orders", [q("a", 6 * MB, t), q("b", 4 * MB - 1, t)], now=t)
    assert not d.due and d.bytes == 10 * MB - 1
    d = policy.decide("orders", [q("a", 6 * MB, t), q("b", 4 * MB, t)], now=t)
    assert (d.due, d.reason, d.bytes) == (True, "bytes", 10 * MB)


def test_age_threshold_with_a_fake_clock():
    policy, t = BatchPolicy(SETTINGS), 1000.0
    files = [q("a", 1, t), q("b", 1, t + 30)]
    d = policy.decide("orders", files, now=t + 59.5)
    assert not d.due and d.wait_seconds == pytest.approx(0.5) and d.oldest_age == pytest.approx(59.5)
    d = policy.decide("orders", files, now=t + 60)
    assert (d.due, d.reason) == (True, "age")
    # A per-dataset override: customers wait 5 s only.
    assert policy.decide("customers", [q("a", 1, t)], now=t + 5).reason == "age"


def test_whichever_threshold_comes_first_is_the_reason():
    policy, t = BatchPolicy(SETTINGS), 1000.0
    d = policy.decide("orders", [q("a", 20 * MB, t - 100), q("b", 1, t), q("c", 1, t)], now=t)
    assert d.reason == "files"  # all three reached; count is checked first
    assert policy.decide("orders", [q("a", 20 * MB, t - 100)], now=t).reason == "bytes"


# --- the batcher -----------------------------------------------------------------------------------
@dataclass
class DrainingSubmitter:
    """Takes every queued file like a real run; optionally blocks until released."""

    ledger: Ledger
    calls: list[list[str]] = field(default_factory=list)
    gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)

    def submit(self, dataset: str) -> dict[str, Any]:
        taken = [f.path for f in self.ledger.queued(dataset)]
        for f in self.ledger.queued(dataset):
            entry = self.ledger.get(dataset, f.key)
            assert entry is not None
            self.ledger.update(entry, status="batched", batch=len(self.calls) + 1)
        self.calls.append(taken)
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        return {"dataset": dataset, "files": taken}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(lake) -> Ledger:
    return Ledger(lake)


@pytest.fixture
def land(ledger, catalog, clock):
    handler = EventHandler(ledger, catalog, clock=clock)
    counter = iter(range(10_000))

    def _land(name: str, size: int = 100) -> None:
        assert handler.file_landed(name, etag=f'"e{next(counter)}"', size=size).outcome == "queued"

    return _land


def _batcher(ledger: Ledger, clock: Clock, submitter: Submitter, **settings: Any) -> Batcher:
    base = {"max_files": 3, "max_bytes": 10 * MB, "max_age_seconds": 60}
    return Batcher(ledger, BatchPolicy(BatchingSettings(**{**base, **settings})), submitter, clock=clock)


@dataclass
class HeldRun:
    """A trigger of ``orders`` (three files: due) whose run is blocked inside its submit."""

    sub: DrainingSubmitter
    batcher: Batcher
    gate: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any]

    def release(self) -> Any:
        """Let the held run (and any run after it, unblocked) finish; the held trigger's result."""
        self.sub.gate = None
        self.gate.set()
        self.thread.join(10)
        return self.outcome.get("first")


def _held_run(ledger: Ledger, clock: Clock, land: Any) -> HeldRun:
    gate = threading.Event()
    sub = DrainingSubmitter(ledger, gate=gate)
    batcher = _batcher(ledger, clock, sub)
    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(first=batcher.trigger("orders")))
    thread.start()
    assert sub.started.wait(10)
    return HeldRun(sub, batcher, gate, thread, outcome)


def test_not_due_means_no_run(ledger, clock, land):
    sub = DrainingSubmitter(ledger)
    land("orders/a.csv")
    result = _batcher(ledger, clock, sub).trigger("orders")
    assert (result.outcome, result.runs, sub.calls) == ("idle", [], [])
    assert result.decision is not None and result.decision.wait_seconds == pytest.approx(60)


def test_due_by_count_runs_once_and_takes_the_files(ledger, clock, land):
    sub = DrainingSubmitter(ledger)
    batcher = _batcher(ledger, clock, sub)
    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    result = batcher.trigger("orders")
    assert result.outcome == "ran"
    assert sub.calls == [["orders/a.csv", "orders/b.csv", "orders/c.csv"]]
    assert ledger.queued("orders") == []
    assert batcher.trigger("orders").outcome == "idle"


def test_due_by_bytes_and_by_age(ledger, clock, land):
    sub = DrainingSubmitter(ledger)
    batcher = _batcher(ledger, clock, sub)
    land("orders/big.csv", size=10 * MB)
    assert [d.reason for d in batcher.trigger("orders").started_by] == ["bytes"]
    land("orders/old.csv")
    assert batcher.trigger("orders").outcome == "idle"
    clock.now += 60
    result = batcher.trigger("orders")
    assert (result.outcome, [d.reason for d in result.started_by]) == ("ran", ["age"])
    assert sub.calls == [["orders/big.csv"], ["orders/old.csv"]]


def test_triggers_while_a_run_is_active_are_coalesced_into_one_follow_up(ledger, clock, land):
    held = _held_run(ledger, clock, land)
    sub, batcher = held.sub, held.batcher
    assert batcher.is_active("orders")

    # Three more files land while the first run is active; each event triggers.
    coalesced = []
    for name in ("orders/d.csv", "orders/e.csv", "orders/f.csv"):
        land(name)
        coalesced.append(batcher.trigger("orders").outcome)
    assert coalesced == ["coalesced"] * 3
    assert len(sub.calls) == 1  # no second run while one is active

    first = held.release()
    # One follow-up run for the three coalesced triggers, by the runner itself.
    assert sub.calls == [
        ["orders/a.csv", "orders/b.csv", "orders/c.csv"],
        ["orders/d.csv", "orders/e.csv", "orders/f.csv"],
    ]
    assert (first.outcome, [d.reason for d in first.started_by]) == ("ran", ["files", "files"])
    assert not batcher.is_active("orders") and ledger.queued("orders") == []


def test_a_coalesced_trigger_below_threshold_waits_for_its_threshold(ledger, clock, land):
    held = _held_run(ledger, clock, land)
    sub, batcher = held.sub, held.batcher
    land("orders/late.csv")
    assert batcher.trigger("orders").outcome == "coalesced"
    held.release()
    # Re-evaluated, not forced: one file is below every threshold, so it waits (not lost).
    assert len(sub.calls) == 1
    assert [f.path for f in ledger.queued("orders")] == ["orders/late.csv"]
    clock.now += 60
    assert batcher.trigger("orders").outcome == "ran"
    assert sub.calls[-1] == ["orders/late.csv"]


def test_datasets_run_independently(ledger, clock, land):
    held = _held_run(ledger, clock, land)
    sub, batcher = held.sub, held.batcher
    for name in ("customers/a.jsonl", "customers/b.jsonl", "customers/c.jsonl"):
        land(name)
    sub.gate = None  # the customers run must not block; the orders run still does
    assert batcher.trigger("customers").outcome == "ran"  # not blocked by the orders run
    held.release()
    assert sorted(c[0].split("/")[0] for c in sub.calls) == ["customers", "orders"]


def test_lease_held_elsewhere_leaves_the_files_queued(ledger, clock, land):
    class Held:
        calls = 0

        def submit(self, dataset: str) -> dict[str, Any]:
            Held.calls += 1
            raise LeaseHeldError(dataset, "run-42", clock.now + 600)

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    result = _batcher(ledger, clock, Held()).trigger("orders")
    assert result.outcome == "coalesced" and "run-42" in result.error
    assert Held.calls == 1 and len(ledger.queued("orders")) == 3


def test_a_remote_run_refused_for_a_held_lease_is_coalesced_not_failed(ledger, clock, land):
    """A spark-submit job exits 2 with ``lease_held``: the summary says so, the batcher coalesces."""
    from ingestion.core.reasons import RunCode

    class RefusedRemotely:
        calls = 0

        def submit(self, dataset: str) -> dict[str, Any]:
            RefusedRemotely.calls += 1
            return {
                "dataset": dataset,
                "status": "refused",
                "code": "lease_held",
                "error": f"dataset {dataset!r} is being written by run run-43",
            }

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    result = _batcher(ledger, clock, RefusedRemotely()).trigger("orders")
    assert (result.outcome, result.code, result.runs) == ("coalesced", RunCode.LEASE_HELD, [])
    assert "run-43" in (result.error or "")
    assert RefusedRemotely.calls == 1 and len(ledger.queued("orders")) == 3


def test_a_pipeline_run_whose_stage_failed_is_reported_failed_with_the_stage_code(ledger, clock, land):
    from ingestion.core.reasons import RunCode

    class CurateFails(DrainingSubmitter):
        def submit(self, dataset: str) -> dict[str, Any]:
            taken = super().submit(dataset)  # ingest took the files...
            return {  # ...and curate failed: the pipeline's summary
                **taken,
                "job": "pipeline",
                "status": "failed",
                "error": "storage: OSError: system/curate/orders.json: no space left on device",
                "stopped_at": "curate",
            }

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    sub = CurateFails(ledger)
    result = _batcher(ledger, clock, sub).trigger("orders")
    assert (result.outcome, result.code) == ("failed", RunCode.STORAGE)
    assert result.error == "storage: OSError: system/curate/orders.json: no space left on device"
    assert [r["stopped_at"] for r in result.runs] == ["curate"] and len(sub.calls) == 1
    refused = {"status": "refused", "code": "unknown_dataset", "error": "no dataset named 'x'"}
    assert _summary_code(refused) == RunCode.UNKNOWN_DATASET
    assert _summary_code({"status": "failed", "error": "gibberish"}) == RunCode.UNKNOWN


def test_failed_run_keeps_the_files_queued_and_is_reported(ledger, clock, land):
    class Boom:
        def submit(self, dataset: str) -> dict[str, Any]:
            raise RuntimeError("cluster unavailable")

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    batcher = _batcher(ledger, clock, Boom())
    result = batcher.trigger("orders")
    assert (result.outcome, result.error) == ("failed", "RuntimeError: cluster unavailable")
    assert len(ledger.queued("orders")) == 3 and not batcher.is_active("orders")


def test_a_run_that_takes_nothing_does_not_spin(ledger, clock, land):
    class Lazy:
        calls = 0

        def submit(self, dataset: str) -> dict[str, Any]:
            Lazy.calls += 1
            return {}

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    result = _batcher(ledger, clock, Lazy()).trigger("orders")
    assert (result.outcome, Lazy.calls) == ("stalled", 1)
    assert "3 queued file(s)" in result.error


def test_force_runs_what_is_queued_below_thresholds(ledger, clock, land):
    sub = DrainingSubmitter(ledger)
    land("orders/a.csv")
    assert _batcher(ledger, clock, sub).trigger("orders", force=True).outcome == "ran"
    assert sub.calls == [["orders/a.csv"]]


# --- submitters ------------------------------------------------------------------------------------
def test_in_process_submitter_runs_the_runner_it_is_given():
    seen = []

    def run(dataset: str) -> dict[str, Any]:
        seen.append(dataset)
        return {"dataset": dataset, "status": "ok"}

    sub = InProcessSubmitter(run)
    assert isinstance(sub, Submitter)
    assert sub.submit("orders") == {"dataset": "orders", "status": "ok"}
    assert seen == ["orders"]


def test_in_process_submitter_without_spark_says_what_to_install():
    def run(dataset: str) -> dict[str, Any]:
        raise ModuleNotFoundError("No module named 'pyspark'")  # like a missing pyspark

    with pytest.raises(SubmitError, match="install the `local` extra"):
        InProcessSubmitter(run).submit("orders")


def test_importing_batching_does_not_import_spark():
    import subprocess

    code = (
        "import sys, ingestion.batching, functions.runtime; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'delta', 'jobs')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_trigger_between_the_last_decision_and_letting_go_is_not_lost(ledger, clock, land):
    """The race coalescing must close: files land and trigger right after the runner decided
    "nothing more is due" but before it stopped being the active runner."""
    sub = DrainingSubmitter(ledger)
    batcher = _batcher(ledger, clock, sub)
    real_decide = batcher.policy.decide
    calls = {"n": 0}

    def decide(dataset, queued, *, now):
        decision = real_decide(dataset, queued, now=now)
        calls["n"] += 1
        if calls["n"] == 2:  # the runner's post-run look: nothing due...
            assert not decision.due
            for name in ("orders/x.csv", "orders/y.csv", "orders/z.csv"):
                land(name)
            assert batcher.trigger("orders").outcome == "coalesced"  # ...but now there is
        return decision

    batcher.policy.decide = decide  # type: ignore[method-assign]
    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    result = batcher.trigger("orders")
    assert [d.reason for d in result.started_by] == ["files", "files"]
    assert sub.calls[1] == ["orders/x.csv", "orders/y.csv", "orders/z.csv"]
    assert ledger.queued("orders") == []


def test_a_transient_failure_is_retried_to_the_bound_a_terminal_one_fails_at_once(ledger, clock, land):
    from ingestion.core.config import RetrySettings
    from ingestion.core.errors import ContractError, StorageError
    from ingestion.core.reasons import RunCode

    class Flaky:
        def __init__(self, errors: list[Exception]) -> None:
            self.errors, self.calls = errors, 0

        def submit(self, dataset: str) -> dict[str, Any]:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return {"dataset": dataset}

    for name in ("orders/a.csv", "orders/b.csv", "orders/c.csv"):
        land(name)
    policy = BatchPolicy(BatchingSettings(max_files=3, max_bytes=10 * MB, max_age_seconds=60))
    waits: list[float] = []
    down = Flaky([StorageError("throttled")] * 5)
    batcher = Batcher(ledger, policy, down, clock=clock, retry=RetrySettings(attempts=3), sleep=waits.append)
    result = batcher.trigger("orders")
    assert (result.outcome, result.code, down.calls, waits) == ("failed", RunCode.STORAGE, 3, [1.0, 2.0])
    recovers = Flaky([StorageError("throttled")])
    batcher = Batcher(
        ledger, policy, recovers, clock=clock, retry=RetrySettings(attempts=3), sleep=waits.append
    )
    assert batcher.trigger("orders").outcome in ("ran", "stalled") and recovers.calls >= 2
    bad = Flaky([ContractError("orders", ["no such column"])])
    batcher = Batcher(ledger, policy, bad, clock=clock, retry=RetrySettings(attempts=3), sleep=waits.append)
    result = batcher.trigger("orders")
    assert (result.outcome, result.code, bad.calls) == ("failed", RunCode.CONTRACT, 1)
