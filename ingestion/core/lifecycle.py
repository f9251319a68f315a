"""One job lifecycle: every job (ingest, curate, replay, publish, register...) runs the same steps.

1. **Refuse** before anything when the job cannot start (unknown dataset, invalid contract, bad
   settings, the lease held by another run): nothing is read, written or recorded.
2. **Lease** the dataset when the job writes (``Lease.acquire(wait=lease_wait)``).
3. **Record**: the run's :class:`~ingestion.core.runs.RunRecord` (or a subclass carrying the job's
   own metrics) is the result; the body fills it.
4. **Work**: the body may end the run as ``skipped`` (nothing to do, :meth:`JobRun.skip`) or
   ``failed`` (decided, e.g. a fail rule fired); a body that returns without ending it succeeded.
   An exception fails it (type and message, never row contents) and is raised again, marked with
   the failed record (:func:`failed_run`).
5. **Finish**: the record is appended to the run ledger, skipped runs too, while the lease is
   still held; then the lease is released.

Every run is also the span ``headwater.<job>`` (:func:`ingestion.core.telemetry.run_span`),
lease and refusal included: ended with the run's status, its result's attributes, its
duration and row counters.

The status vocabulary is the run ledger's: ``succeeded``, ``skipped``, ``failed``, plus
``refused`` for a run that never started (never stored). :func:`exit_code` maps it to the exit
code every entry point returns: 0 succeeded or skipped, 1 failed, 2 refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ingestion.core import telemetry
from ingestion.core.errors import (
    BatchFailedError,
    HeadwaterError,
    StorageError,
    classify,
    one_line,
)
from ingestion.core.runs import RunLedger, RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.core.lease import Lease
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

Status = Literal["succeeded", "skipped", "failed", "refused"]
EXIT_CODES: dict[str, int] = {"succeeded": 0, "skipped": 0, "failed": 1, "refused": 2}

_FAILED_RUN = "headwater_failed_run"  # attribute a failed run's exception carries


@dataclass
class JobRun:
    """The handle a job body gets: its record and (when it writes) its lease."""

    record: RunRecord
    lease: Lease | None = None

    def check(self) -> None:
        """Raise LeaseLostError if the lease was lost: call it before each write."""
        if self.lease is not None:
            self.lease.check()

    def skip(self, reason: str) -> None:
        """End the run as ``skipped`` (nothing to do), saying why."""
        self.record.details["reason"] = reason
        self.record.finish("skipped")


def run_error(err: BaseException) -> str:
    """What the run ledger keeps of a failure: ``"<code>: <ErrorClass>: <one line>"``.

    A batch that failed after its retries already carries that line for the failure behind it.
    """
    if isinstance(err, BatchFailedError):
        return err.reason
    code, _ = classify(err)
    return f"{code}: {type(err).__name__}: {one_line(err)}"


@contextmanager
def job_run(
    spark: SparkSession,
    storage: Storage,
    record: RunRecord,
    *,
    lease: Lease | None = None,
    lease_wait: float = 0.0,
    enabled: bool = True,
) -> Iterator[JobRun]:
    """Run one job's body inside the lifecycle (see the module docstring).

    Args:
        spark: the session the run ledger is written with.
        storage: the lake.
        record: the run's record (the job's result).
        lease: the job's lease, not yet taken; None for a job that writes nothing.
        lease_wait: seconds to wait for another run holding the lease.
        enabled: append the run to the run ledger (benchmarks switch it off).

    Yields:
        The :class:`JobRun` handle.

    Raises:
        LeaseHeldError: another run holds the lease past ``lease_wait`` (nothing recorded).
    """
    with telemetry.run_span(record):
        if lease is not None:
            lease.acquire(wait=lease_wait)
        try:
            try:
                yield JobRun(record, lease)
            except Exception as err:
                record.finish("failed", run_error(err))
                telemetry.record_result(record)  # the failure's log line carries the batch
                # The ledger gets a code and one line; the full trace goes to the log only.
                log.error(
                    "%s %s: run %s failed: %s",
                    record.job,
                    record.dataset,
                    record.run_id,
                    record.error,
                    exc_info=True,
                )
                setattr(err, _FAILED_RUN, record)
                raise
            else:
                if record.status == "running":
                    record.finish("succeeded")
            finally:
                if enabled and record.status != "running":
                    _append(spark, storage, record)
        finally:
            if lease is not None:
                lease.release()


def _append(spark: SparkSession, storage: Storage, record: RunRecord) -> None:
    try:
        RunLedger(spark, storage).append(record)
    except Exception:  # the run's outcome stands even if its ledger row could not be written
        log.exception("could not append run %s to the run ledger", record.run_id)


def failed_run(err: BaseException) -> RunRecord | None:
    """The record of the run ``err`` failed, or None when it was raised before a run started."""
    record = getattr(err, _FAILED_RUN, None)
    return record if isinstance(record, RunRecord) else None


def outcome_of(err: BaseException) -> tuple[Status, str]:
    """Whether ``err`` refused a run or failed one, and its reason code.

    A run that started and failed is ``failed``; a headwater error raised before any run started
    (unknown dataset, invalid contract, bad settings, held lease, bad input) is ``refused``; any
    other error (the lake or Spark unreachable...) is ``failed``. The code is the error's own
    ``code`` (every headwater error has one: ``lease_held``, ``unknown_dataset``...), else the
    run code :func:`~ingestion.core.errors.classify` gives its kind (``storage``, ``spark``...).
    """
    started = failed_run(err) is not None
    refused = not started and isinstance(err, HeadwaterError) and not isinstance(err, StorageError)
    code, _ = classify(err)  # the error's own code, or the run code of its kind
    return ("refused" if refused else "failed"), code


def exit_code(status: str) -> int:
    """0 for succeeded or skipped, 1 for failed, 2 for refused."""
    return EXIT_CODES.get(status, 1)


__all__ = [
    "EXIT_CODES",
    "JobRun",
    "Status",
    "exit_code",
    "failed_run",
    "job_run",
    "outcome_of",
]
