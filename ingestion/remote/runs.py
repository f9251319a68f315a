"""Pipeline runs on a remote service (Databricks, Synapse): submitted, recorded, polled, closed.

The Function never waits for a remote run. :class:`RemoteRunSubmitter` (the batcher's
:class:`~ingestion.batching.Submitter`) starts one, records its id in the system area
(``system/remote/<dataset>.json``) and returns ``status: submitted``; while that run is open,
further triggers of the dataset submit nothing. The reconcile timer calls :func:`poll_open`:
each open run is asked for its state, and a finished one is closed with its final status, so
the timer's batching pass lets the next run go.

Retries and idempotency: every submission of a dataset's run carries an idempotency token made
only of values a retry repeats (environment, dataset, stage, batch, and how many runs of that
batch were already closed), so a submission retried after a timeout returns the run the first
attempt started and never a second one. A run lost remotely (cancelled, its cluster gone) is
closed as failed with its reason. Once a run is closed, the next submission has a new token
(the service would otherwise hand back the closed run) and resumes the same batch.

Remote states map onto one closed set (:data:`RemoteState`); each service's submitter maps its
own states (Databricks life-cycle and result states, Livy's batch states) onto it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ingestion.core.errors import HeadwaterError
from ingestion.core.reasons import RunCode

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

RemoteState = Literal["pending", "running", "succeeded", "failed", "cancelled", "lost"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "lost"})
TOKEN_MAX = 64  # Databricks' limit on an idempotency token
_TOKEN_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def idempotency_token(*, environment: str, dataset: str, stage: str, batch: int, closed: int = 0) -> str:
    """The token of a run: the same for every retry of one submission, at most 64 characters.

    Args:
        environment: the deployment environment (``dev``, ``qa``, ``prod``).
        dataset: the dataset.
        stage: the job (``pipeline``, ``ingest``...).
        batch: the bronze batch the run takes (the open one, or the next).
        closed: how many runs of this batch were closed already (a new run after each).

    Returns:
        ``hw-<env>-<dataset>-<stage>-b<batch>[-r<closed>]`` when it fits, else a readable prefix
        and a hash of the whole.
    """
    whole = f"hw-{environment}-{dataset}-{stage}-b{batch}" + (f"-r{closed}" if closed else "")
    whole = _TOKEN_SAFE.sub("_", whole)
    if len(whole) <= TOKEN_MAX:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:20]
    return f"{whole[: TOKEN_MAX - len(digest) - 1]}-{digest}"


def job_result(output: str | Iterable[str] | None) -> dict[str, Any] | None:
    """The job's JSON result: the last line of its output that is a JSON object.

    Every ``jobs.<job>`` prints its result so; a service hands the output back as one text
    (Databricks ``runs/get-output`` logs) or as log entries (Livy's ``log``).

    Args:
        output: the output text, or its entries (each may hold several lines).

    Returns:
        The object, or None when no line is one.
    """
    entries = [output] if isinstance(output, str) else list(output or [])
    for line in reversed([ln.strip() for entry in entries for ln in str(entry).splitlines()]):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


@dataclass(frozen=True)
class RemoteStatus:
    """A remote run's state as the service reports it, mapped.

    Attributes:
        state: the mapped state.
        detail: the service's own words (``TERMINATED/FAILED``, ``dead``...), for the record.
        message: why it failed or was cancelled (the service's message), never a token.
        result: the job's JSON result (its last JSON line of output) when the service has it.
    """

    state: RemoteState
    detail: str
    message: str | None = None
    result: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@runtime_checkable
class RemoteService(Protocol):
    """A service that runs a job remotely: what each target (Databricks, Synapse) implements."""

    target: str

    def start(self, dataset: str, *, job: str, token: str) -> str:
        """Start ``job`` for ``dataset`` (or return the run the same ``token`` started); its id."""
        ...

    def status(self, run_id: str) -> RemoteStatus:
        """The run's state now (one request; never waits)."""
        ...


class RemoteRunError(HeadwaterError):
    """A remote service refused or failed a request (the message never holds a token).

    Attributes:
        target: ``databricks`` or ``synapse``.
        status: the HTTP status, when there was one.
    """

    code = RunCode.SUBMIT

    def __init__(
        self, target: str, reason: str, *, status: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.status = status
        self.transient = transient
        if status in (401, 403):
            self.code = RunCode.AUTH

    @classmethod
    def from_http(
        cls, target: str, doing: str, status: int | None, said: str, *, auth_hint: str
    ) -> RemoteRunError:
        """The error for an HTTP answer: 401/403 name ``auth_hint``; 408, 429, 5xx and no status are transient.

        Args:
            target: the service.
            doing: what was being done (``submitting a run of orders``).
            status: the HTTP status (None: no answer).
            said: the service's own code or message (never a token).
            auth_hint: what to check when the identity was refused.
        """
        detail = f": {said}" if said else ""
        if status in (401, 403):
            return cls(target, f"{doing}: not authorized ({status}{detail}); {auth_hint}", status=status)
        transient = status is None or status in (408, 429) or status >= 500
        return cls(target, f"{doing}: HTTP {status}{detail}", status=status, transient=transient)


@dataclass
class RemoteRun:
    """One remote run of a dataset, as the system area records it."""

    dataset: str
    target: str
    job: str
    run_id: str
    token: str
    batch: int
    submitted_at: float
    state: str = "pending"
    detail: str | None = None
    message: str | None = None
    closed_at: float | None = None
    result: dict[str, Any] | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class RemoteRecord:
    """``system/remote/<dataset>.json``: the open run (if any), past runs, closed runs per batch."""

    current: RemoteRun | None = None
    history: list[RemoteRun] = field(default_factory=list)  # the newest closed runs, newest last
    closed: dict[str, int] = field(default_factory=dict)  # batch -> its runs closed so far

    KEEP = 50


class RemoteRuns:
    """The registry of remote runs in the system area (one record per dataset)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def path(dataset: str) -> str:
        return f"system/remote/{dataset}.json"

    def load(self, dataset: str) -> RemoteRecord:
        if not self.storage.exists(self.path(dataset)):
            return RemoteRecord()
        data = json.loads(self.storage.read_bytes(self.path(dataset)))
        current = data.get("current")
        return RemoteRecord(
            current=RemoteRun(**current) if current else None,
            history=[RemoteRun(**r) for r in data.get("history", [])],
            closed={str(k): int(v) for k, v in data.get("closed", {}).items()},
        )

    def save(self, dataset: str, record: RemoteRecord) -> None:
        body = {
            "current": asdict(record.current) if record.current else None,
            "history": [asdict(r) for r in record.history[-RemoteRecord.KEEP :]],
            "closed": record.closed,
        }
        self.storage.write_bytes(self.path(dataset), json.dumps(body, indent=1, sort_keys=True).encode())

    def open_runs(self) -> Iterator[RemoteRun]:
        """Every dataset's open run."""
        for obj in self.storage.list("system/remote"):
            if obj.path.endswith(".json"):
                dataset = obj.path.rsplit("/", 1)[1][: -len(".json")]
                current = self.load(dataset).current
                if current is not None and current.open:
                    yield current


def next_batch(storage: Storage, dataset: str) -> int:
    """The bronze batch a run of ``dataset`` takes now: the open one, or the one after the last."""
    from ingestion.bronze.manifest import Manifests

    latest = Manifests(storage, dataset).latest()
    if latest is None:
        return 1
    return latest.batch if latest.status in ("open", "failed") else latest.batch + 1


class RemoteRunSubmitter:
    """The batcher's submitter for a remote service: start, record, return; never wait.

    Args:
        storage: the lake (the registry lives in its system area).
        service: the target (:class:`ingestion.remote.databricks.DatabricksService`...).
        environment: names the deployment in the idempotency token.
        job: the ``jobs`` module each run runs (``pipeline``).
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        storage: Storage,
        service: RemoteService,
        *,
        environment: str,
        job: str = "pipeline",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.service = service
        self.environment = environment
        self.job = job
        self.clock = clock
        self.runs = RemoteRuns(storage)

    def token(self, dataset: str, record: RemoteRecord | None = None) -> tuple[str, int]:
        """The token of the next submission of ``dataset``'s run, and the batch it names."""
        record = record or self.runs.load(dataset)
        batch = next_batch(self.storage, dataset)
        token = idempotency_token(
            environment=self.environment,
            dataset=dataset,
            stage=self.job,
            batch=batch,
            closed=record.closed.get(str(batch), 0),
        )
        return token, batch

    def submit(self, dataset: str) -> dict[str, Any]:
        """Start a run of ``dataset`` unless one is open; ``status: submitted`` with its id.

        Raises:
            RemoteRunError: the service refused or failed the request (transient for throttling,
                5xx and network errors: the batcher retries with the same token).
        """
        record = self.runs.load(dataset)
        if record.current is not None and record.current.open:
            run = record.current
            return self._summary(run, already=True)
        token, batch = self.token(dataset, record)
        run_id = self.service.start(dataset, job=self.job, token=token)
        run = RemoteRun(dataset, self.service.target, self.job, str(run_id), token, batch, self.clock())
        record.current = run
        self.runs.save(dataset, record)
        log.info("%s run %s of %s submitted (batch %d)", run.target, run.run_id, dataset, batch)
        return self._summary(run, already=False)

    @staticmethod
    def _summary(run: RemoteRun, *, already: bool) -> dict[str, Any]:
        return {
            "status": "submitted",
            "dataset": run.dataset,
            "target": run.target,
            "run_id": run.run_id,
            "batch": run.batch,
            "already_open": already,
        }


def poll_open(
    storage: Storage, service: RemoteService, *, clock: Callable[[], float] = time.time
) -> list[RemoteRun]:
    """Ask the service about every open run of its target; close the finished ones.

    A run lost remotely (``cancelled`` or ``lost``) is closed as ``failed`` with its reason.
    Every closed run is counted against its batch, so the next submission is a new run. A
    service error leaves the run open for the next poll.

    Returns:
        The runs closed by this poll.
    """
    runs = RemoteRuns(storage)
    closed: list[RemoteRun] = []
    for run in list(runs.open_runs()):
        if run.target != service.target:
            continue
        try:
            status = service.status(run.run_id)
        except RemoteRunError as err:
            log.warning("polling %s run %s of %s failed: %s", run.target, run.run_id, run.dataset, err)
            continue
        record = runs.load(run.dataset)  # read again after the request: another poll may have closed it
        current = record.current
        if current is None or current.run_id != run.run_id:
            continue
        current.state, current.detail, current.message = status.state, status.detail, status.message
        if status.terminal:
            current.closed_at = clock()
            current.result = status.result
            record.closed[str(current.batch)] = record.closed.get(str(current.batch), 0) + 1
            if status.state in ("cancelled", "lost"):
                current.state = "failed"
                current.message = f"{status.state} remotely: {status.message or status.detail}"
            record.history.append(current)
            record.current = None
            closed.append(current)
            log.info("%s run %s of %s: %s", current.target, current.run_id, current.dataset, current.state)
        runs.save(run.dataset, record)
    return closed
