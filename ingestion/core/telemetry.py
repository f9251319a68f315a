"""OpenTelemetry for headwater: one module for traces, metrics, trace propagation and JSON logs.

OpenTelemetry is optional (the ``telemetry`` extra): where ``opentelemetry`` cannot be imported
(a Spark cluster without it) every function here is a no-op, except the JSON log lines, which
need nothing but the standard library.

* **Providers** (:func:`configure`): installed once per process, by the Function App
  (``function-app``), the CLI (``cli``) and every ``python -m jobs.<job>`` (``job``). To
  Application Insights when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, else to OTLP over
  HTTP when ``settings.telemetry.otlp_endpoint`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is, else
  nowhere (the API's no-op providers).
* **Spans**: a pipeline run is the span ``headwater.pipeline``; each stage of it (and each job
  run on its own) is ``headwater.<job>`` (``headwater.ingest``, ``headwater.curate``,
  ``headwater.publish``, ``headwater.register``), opened by the job lifecycle
  (:func:`run_span`, from :func:`ingestion.core.lifecycle.job_run`). Attributes:
  ``headwater.dataset``, ``headwater.run_id``, ``headwater.batch``, ``headwater.bronze.version_from``
  / ``version_to`` (the bronze versions the stage wrote or read), and the row counts, named as
  the Lakeflow event log names them where they fit (``num_output_rows``, ``dropped_records``),
  plus ``headwater.rows_in`` and ``headwater.rows_quarantined``. A failed run's span has status
  ERROR with its reason code (also in ``error.type``).
* **Metrics** (meter ``headwater``): counters ``headwater.num_output_rows``,
  ``headwater.dropped_records``, ``headwater.quarantined_records`` (attributes ``dataset``,
  ``stage``); ``headwater.expectation.passed_records`` / ``failed_records`` (``dataset``,
  ``expectation``); the histogram ``headwater.stage.duration`` in seconds (``dataset``,
  ``stage``, ``status``); the observable gauges ``headwater.backlog.pending_files`` /
  ``pending_bytes`` (``dataset``) and ``headwater.changes.lag_seconds`` (``source``,
  ``dataset``), registered by :func:`register_backlog`.
* **Propagation**: :func:`current_traceparent` is the W3C ``traceparent`` a submitted run gets
  (``--traceparent``); :func:`continue_trace` makes one the parent of what runs inside it.
* **JSON logs** (:func:`install_json_logs`): one JSON object per line with the time, level,
  logger, message, the open stage's ``run_id``, ``dataset``, ``zone`` and ``batch``, and the
  trace and span ids. Never row contents: only the log message (and of an exception, its type
  and stack frames, not its message).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from ingestion.contracts import Catalog
    from ingestion.core.config import Settings
    from ingestion.core.runs import RunRecord
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

NAMESPACE = "headwater"  # service.namespace, and the name of the tracer and the meter
LOGGER_NAME = "headwater"  # the logger tree Application Insights collects (functions log under it)
CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
PIPELINE = "pipeline"  # the pipeline run's job name: its span parents the stages' spans

Component = Literal["function-app", "cli", "job"]
Exporter = Literal["azure-monitor", "otlp", "none"]

# The zone each job writes, for the log lines of its run.
ZONES: dict[str, str] = {
    "ingest": "bronze",
    "curate": "silver",
    "replay": "silver",
    "publish": "gold",
    "register": "gold",
}

# Span attributes.
DATASET = "headwater.dataset"
RUN_ID = "headwater.run_id"
BATCH = "headwater.batch"
BATCHES = "headwater.batches"
VERSION_FROM = "headwater.bronze.version_from"
VERSION_TO = "headwater.bronze.version_to"
STATUS = "headwater.status"
CODE = "headwater.code"
ERROR = "headwater.error"
OUTPUT_VERSION = "headwater.output_version"
ROWS_IN = "headwater.rows_in"
ROWS_QUARANTINED = "headwater.rows_quarantined"
NUM_OUTPUT_ROWS = "num_output_rows"  # as the Lakeflow event log's flow_progress metrics
DROPPED_RECORDS = "dropped_records"  # as its data_quality

# Metric names.
STAGE_DURATION = "headwater.stage.duration"
OUTPUT_ROWS_METRIC = "headwater.num_output_rows"
DROPPED_METRIC = "headwater.dropped_records"
QUARANTINED_METRIC = "headwater.quarantined_records"
PASSED_METRIC = "headwater.expectation.passed_records"
FAILED_METRIC = "headwater.expectation.failed_records"
PENDING_FILES = "headwater.backlog.pending_files"
PENDING_BYTES = "headwater.backlog.pending_bytes"
CHANGES_LAG = "headwater.changes.lag_seconds"


@cache
def available() -> bool:
    """Whether the OpenTelemetry API can be imported here (else everything is a no-op)."""
    try:
        import opentelemetry.context  # noqa: F401
        import opentelemetry.metrics  # noqa: F401
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


# --- providers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Installed:
    """What :func:`configure` installed in this process."""

    component: str
    exporter: str  # azure-monitor | otlp | sdk (only the processors and readers handed in)


_installed: Installed | None = None
_lock = threading.Lock()


def resource_attributes(settings: Settings, component: str) -> dict[str, str]:
    """The resource every span and metric of this process carries."""
    return {
        "service.name": settings.telemetry.service_name,
        "service.namespace": NAMESPACE,
        "deployment.environment": settings.env.value,
        "headwater.component": component,
    }


def otlp_endpoint(settings: Settings) -> str | None:
    """The OTLP/HTTP base URL (``settings.telemetry.otlp_endpoint``, else the standard variable)."""
    base = settings.telemetry.otlp_endpoint
    if not base:
        env = settings.environment_secret(OTLP_ENDPOINT_ENV)
        base = env.get_secret_value() if env is not None else None
    return base.rstrip("/") if base else None


def exporter(settings: Settings) -> Exporter:
    """Where this process's telemetry goes: Application Insights, OTLP, or nowhere."""
    if settings.environment_secret(CONNECTION_STRING_ENV) is not None:
        return "azure-monitor"
    return "otlp" if otlp_endpoint(settings) else "none"


def build_providers(
    settings: Settings,
    *,
    component: str,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> tuple[TracerProvider, MeterProvider]:
    """SDK providers (not installed): OTLP/HTTP exporters when an endpoint is set, plus the extras.

    Args:
        settings: ``settings.telemetry`` (endpoint, service name) and the environment.
        component: ``function-app``, ``cli`` or ``job`` (the resource's ``headwater.component``).
        span_processors: further processors (tests hand an in-memory exporter's).
        metric_readers: further readers.

    Returns:
        ``(tracer_provider, meter_provider)``.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create(resource_attributes(settings, component))
    tracer_provider = TracerProvider(resource=resource)
    readers = list(metric_readers)
    base = otlp_endpoint(settings)
    if base:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics")))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    return tracer_provider, MeterProvider(resource=resource, metric_readers=readers)


def configure(
    settings: Settings,
    *,
    component: Component,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> None:
    """Install this process's tracer and meter providers, once.

    The first call that installs providers wins; every later call is a no-op. A call that finds
    nothing to export to (and no extra processor or reader) installs nothing, so spans and
    metrics stay the API's no-ops.

    Args:
        settings: where to export (see :func:`exporter`) and the resource's attributes.
        component: ``function-app``, ``cli`` or ``job``.
        span_processors: further span processors, passed on to every exporter's setup.
        metric_readers: further metric readers, likewise.
    """
    global _installed
    if not available():
        return
    with _lock:
        if _installed is not None:
            return
        kind = exporter(settings)
        if kind == "azure-monitor" and _azure_monitor(settings, component, span_processors, metric_readers):
            _installed = Installed(component, "azure-monitor")
            return
        if kind == "none" and not span_processors and not metric_readers:
            return
        try:
            tracer_provider, meter_provider = build_providers(
                settings, component=component, span_processors=span_processors, metric_readers=metric_readers
            )
        except ImportError as err:  # the API without the SDK or the exporter: stay a no-op
            log.warning("telemetry not exported: %s (install headwater's `telemetry` extra)", err)
            return
        from opentelemetry import metrics, trace

        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            log.info("a tracer provider is already installed in this process: headwater's spans go to it")
        else:
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
        _installed = Installed(component, "otlp" if kind == "otlp" else "sdk")


def _azure_monitor(
    settings: Settings,
    component: str,
    span_processors: Sequence[SpanProcessor],
    metric_readers: Sequence[MetricReader],
) -> bool:
    secret = settings.environment_secret(CONNECTION_STRING_ENV)
    if secret is None:  # pragma: no cover - exporter() said it is set
        return False
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry.sdk.resources import Resource
    except ImportError as err:
        log.warning(
            "%s is set but azure-monitor-opentelemetry is not installed (%s)", CONNECTION_STRING_ENV, err
        )
        return False
    configure_azure_monitor(
        connection_string=secret.get_secret_value(),
        resource=Resource.create(resource_attributes(settings, component)),
        span_processors=list(span_processors),
        metric_readers=list(metric_readers),
        # Only headwater's own logger tree: "Setting this value is imperative so logs created
        # from the SDK itself are not tracked" (azure-monitor-opentelemetry README, Usage).
        logger_name=LOGGER_NAME,
    )
    logger = logging.getLogger(LOGGER_NAME)
    for handler in logger.handlers:  # the SDK's handler: its log records carry the stage's ids
        handler.addFilter(_CONTEXT_FILTER)
    if component == "function-app":
        # azure-monitor-opentelemetry README, "Monitoring in Azure Functions" / "Logging issues":
        # the Functions worker sends log telemetry itself, so records the SDK exports would
        # arrive twice; it advises taking the worker's handler (on the root logger) out of
        # their way. Scoped to what the SDK collects: the `headwater` tree stops propagating to
        # the root logger (its records reach Application Insights once, through the SDK, with
        # the trace ids); every other logger still goes through the worker to the host.
        logger.propagate = False
    return True


def enabled() -> bool:
    """Whether :func:`configure` installed providers in this process."""
    return _installed is not None


def installed() -> Installed | None:
    """What :func:`configure` installed in this process, or None."""
    return _installed


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is buffered now (a job's process may end without the interpreter's exit hooks)."""
    if _installed is None:
        return
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            try:
                force_flush(timeout_millis)
            except Exception:  # noqa: BLE001 - telemetry never fails a run
                log.debug("telemetry flush failed", exc_info=True)


# --- log context ---------------------------------------------------------------------------------
@dataclass
class LogFields:
    """What the log lines of an open stage carry (never row contents)."""

    run_id: str | None = None
    dataset: str | None = None
    zone: str | None = None
    batch: int | list[int] | None = None

    def items(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


_FIELDS: ContextVar[LogFields | None] = ContextVar("headwater_log_fields", default=None)
_OPEN: ContextVar[Stage | None] = ContextVar("headwater_open_run", default=None)


def log_fields() -> dict[str, Any]:
    """The open stage's ``run_id``, ``dataset``, ``zone`` and ``batch`` (those that are known)."""
    fields = _FIELDS.get()
    return fields.items() if fields is not None else {}


# --- spans ---------------------------------------------------------------------------------------
class Stage:
    """An open stage span (a stand-in without OpenTelemetry) and the log fields of its run."""

    def __init__(self, name: str, span: Span | None, fields: LogFields) -> None:
        self.name = name
        self.span = span
        self.fields = fields
        self.ended = False  # its outcome is recorded (the status is set)

    def set(self, attributes: Mapping[str, AttributeValue | None]) -> None:
        """Set span attributes (None values are left out)."""
        if self.span is None:
            return
        for key, value in attributes.items():
            if value is not None:
                self.span.set_attribute(key, value)

    def set_batch(self, batch: int | Sequence[int] | None) -> None:
        """The landing batch (or batches) the stage took: on the span and its log lines."""
        if batch is None or (not isinstance(batch, int) and not batch):
            return
        if isinstance(batch, int):
            self.fields.batch = batch
            self.set({BATCH: batch})
            return
        batches = [int(b) for b in batch]
        self.fields.batch = batches[0] if len(batches) == 1 else batches
        self.set({BATCHES: batches, BATCH: batches[-1] if len(batches) == 1 else None})

    def set_bronze_range(self, version_from: int | None, version_to: int | None) -> None:
        """The bronze versions the stage wrote or read."""
        if version_from is None or version_to is None or version_to < version_from:
            return
        self.set({VERSION_FROM: version_from, VERSION_TO: version_to})

    def result(self, record: RunRecord) -> None:
        """The run's result as span attributes (and its batch in the log fields)."""
        self.set({STATUS: record.status, OUTPUT_VERSION: record.output_version})
        batch = getattr(record, "batch", None)
        self.set_batch(batch if isinstance(batch, int) else record.details.get("batches"))
        if record.job == "ingest":
            # Ingest's input range is its batch number; the version it wrote is its output.
            self.set_bronze_range(record.output_version, record.output_version)
        elif record.job == "curate":
            self.set_bronze_range(record.input_from, record.input_to)
        if record.job != PIPELINE:  # the pipeline's own record counts no rows: its stages do
            self.set(
                {
                    ROWS_IN: record.rows_read,
                    NUM_OUTPUT_ROWS: record.rows_written,
                    DROPPED_RECORDS: record.rows_dropped,
                    ROWS_QUARANTINED: record.rows_quarantined,
                }
            )

    def end(self, status: str, code: str | None = None, error: str | None = None) -> None:
        """The stage's outcome: a failure sets the span's status ERROR with its code."""
        self.ended = True
        self.set({STATUS: status, CODE: code, ERROR: error})
        if self.span is None or status != "failed":
            return
        from opentelemetry.trace import Status, StatusCode

        self.set({"error.type": code or "unknown"})
        self.span.set_status(Status(StatusCode.ERROR, code or "unknown"))


@contextlib.contextmanager
def stage_span(
    name: str,
    *,
    dataset: str,
    run_id: str,
    batch: int | None = None,
    **attributes: AttributeValue,
) -> Iterator[Stage]:
    """Open the span ``headwater.<name>`` (a child of the current span) and its log fields.

    Args:
        name: the stage: ``pipeline``, ``ingest``, ``curate``, ``publish``, ``register``...
        dataset: the dataset.
        run_id: the run's id (the run ledger's).
        batch: the landing batch, when known.
        attributes: further span attributes, as named.

    Yields:
        The :class:`Stage`. An exception leaving it sets the span's status ERROR with the
        error's code unless the stage's outcome was already recorded; it is raised again.
    """
    fields = LogFields(run_id=run_id, dataset=dataset, zone=ZONES.get(name), batch=batch)
    token = _FIELDS.set(fields)
    try:
        if not available():
            yield Stage(name, None, fields)
            return
        from opentelemetry import trace

        tracer = trace.get_tracer(NAMESPACE)
        with tracer.start_as_current_span(
            f"headwater.{name}",
            attributes={DATASET: dataset, RUN_ID: run_id, **attributes},
            record_exception=False,  # an exception's message may quote a value: code only
            set_status_on_exception=False,
        ) as span:
            stage = Stage(name, span, fields)
            stage.set_batch(batch)
            try:
                yield stage
            except BaseException as err:
                if not stage.ended:
                    stage.end("failed", _error_code(err))
                raise
    finally:
        _FIELDS.reset(token)


@contextlib.contextmanager
def run_span(record: RunRecord) -> Iterator[Stage]:
    """The span of one job run (``headwater.<record.job>``), ended with the run's outcome.

    On exit: the result's attributes (:meth:`Stage.result`), the status (ERROR with the code for
    a failed run), the duration histogram and, for a stage that ran, its row counters. Inside a
    run span of the same run (a pipeline run's own record, whose span is opened before its
    first stage) it opens nothing and records nothing: the outer one does.
    """
    current = _OPEN.get()
    if current is not None and current.fields.run_id == record.run_id:
        yield current
        return
    started = time.perf_counter()
    with stage_span(record.job, dataset=record.dataset, run_id=record.run_id) as stage:
        token = _OPEN.set(stage)
        try:
            yield stage
        except BaseException as err:
            _finish(stage, record, err, time.perf_counter() - started)
            raise
        else:
            _finish(stage, record, None, time.perf_counter() - started)
        finally:
            _OPEN.reset(token)


def record_result(record: RunRecord) -> None:
    """Set ``record``'s result on its open run span now (e.g. before the failure is logged)."""
    current = _OPEN.get()
    if current is not None and current.fields.run_id == record.run_id:
        current.result(record)


def _finish(stage: Stage, record: RunRecord, err: BaseException | None, seconds: float) -> None:
    try:
        status: str = record.status
        code: str | None = None
        if err is not None and status == "running":  # it never started, or crashed outside it
            status, code = _outcome(err)
        elif status == "failed":
            code = _error_code(err) if err is not None else _record_code(record)
        stage.result(record)
        stage.end(status, code, record.error if status == "failed" else None)
        instruments = _instruments()
        if instruments is None:
            return
        instruments.duration.record(
            seconds, {"dataset": record.dataset, "stage": record.job, "status": status}
        )
        if record.job != PIPELINE and status in ("succeeded", "failed"):
            attrs = {"dataset": record.dataset, "stage": record.job}
            instruments.output_rows.add(record.rows_written, attrs)
            instruments.dropped.add(record.rows_dropped, attrs)
            instruments.quarantined.add(record.rows_quarantined, attrs)
    except Exception:  # noqa: BLE001 - telemetry never changes a run's outcome
        log.debug("could not record the telemetry of run %s", record.run_id, exc_info=True)


def _outcome(err: BaseException) -> tuple[str, str]:
    if not isinstance(err, Exception):
        return "failed", "unknown"
    from ingestion.core.lifecycle import outcome_of  # the lifecycle imports this module

    status, code = outcome_of(err)
    return status, str(code)


def _error_code(err: BaseException) -> str:
    from ingestion.core.errors import classify

    code, _ = classify(err)
    return str(code.value)


def _record_code(record: RunRecord) -> str:
    """A failed record's reason code: its own (a pipeline run's), its error's prefix, its job's."""
    from ingestion.core.reasons import RunCode, UnknownCodeError, run_error_code

    own = getattr(record, "code", None)
    if isinstance(own, str) and own:
        return own
    try:
        return run_error_code(record.error or "").value
    except UnknownCodeError:
        pass
    try:  # a decided failure ("3 rows failed rules whose action is fail...") is its job's
        return RunCode(record.job).value
    except ValueError:
        return RunCode.UNKNOWN.value


# --- metrics -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Instruments:
    duration: Histogram
    output_rows: Counter
    dropped: Counter
    quarantined: Counter
    passed: Counter
    failed: Counter


@cache
def _instruments() -> _Instruments | None:
    """The synchronous instruments, made once (bound to the provider once one is installed)."""
    if not available():
        return None
    from opentelemetry import metrics

    meter = metrics.get_meter(NAMESPACE)
    return _Instruments(
        duration=meter.create_histogram(
            STAGE_DURATION, unit="s", description="How long a stage (or pipeline run) took"
        ),
        output_rows=meter.create_counter(
            OUTPUT_ROWS_METRIC, unit="{row}", description="Rows a stage wrote (bronze, silver, gold)"
        ),
        dropped=meter.create_counter(
            DROPPED_METRIC, unit="{row}", description="Rows a stage dropped (an expectation's drop action)"
        ),
        quarantined=meter.create_counter(
            QUARANTINED_METRIC, unit="{row}", description="Rows a stage sent to quarantine"
        ),
        passed=meter.create_counter(
            PASSED_METRIC, unit="{row}", description="Rows that passed an expectation"
        ),
        failed=meter.create_counter(
            FAILED_METRIC, unit="{row}", description="Rows that failed an expectation"
        ),
    )


def record_expectations(dataset: str, *, rows: int, failed: Mapping[str, int]) -> None:
    """Count each expectation's passed and failed rows of one validated batch.

    Args:
        dataset: the dataset.
        rows: the rows every expectation was evaluated on.
        failed: expectation (``column.check``, or a row rule's name) -> rows that failed it;
            every evaluated expectation, those with no failure too.
    """
    instruments = _instruments()
    if instruments is None:
        return
    for name, count in failed.items():
        attrs = {"dataset": dataset, "expectation": name}
        instruments.failed.add(count, attrs)
        instruments.passed.add(max(0, rows - count), attrs)


class _Backlog:
    """What the backlog gauges observe: the ledger's pending files and the SQL sources' pulls."""

    def __init__(self) -> None:
        self.storage: Storage | Callable[[], Storage] | None = None
        self.catalog: Catalog | Callable[[], Catalog] | None = None
        self.registered = False
        self._at = 0.0
        self._pending: dict[str, tuple[int, int]] = {}

    def target(self) -> tuple[Storage, Catalog] | None:
        storage, catalog = self.storage, self.catalog
        if storage is None or catalog is None:
            return None
        if callable(storage):
            self.storage = storage = storage()
        if callable(catalog):
            self.catalog = catalog = catalog()
        return storage, catalog

    def pending(self) -> dict[str, tuple[int, int]]:
        """Dataset -> (files, bytes) pending, as ``headwater batching`` counts them.

        Both gauges read one listing: it is kept for a second (one collection reads both).
        """
        if time.monotonic() - self._at < 1.0:
            return self._pending
        found = self.target()
        if found is None:
            return {}
        from ingestion.events import Ledger

        storage, catalog = found
        ledger = Ledger(storage)
        out = {}
        for name in catalog.names():
            queued = ledger.queued(name)
            out[name] = (len(queued), sum(q.size for q in queued))
        self._pending, self._at = out, time.monotonic()
        return out

    def files(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(lambda: [(n, f) for n, (f, _) in self.pending().items()])

    def bytes(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(lambda: [(n, b) for n, (_, b) in self.pending().items()])

    def _observe(self, values: Callable[[], list[tuple[str, int]]]) -> list[Observation]:
        from opentelemetry.metrics import Observation

        try:
            return [Observation(v, {"dataset": n}) for n, v in values()]
        except Exception:  # noqa: BLE001 - an unreachable lake: no observation this time
            log.debug("backlog gauge could not read the ledger", exc_info=True)
            return []

    def lag(self, options: CallbackOptions) -> Iterable[Observation]:
        """Seconds since each SQL source's last successful pull.

        The pull state (``system/changes/<source>/state.json``) records no time of its own (a
        watermark column's times are the source's, in its own time zone; a change-tracking
        version is no time at all), but every successful pull, of either mode, rewrites it
        last: its modification time is when the source was last read up to date. A source no
        pull has read yet (trigger-only) has no observation.
        """
        from opentelemetry.metrics import Observation

        try:
            found = self.target()
            if found is None:
                return []
            from ingestion.changes.puller import PullState

            storage, catalog = found
            now = time.time()
            out = []
            for source in catalog.sources():
                info = storage.info(PullState.path(source.name))
                if info is not None:
                    lag = max(0.0, now - info.modified.timestamp())
                    out.append(Observation(lag, {"source": source.name, "dataset": source.dataset}))
            return out
        except Exception:  # noqa: BLE001 - an unreachable lake: no observation this time
            log.debug("changes lag gauge could not read the pull states", exc_info=True)
            return []


_backlog = _Backlog()


def register_backlog(
    storage: Storage | Callable[[], Storage], catalog: Catalog | Callable[[], Catalog]
) -> None:
    """Observe the pending files and bytes per dataset, and each SQL source's lag, from ``storage``.

    The gauges are made once per process; a later call points them at another lake. The lake
    and the catalog may be handed as functions, called at the first observation (the CLI opens
    neither before a command needs them).
    """
    if not available():
        return
    with _lock:
        _backlog.storage, _backlog.catalog, _backlog._at = storage, catalog, 0.0
        if _backlog.registered:
            return
        from opentelemetry import metrics

        meter = metrics.get_meter(NAMESPACE)
        meter.create_observable_gauge(
            PENDING_FILES, [_backlog.files], unit="{file}", description="Landed files waiting for a batch"
        )
        meter.create_observable_gauge(
            PENDING_BYTES, [_backlog.bytes], unit="By", description="Bytes of the files waiting for a batch"
        )
        meter.create_observable_gauge(
            CHANGES_LAG, [_backlog.lag], unit="s", description="Seconds since a SQL source's last pull"
        )
        _backlog.registered = True


# --- trace propagation ---------------------------------------------------------------------------
def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None (no trace, or no OpenTelemetry)."""
    if not available():
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent") or None


@contextlib.contextmanager
def continue_trace(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """Make ``traceparent`` (W3C) the parent of the spans started inside; None or invalid: nothing."""
    token = None
    if traceparent and available():
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        ctx = TraceContextTextMapPropagator().extract(carrier)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            token = context.attach(ctx)
        else:
            log.debug("ignoring an invalid traceparent")
    try:
        yield
    finally:
        if token is not None:
            from opentelemetry import context

            context.detach(token)


# --- JSON logs -----------------------------------------------------------------------------------
_PREFIX = "headwater."
_FIELD_NAMES = ("run_id", "dataset", "zone", "batch", "trace_id", "span_id")
_MARK = f"{_PREFIX}context"  # the filter saw the record where it was logged


def _current_fields() -> dict[str, Any]:
    out = log_fields()
    if available():
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
    return out


class ContextFilter(logging.Filter):
    """Puts the open stage's fields and the trace ids on each record, where it is logged.

    As attributes named ``headwater.<field>``: a handler that formats (or exports) the record
    later, on another thread, still has them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _MARK):
            fields = _current_fields()
            setattr(record, _MARK, True)
            for key, value in fields.items():
                setattr(record, f"{_PREFIX}{key}", value)
        return True


_CONTEXT_FILTER = ContextFilter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the stage's fields, trace ids.

    Only the log message is written (never ``extra`` values or an exception's message, which may
    quote a row): of an exception, its type and stack frames.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, _MARK):
            fields = {
                k: getattr(record, f"{_PREFIX}{k}") for k in _FIELD_NAMES if hasattr(record, f"{_PREFIX}{k}")
            }
        else:
            fields = _current_fields()
        out.update({k: fields[k] for k in _FIELD_NAMES if fields.get(k) is not None})
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(out, default=str)


def install_json_logs(logger: logging.Logger | None = None) -> None:
    """Format every handler of ``logger`` (the root logger) as JSON lines; add one on stderr if none.

    Idempotent. The Function App calls it always (the worker's handler then sends JSON lines to
    the host); the CLI with ``--log-json`` or ``settings.telemetry.json_logs``.
    """
    target = logger or logging.getLogger()
    if not target.handlers:
        target.addHandler(logging.StreamHandler())
    formatter = JsonFormatter()
    for handler in target.handlers:
        handler.setFormatter(formatter)
        if _CONTEXT_FILTER not in handler.filters:
            handler.addFilter(_CONTEXT_FILTER)


__all__ = [
    "CHANGES_LAG",
    "FAILED_METRIC",
    "PASSED_METRIC",
    "PENDING_BYTES",
    "PENDING_FILES",
    "STAGE_DURATION",
    "ContextFilter",
    "Installed",
    "JsonFormatter",
    "LogFields",
    "Stage",
    "available",
    "build_providers",
    "configure",
    "continue_trace",
    "current_traceparent",
    "enabled",
    "exporter",
    "flush",
    "install_json_logs",
    "installed",
    "log_fields",
    "record_expectations",
    "record_result",
    "register_backlog",
    "run_span",
    "stage_span",
]
