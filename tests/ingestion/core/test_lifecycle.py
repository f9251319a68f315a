"""The one job lifecycle: lease, record, work, finish; statuses, reason codes and exit codes."""

from __future__ import annotations

import pytest

from ingestion.core import lifecycle
from ingestion.core.errors import ContractError, LeaseHeldError, NotFoundError, UnknownDatasetError
from ingestion.core.lease import Lease, LeaseLostError
from ingestion.core.lifecycle import exit_code, failed_run, job_run, outcome_of
from ingestion.core.runs import RunRecord


@pytest.fixture
def ledger(monkeypatch, lake):
    """The rows appended to the run ledger, each with whether the lease was held then."""
    rows: list[tuple[str, str, bool]] = []

    def append(self, record):  # noqa: ANN001
        held = lake.info("system/leases/ds.json") is not None
        rows.append((record.job, record.status, held))

    monkeypatch.setattr(lifecycle.RunLedger, "append", append)
    return rows


def _lease(lake, owner="run-1"):  # noqa: ANN001, ANN202
    return Lease(lake, "ds", owner=owner, seconds=30, heartbeat=False)


def test_a_body_that_returns_succeeded_and_is_recorded_while_the_lease_is_held(lake, ledger):
    record = RunRecord(job="demo", dataset="ds")
    with job_run(None, lake, record, lease=_lease(lake)) as run:
        assert lake.info("system/leases/ds.json") is not None  # leased before the work
        assert run.record is record and record.status == "running"
        record.rows_written = 3
    assert (record.status, record.rows_written) == ("succeeded", 3)
    assert ledger == [("demo", "succeeded", True)]
    assert lake.info("system/leases/ds.json") is None  # released after the record


def test_nothing_to_do_is_recorded_as_skipped_with_the_reason(lake, ledger):
    record = RunRecord(job="demo", dataset="ds")
    with job_run(None, lake, record, lease=_lease(lake)) as run:
        run.skip("nothing queued")
    assert (record.status, record.details["reason"]) == ("skipped", "nothing queued")
    assert ledger == [("demo", "skipped", True)]


def test_an_exception_fails_the_run_records_it_and_is_raised_marked(lake, ledger):
    record = RunRecord(job="demo", dataset="ds")
    with pytest.raises(NotFoundError) as err, job_run(None, lake, record, lease=_lease(lake)):
        raise NotFoundError("landing/x.csv")
    assert (record.status, record.error) == (
        "failed",
        "storage: NotFoundError: landing/x.csv: does not exist",
    )
    assert failed_run(err.value) is record
    assert outcome_of(err.value) == ("failed", "storage")
    assert ledger == [("demo", "failed", True)]
    assert lake.info("system/leases/ds.json") is None


def test_a_held_lease_refuses_the_run_before_anything_is_recorded(lake, ledger):
    holder = _lease(lake, owner="other").acquire()
    record = RunRecord(job="demo", dataset="ds")
    body_ran = []
    with pytest.raises(LeaseHeldError) as err, job_run(None, lake, record, lease=_lease(lake)):
        body_ran.append(True)
    assert body_ran == [] and ledger == [] and record.status == "running"
    assert failed_run(err.value) is None
    assert outcome_of(err.value) == ("refused", "lease_held")
    holder.release()


def test_a_lost_lease_fails_the_run_it_does_not_refuse_it(lake, ledger):
    record = RunRecord(job="demo", dataset="ds")
    with pytest.raises(LeaseLostError) as err, job_run(None, lake, record, lease=_lease(lake)) as run:
        run.lease.lost = True
        run.check()
    assert outcome_of(err.value) == ("failed", "lease_lost") and record.status == "failed"
    assert [row[:2] for row in ledger] == [("demo", "failed")]


def test_a_decided_failure_stays_failed_and_recording_can_be_switched_off(lake, ledger):
    record = RunRecord(job="demo", dataset="ds")
    with job_run(None, lake, record, enabled=False):
        record.finish("failed", "a fail rule fired")
    assert (record.status, record.error) == ("failed", "a fail rule fired")
    assert ledger == []


def test_a_failing_ledger_write_leaves_the_outcome_standing(lake, monkeypatch, caplog):
    def boom(self, record):  # noqa: ANN001
        raise OSError("ledger down")

    monkeypatch.setattr(lifecycle.RunLedger, "append", boom)
    record = RunRecord(job="demo", dataset="ds")
    with job_run(None, lake, record):
        pass
    assert record.status == "succeeded"
    assert "could not append run" in caplog.text


def test_reason_codes_and_exit_codes():
    assert outcome_of(UnknownDatasetError("x", ["orders"])) == ("refused", "unknown_dataset")
    assert outcome_of(ContractError("x", ["bad"])) == ("refused", "contract")
    assert outcome_of(RuntimeError("boom")) == ("failed", "unknown")
    assert outcome_of(NotFoundError("p")) == ("failed", "storage")  # the lake, not the input

    class Coded(UnknownDatasetError):
        code = "no_such_thing"

    assert outcome_of(Coded("x", [])) == ("refused", "no_such_thing")  # an error's own code wins
    assert [exit_code(s) for s in ("succeeded", "skipped", "failed", "refused")] == [0, 0, 1, 2]
