"""When pending files of a dataset become a run, and who runs it.

Three parts, each replaceable on its own:

* :class:`BatchPolicy` - pure: given a dataset's queued files and the time, is a run due? A run is
  due when the file count, the bytes or the age of the oldest file reaches the dataset's
  threshold (``settings.batching``, with per-dataset overrides), whichever comes first.
* :class:`Submitter` - the one seam through which a run is started. :class:`InProcessSubmitter`
  calls the runner the adapter hands it (the Function App passes ``jobs.pipeline.run``: a
  pipeline run, ingest -> curate -> publish -> register); spark-submit / Databricks / Synapse
  submitters implement the same protocol.
* :class:`Batcher` - evaluates the policy on every trigger and keeps one run per dataset at a
  time. A trigger that arrives while a run is active is coalesced: the runner evaluates the
  policy again before it lets go, so the trigger is not lost and many triggers make one
  follow-up run. This in-memory coalescing holds inside one worker only; across Function
  instances the jobs' leases (``ingestion.core.lease``) and the reconcile timer carry it. A
  submission that meets a held lease (``LeaseHeldError``, or a summary refused with
  ``lease_held``: a remote job's exit 2) counts as coalesced, not failed: its files stay queued
  for the holder's batcher or the reconcile timer's sweep. A run that started and failed (its
  summary says ``failed``) is ``failed`` with the failing stage's code; the stage recorded it
  and the next run resumes there.

Nothing here imports pyspark or the entry points (``jobs``): the runner is injected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from ingestion.core.config import BatchingSettings, RetrySettings
from ingestion.core.errors import HeadwaterError, LeaseHeldError, classify, one_line
from ingestion.core.errors import describe as describe_error
from ingestion.core.reasons import Code, RunCode, UnknownCodeError, parse_run_code
from ingestion.events.ledger import Ledger, QueuedFile

log = logging.getLogger(__name__)

Reason = Literal["files", "bytes", "age"]


# --- policy (pure) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """A run is due when any of these is reached."""

    max_files: int
    max_bytes: int
    max_age_seconds: float


@dataclass(frozen=True)
class Decision:
    """The policy's verdict for one dataset at one instant."""

    dataset: str
    due: bool
    reason: Reason | None
    files: int
    bytes: int
    oldest_age: float | None
    # Seconds until the age threshold makes a run due (None when nothing waits or already due).
    wait_seconds: float | None


class BatchPolicy:
    """Count, bytes and age thresholds per dataset; no I/O, no clock of its own."""

    def __init__(self, settings: BatchingSettings) -> None:
        self.settings = settings
        for name, override in settings.datasets.items():
            for key, value in override.model_dump(exclude_none=True).items():
                if value <= 0:
                    raise BatchingConfigError(name, f"{key} must be > 0, got {value}")
        for key in ("max_files", "max_bytes", "max_age_seconds"):
            if getattr(settings, key) <= 0:
                raise BatchingConfigError("*", f"{key} must be > 0, got {getattr(settings, key)}")

    def thresholds(self, dataset: str) -> Thresholds:
        """The dataset's thresholds: its override where set, else the defaults."""
        override = self.settings.datasets.get(dataset)
        base = Thresholds(
            max_files=self.settings.max_files,
            max_bytes=self.settings.max_bytes,
            max_age_seconds=self.settings.max_age_seconds,
        )
        if override is not None:
            base = replace(base, **override.model_dump(exclude_none=True))
        return base

    def decide(self, dataset: str, queued: Sequence[QueuedFile], *, now: float) -> Decision:
        """Whether ``queued`` (the dataset's pending files) should become a run at ``now``."""
        t = self.thresholds(dataset)
        files = len(queued)
        size = sum(q.size for q in queued)
        if not files:
            return Decision(dataset, False, None, 0, 0, None, None)
        oldest = max(0.0, now - min(q.received_at for q in queued))
        reason: Reason | None = None
        if files >= t.max_files:
            reason = "files"
        elif size >= t.max_bytes:
            reason = "bytes"
        elif oldest >= t.max_age_seconds:
            reason = "age"
        wait = None if reason else t.max_age_seconds - oldest
        return Decision(dataset, reason is not None, reason, files, size, oldest, wait)


class BatchingConfigError(HeadwaterError):
    """Batching thresholds that cannot work (zero or negative)."""

    code = RunCode.BATCHING_CONFIG

    def __init__(self, dataset: str, problem: str) -> None:
        super().__init__(f"batching thresholds for {dataset!r}: {problem}")
        self.dataset = dataset


# --- submitters ------------------------------------------------------------------------------------
@runtime_checkable
class Submitter(Protocol):
    """Starts one run of a dataset (a pipeline run) and returns its summary (a JSON-able dict).

    The summary is the job's JSON output: ``status`` (``succeeded``, ``skipped``, ``failed``,
    ``refused``), ``code`` for a refusal, ``error`` for a failure. A submitter may instead raise
    (``LeaseHeldError`` for a held lease, a SubmitError when the run could not be started).
    """

    def submit(self, dataset: str) -> dict[str, Any]: ...


class SubmitError(HeadwaterError):
    """A run could not be started or failed; the dataset's files stay queued."""

    code = RunCode.SUBMIT

    def __init__(self, dataset: str, reason: str) -> None:
        super().__init__(f"run of {dataset!r} failed: {reason}")
        self.dataset = dataset
        self.reason = reason


Runner = Callable[[str], Any]
IngestRunner = Runner  # the name from before pipeline runs


class InProcessSubmitter:
    """Runs ``runner(dataset)`` in this process (local Spark).

    Args:
        runner: runs one run of a dataset and returns its summary (a dict, or a result with
            ``as_dict()``). The adapter chooses it, e.g. ``functools.partial(jobs.pipeline.run,
            settings=settings)``; an ImportError from it (no Spark here) becomes a SubmitError.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def submit(self, dataset: str) -> dict[str, Any]:
        """Run ``dataset`` now; the run's summary."""
        try:
            summary = self.runner(dataset)
        except ImportError as err:
            raise SubmitError(
                dataset,
                f"the in-process submitter needs Spark here ({type(err).__name__}: {err}); "
                "install the `local` extra or configure a remote submitter",
            ) from err
        return summary.as_dict() if hasattr(summary, "as_dict") else summary


# --- coordination ----------------------------------------------------------------------------------
Outcome = Literal["idle", "ran", "submitted", "coalesced", "failed", "stalled"]


@dataclass
class TriggerResult:
    """What one trigger did for a dataset."""

    dataset: str
    outcome: Outcome
    decision: Decision | None = None  # the last evaluation
    runs: list[dict[str, Any]] = field(default_factory=list)  # each run's summary
    started_by: list[Decision] = field(default_factory=list)  # the decision that started each run
    error: str | None = None  # "<ExceptionClass>: <one line>"; the code is in ``code``
    code: Code | None = None
    attempts: int = 0  # submits of the last run (transient failures are retried)


class Batcher:
    """Turns triggers into runs: policy check, one run per dataset, coalescing.

    Args:
        ledger: the event ledger (its queue is what the policy looks at).
        policy: the thresholds.
        submitter: starts a run.
        clock: seconds since the epoch (injected so tests can move time).
        max_runs: safety bound on back-to-back runs for one trigger.
        retry: attempts at a run that fails transiently (terminal failures are not retried).
    """

    def __init__(
        self,
        ledger: Ledger,
        policy: BatchPolicy,
        submitter: Submitter,
        *,
        clock: Callable[[], float] = time.time,
        max_runs: int = 10,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.submitter = submitter
        self.clock = clock
        self.max_runs = max_runs
        self.retry = retry or RetrySettings(attempts=1)
        self.sleep = sleep
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._rerun: set[str] = set()

    def is_active(self, dataset: str) -> bool:
        with self._lock:
            return dataset in self._active

    def decide(self, dataset: str) -> Decision:
        return self.policy.decide(dataset, self.ledger.queued(dataset), now=self.clock())

    def trigger(self, dataset: str, *, force: bool = False) -> TriggerResult:
        """Evaluate ``dataset`` now and run it when due (or ``force`` and anything is queued).

        While this process runs the dataset, a further trigger only records that the dataset
        must be looked at again and returns ``coalesced``: the active runner evaluates the
        policy once more before it lets go, so no trigger is lost and many become one run.
        """
        with self._lock:
            if dataset in self._active:
                self._rerun.add(dataset)
                log.info("a run of %s is active: trigger coalesced", dataset)
                return TriggerResult(dataset, "coalesced")
            self._active.add(dataset)
            self._rerun.discard(dataset)
        result = TriggerResult(dataset, "idle")
        try:
            self._run_while_due(result, force=force)
        finally:
            with self._lock:
                self._active.discard(dataset)
        return result

    def _run_while_due(self, result: TriggerResult, *, force: bool) -> None:
        dataset = result.dataset
        previous: set[str] | None = None
        while True:
            queued = self.ledger.queued(dataset)
            decision = self.policy.decide(dataset, queued, now=self.clock())
            result.decision = decision
            if decision.due or (force and decision.files > 0):
                keys = {q.key for q in queued}
                if previous is not None and keys == previous:
                    # The last run left exactly these files queued: running again would spin.
                    result.outcome = "stalled"
                    result.error = f"{len(keys)} queued file(s) were not taken by the last run"
                    log.error("runs of %s made no progress: %s", dataset, result.error)
                    return
                if len(result.runs) >= self.max_runs:
                    result.error = f"stopped after {self.max_runs} back-to-back runs"
                    log.warning("runs of %s: %s; the next trigger continues", dataset, result.error)
                    return
                if not self._submit(result, decision):
                    return
                previous, force = keys, False
                continue
            # Not due. Let go, unless a trigger was coalesced since this decision: look again.
            with self._lock:
                if dataset not in self._rerun:
                    return
                self._rerun.discard(dataset)

    def _submit(self, result: TriggerResult, decision: Decision) -> bool:
        dataset = result.dataset
        log.info(
            "starting a run of %s: %d file(s), %d bytes (%s)",
            dataset,
            decision.files,
            decision.bytes,
            decision.reason or "coalesced trigger",
        )
        result.attempts = 0
        while True:
            result.attempts += 1
            try:
                summary = self.submitter.submit(dataset)
                break
            except LeaseHeldError as err:
                # Another process is writing this dataset. Its files stay queued: that process's
                # batcher re-evaluates when its run ends, and the reconcile timer sweeps every dataset.
                log.info("run of %s: %s; trigger coalesced into that run", dataset, err)
                result.outcome = "coalesced"
                result.error = str(err)
                result.code = err.code
                return False
            except Exception as err:  # noqa: BLE001 - a failed run must not fail the event
                code, transient = classify(err)
                if transient and result.attempts < self.retry.attempts:
                    wait = min(
                        self.retry.wait_seconds * 2 ** (result.attempts - 1), self.retry.max_wait_seconds
                    )
                    log.warning(
                        "run of %s failed (%s); retrying in %.1fs", dataset, describe_error(err), wait
                    )
                    self.sleep(wait)
                    continue
                # Terminal, or transient past the bound: fail now, with the code.
                log.error(
                    "run of %s failed: %s; its files stay queued",
                    dataset,
                    describe_error(err),
                    exc_info=True,
                )
                result.outcome = "failed"
                result.error = f"{type(err).__name__}: {one_line(err)}"
                result.code = code
                return False
        data = summary if isinstance(summary, dict) else {"result": summary}
        status = data.get("status")
        if status == "refused" and data.get("code") == RunCode.LEASE_HELD.value:
            # A remote job's exit 2: the same as LeaseHeldError in-process.
            log.info("run of %s refused: lease held (%s); trigger coalesced", dataset, data.get("error"))
            result.outcome = "coalesced"
            result.error = str(data.get("error") or "lease held")
            result.code = RunCode.LEASE_HELD
            return False
        result.runs.append(data)
        result.started_by.append(decision)
        if status == "submitted":
            # A remote run is in flight (or was already): nothing more until the reconcile timer
            # finds it ended; its files stay queued until its ingest takes them.
            result.outcome = "submitted"
            return False
        if status in ("failed", "refused"):
            # The run started (or was refused for a reason of its own) and its stage recorded why;
            # the next run resumes there. Not retried here: a stage retries its transient failures.
            result.outcome = "failed"
            result.error = str(data.get("error") or status)
            result.code = _summary_code(data)
            log.error("run of %s %s: %s", dataset, status, result.error)
            return False
        result.outcome = "ran"
        return True


def _summary_code(data: dict[str, Any]) -> Code:
    """The code of a failed or refused run's summary: its ``code``, else its error's prefix."""
    for raw in (data.get("code"), str(data.get("error") or "").split(":", 1)[0].strip()):
        if raw:
            try:
                return parse_run_code(str(raw))
            except UnknownCodeError:
                continue
    return RunCode.UNKNOWN


def describe(result: TriggerResult) -> dict[str, Any]:
    """A JSON-able summary of a trigger, for logs and CLI output."""
    out: dict[str, Any] = {
        "dataset": result.dataset,
        "outcome": result.outcome,
        "runs": len(result.runs),
        "reasons": [d.reason or "forced" for d in result.started_by],
    }
    if result.decision is not None:
        out["decision"] = asdict(result.decision)
    if result.error:
        out["error"] = result.error
        out["code"] = result.code
    return out
