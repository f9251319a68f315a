"""What the Function App's triggers share: one runtime per worker process over the core.

Every trigger ends in the same place as the CLI: ``EventHandler.file_landed(path, etag=, size=)``
records the file once in the ledger; a newly queued file then lets the :class:`Batcher` decide
whether its dataset's pending files make a run. Nothing here reads a landed file's bytes: the
blob's properties (etag, size) are all the event needs, so memory does not grow with the blob.

Failures of one file version are counted by the :class:`PoisonBox`: below the bound the error
propagates and the trigger retries; at the bound the version is parked with its reason and the
invocation succeeds, so a bad blob never holds up the others.

Telemetry (:mod:`ingestion.core.telemetry`): the first runtime of a worker process installs the
providers (``component="function-app"``), JSON log lines and the backlog gauges. Each trigger
handles its invocation inside :func:`invocation_trace`, so the host's trace is the parent of the
runs it submits (their ``--traceparent``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from functions.events import Ignored, classify
from ingestion.batching import Batcher, BatchPolicy, InProcessSubmitter, Submitter, TriggerResult, describe
from ingestion.contracts import Catalog
from ingestion.contracts.paths import check_landing_path
from ingestion.core import telemetry
from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import RejectedPathError
from ingestion.core.reasons import EventCode
from ingestion.core.storage import Storage, open_storage
from ingestion.events import EventHandler, Ledger, sweep
from ingestion.poison import PoisonBox
from ingestion.remote.runs import RemoteRunError, RemoteService, poll_open

if TYPE_CHECKING:  # pragma: no cover
    from azure.storage.blob import BlobClient

    from ingestion.changes.puller import PullResult
    from ingestion.changes.trigger import TriggerOutcome

log = logging.getLogger("headwater.functions")

# The app setting (collection) the blob trigger connects with: `LandingStorage` for a connection
# string (Azurite), or `LandingStorage__blobServiceUri` + `__queueServiceUri` for managed identity.
LANDING_CONNECTION = "LandingStorage"
# The landing container comes from the same setting headwater's own settings read.
LANDING_CONTAINER_SETTING = "HEADWATER_LAKE__CONTAINERS__LANDING"
LANDING_PATH = f"%{LANDING_CONTAINER_SETTING}%/{{name}}"
# Reconcile sweep: catches missed events and fires age thresholds. Every 5 minutes.
RECONCILE_SCHEDULE = "0 */5 * * * *"
# The sweep leaves files younger than this for the next pass (an ADLS CreateFile shows an empty
# file before its data is flushed); an empty file older than this is taken as really empty.
RECONCILE_MIN_AGE = 120.0

Outcome = Literal["queued", "duplicate", "rejected", "ignored", "parked"]


def submitter_from_settings(settings: Settings, storage: Storage | None = None) -> Submitter:
    """The submitter the settings choose (``HEADWATER_SUBMIT__KIND``); a due batch becomes a pipeline run.

    ``spark-submit``: each run is ``spark-submit`` of ``jobs.<HEADWATER_SUBMIT__JOB>`` (``pipeline``:
    ingest -> curate -> publish -> register) to ``HEADWATER_SUBMIT__MASTER``, from the wheel installed
    for ``HEADWATER_SUBMIT__PYTHON``. ``in-process`` (the default): ``jobs.pipeline.run`` here. The
    job is imported when a run starts, so a Function App without Spark starts and records files;
    its runs fail with a SubmitError saying what to install (files stay queued).
    """
    if settings.submit.kind == "spark-submit":
        from ingestion.submit import SparkSubmitSubmitter

        return SparkSubmitSubmitter(settings)
    if settings.submit.kind in ("databricks", "synapse"):
        from ingestion.remote import RemoteRunSubmitter

        if storage is None:
            raise ValueError("a remote submitter records its runs in the lake: pass the storage")
        try:
            service = remote_service(settings)
        except RemoteRunError as err:
            # Misconfigured: the app still starts and records files; each run fails with the reason.
            return UnconfiguredSubmitter(err)
        return RemoteRunSubmitter(storage, service, environment=settings.env.value, job=settings.submit.job)

    def run_pipeline(dataset: str) -> dict[str, Any]:
        from jobs import pipeline

        return pipeline.run(dataset, settings=settings)

    return InProcessSubmitter(run_pipeline)


class UnconfiguredSubmitter:
    """Stands in for a remote submitter whose settings are incomplete: every run fails with why."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def submit(self, dataset: str) -> dict[str, Any]:
        """Raise the configuration error (the batcher records it; the files stay queued)."""
        raise self.error


def remote_service(settings: Settings) -> RemoteService:
    """The remote service ``HEADWATER_SUBMIT__KIND`` names (``databricks`` or ``synapse``)."""
    if settings.submit.kind == "databricks":
        from ingestion.remote.databricks import DatabricksService

        return DatabricksService(settings)
    from ingestion.remote.synapse import SynapseService

    return SynapseService(settings)


@dataclass
class Handled:
    """What handling one landed file (or one event) came to."""

    outcome: Outcome
    path: str  # landing-relative
    dataset: str | None = None
    etag: str | None = None
    size: int | None = None
    reason_code: str | None = None
    reason: str | None = None
    batch: TriggerResult | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "path": self.path}
        for key in ("dataset", "etag", "size", "reason_code", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.batch is not None:
            out["batch"] = describe(self.batch)
        return out


@dataclass
class ReconcileReport:
    """The timer's sweep: every landing file seen, and the batching pass after it."""

    seen: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    batches: list[TriggerResult] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)  # remote runs that ended (polled)

    def summary(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "remote_runs_closed": self.closed,
            "outcomes": dict(self.outcomes),
            "errors": self.errors,
            "batches": [describe(b) for b in self.batches],
        }


class LandingRuntime:
    """The core objects a Function invocation needs, built once per worker process.

    Args:
        settings: headwater settings.
        storage: the lake (BlobStorage on Azure; any Storage works).
        catalog: the datasets (``Catalog.discover()`` by default).
        submitter: starts pipeline runs (from the settings by default).
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        *,
        catalog: Catalog | None = None,
        submitter: Submitter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.clock = clock
        self.catalog = catalog if catalog is not None else Catalog.discover()
        self.ledger = Ledger(storage)
        self.handler = EventHandler(self.ledger, self.catalog, clock=clock)
        self.batcher = Batcher(
            self.ledger,
            BatchPolicy(settings.batching),
            submitter if submitter is not None else submitter_from_settings(settings, storage),
            clock=clock,
            retry=settings.retry,
        )
        self.poison = PoisonBox(storage, max_attempts=settings.poison_max_attempts, clock=clock)
        container_name = getattr(storage, "container_name", None)
        self.landing_container = (
            container_name("landing") if callable(container_name) else settings.lake.container("landing")
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LandingRuntime:
        settings = settings or get_settings()
        return cls(settings, open_storage(settings))

    # --- the blob trigger ----------------------------------------------------------------------
    def on_blob(self, blob: BlobClient) -> Handled:
        """Handle the blob trigger's ``BlobClient``: properties only, never the content."""
        from azure.core.exceptions import ResourceNotFoundError

        from ingestion.core.storage.azure_blob import is_directory, normalize_etag

        name = blob.blob_name
        if blob.container_name != self.landing_container:
            log.error(
                "blob trigger fired for container %r, but landing is %r: check %s",
                blob.container_name,
                self.landing_container,
                LANDING_CONTAINER_SETTING,
            )
            return Handled(
                "ignored",
                name,
                reason_code=EventCode.OTHER_CONTAINER,
                reason=f"container {blob.container_name!r} is not the landing container",
            )
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return self._gone(name)
        if is_directory(props):
            return Handled("ignored", name, reason_code=EventCode.DIRECTORY, reason="a directory, not a file")
        return self.handle_file(name, etag=normalize_etag(props.etag), size=int(props.size or 0))

    # --- Event Grid ----------------------------------------------------------------------------
    def on_event(
        self,
        event_type: str,
        subject: str | None,
        data: dict[str, Any] | None,
        *,
        event_id: str | None = None,
    ) -> list[Handled]:
        """Handle one Event Grid storage event (BlobCreated, BlobRenamed, DirectoryRenamed)."""
        verdict = classify(event_type, subject, data, event_id=event_id)
        if isinstance(verdict, Ignored):
            log.info("ignored event %s: %s", event_id, verdict.reason)
            name = (subject or "").rsplit("/blobs/", 1)[-1]
            return [Handled("ignored", name, reason_code=verdict.reason_code, reason=verdict.reason)]
        if verdict.container != self.landing_container:
            return [
                Handled(
                    "ignored",
                    verdict.name,
                    reason_code=EventCode.OTHER_CONTAINER,
                    reason=f"container {verdict.container!r} is not the landing container",
                )
            ]
        try:
            # Before any lake access: a hostile name ('..', control characters) never reaches it.
            check_landing_path(verdict.name)
        except RejectedPathError as err:
            log.warning("rejected event %s for %r: %s", event_id, verdict.name, err.reason)
            return [Handled("rejected", verdict.name, reason_code=err.code, reason=err.reason)]
        if verdict.kind == "directory":
            results = [
                self.handle_file(obj.path.split("/", 1)[1], etag=obj.etag, size=obj.size)
                for obj in self.storage.list(f"landing/{verdict.name}")
            ]
            return results or [
                Handled(
                    "ignored",
                    verdict.name,
                    reason_code=EventCode.EMPTY_DIRECTORY,
                    reason="renamed directory holds no files",
                )
            ]
        info = self.storage.info(f"landing/{verdict.name}")
        if info is None:
            return [self._gone(verdict.name)]
        return [self.handle_file(verdict.name, etag=info.etag, size=info.size)]

    # --- the SQL trigger -------------------------------------------------------------------------
    def on_sql_changes(self, source_name: str, changes: str | bytes) -> TriggerOutcome:
        """Persist one SQL trigger batch of ``source_name`` as a change file, then record it.

        Never raises once the file is written (the trigger would retry, then skip the batch
        forever): a failing ledger step is left to the reconcile sweep.
        """
        from ingestion.changes.trigger import land_trigger_batch

        source = self.catalog.source(source_name)
        dataset = self.catalog.get(source.dataset)
        return land_trigger_batch(
            self.storage,
            dataset,
            source,
            changes,
            record=lambda landed: self.handle_file(landed.path, etag=landed.etag, size=landed.size),
            clock=self.clock,
        )

    def pull_source(self, source_name: str) -> PullResult:
        """One pull of ``source_name`` (watermark mode); each landed file is recorded and batched."""
        from ingestion.changes.puller import pull

        return pull(
            self.storage,
            self.catalog,
            self.catalog.source(source_name),
            settings=self.settings,
            record=lambda landed: self.handle_file(landed.path, etag=landed.etag, size=landed.size),
            clock=self.clock,
        )

    # --- the shared path -------------------------------------------------------------------------
    def handle_file(
        self, name: str, *, etag: str, size: int, trigger: bool = True, allow_empty: bool = False
    ) -> Handled:
        """Record one completed landing file once, then let batching decide.

        Args:
            name: the path relative to the landing zone.
            etag: the version landed; the ledger records each (path, etag) once.
            size: bytes.
            trigger: evaluate the dataset's batch when the file is newly queued.
            allow_empty: record a zero-length file (the reconcile, for files old enough that
                they cannot be a CreateFile still waiting for its data).

        Raises:
            Exception: a failure of this file version while attempts remain (for the retry).
        """
        if size == 0 and not allow_empty:
            # A CreateFile (ADLS creates the file empty, data follows) or an empty file: nothing
            # to ingest either way. The completed write raises its own event with a new etag.
            return Handled(
                "ignored",
                name,
                etag=etag,
                size=0,
                reason_code=EventCode.ZERO_LENGTH,
                reason="zero-length file (a CreateFile before its data, or empty)",
            )
        dataset = self._dataset_of(name)
        guarded = self.poison.guard(
            lambda: self.handler.file_landed(name, etag=etag, size=size),
            path=name,
            etag=etag,
            dataset=dataset,
            size=size,
        )
        if guarded.parked is not None:
            rec = guarded.parked
            return Handled(
                "parked",
                name,
                dataset=rec.dataset,
                etag=etag,
                size=size,
                reason_code=rec.reason_code,
                reason=rec.reason,
            )
        result = guarded.value
        assert result is not None
        handled = Handled(
            result.outcome,
            result.path,
            dataset=result.dataset,
            etag=etag,
            size=size,
            reason_code=result.reason_code,
            reason=result.reason,
        )
        if result.outcome == "queued" and result.dataset and trigger:
            handled.batch = self._trigger(result.dataset)
        return handled

    def reconcile(self, *, min_age: float = RECONCILE_MIN_AGE) -> ReconcileReport:
        """List landing, record what the ledger lacks, then evaluate every dataset's batch.

        The core's sweep (``ingestion.events.sweep``, as ``backfill``), with each file guarded on
        its own: a failing file is counted (and parked at the bound) and the sweep goes on.
        """
        swept = sweep(
            self.storage,
            self.catalog,
            lambda name, obj: self.handle_file(
                name, etag=obj.etag, size=obj.size, trigger=False, allow_empty=True
            ),
            min_age=min_age,
            clock=self.clock,
            keep_going=True,
        )
        report = ReconcileReport(seen=swept.seen, outcomes=swept.outcomes, errors=swept.errors)
        service = getattr(self.batcher.submitter, "service", None)
        if isinstance(service, RemoteService):
            # Close the remote runs that ended, so the batching pass below lets the next one go.
            report.closed = [asdict(r) for r in poll_open(self.storage, service, clock=self.clock)]
        for ds in self.catalog.names():
            report.batches.append(self._trigger(ds))
        return report

    # --- helpers -------------------------------------------------------------------------------
    def _trigger(self, dataset: str) -> TriggerResult:
        try:
            return self.batcher.trigger(dataset)
        except Exception as err:  # noqa: BLE001 - the file is recorded; the timer re-evaluates
            log.exception("batching %s failed", dataset)
            return TriggerResult(dataset, "failed", error=f"{type(err).__name__}: {err}")

    def _dataset_of(self, name: str) -> str | None:
        try:
            return self.catalog.route(name)[0].name
        except RejectedPathError:
            return None

    @staticmethod
    def _gone(name: str) -> Handled:
        return Handled(
            "ignored",
            name,
            reason_code=EventCode.GONE,
            reason="the blob no longer exists (deleted or renamed since the event)",
        )


_runtime: LandingRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> LandingRuntime:
    """The worker process's runtime, built from the settings on first use (telemetry with it)."""
    global _runtime
    with _lock:
        if _runtime is None:
            telemetry.install_json_logs()
            settings = get_settings()
            telemetry.configure(settings, component="function-app")
            _runtime = LandingRuntime.from_settings(settings)
            telemetry.register_backlog(_runtime.storage, _runtime.catalog)
        return _runtime


@contextmanager
def invocation_trace(context: object) -> Iterator[None]:
    """Continue the host's trace of this invocation (``func.Context.trace_context``).

    azure-functions declares ``trace_parent``/``trace_state``; the Python worker's object has
    ``Traceparent``/``Tracestate`` (as azure-monitor-opentelemetry's README reads them): either.
    """
    trace_context = getattr(context, "trace_context", None)
    parent = _first_str(trace_context, "trace_parent", "Traceparent")
    state = _first_str(trace_context, "trace_state", "Tracestate")
    with telemetry.continue_trace(parent, state):
        yield


def _first_str(obj: object, *names: str) -> str | None:
    for name in names:
        try:
            value = getattr(obj, name, None)
        except Exception:  # noqa: BLE001 - an abstract property of a stand-in context
            value = None
        if isinstance(value, str) and value:
            return value
    return None


def set_runtime(runtime: LandingRuntime | None) -> None:
    """Install (or, with None, drop) the runtime the triggers use."""
    global _runtime
    with _lock:
        _runtime = runtime
