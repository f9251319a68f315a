"""OpenTelemetry (``ingestion.core.telemetry``): providers once, the exporter the settings choose,
W3C trace propagation into submitted runs, JSON log lines without row contents, and a no-op
without OpenTelemetry.

Providers are process-wide: a test that installs them runs in a subprocess (the Spark pipeline
tests install the in-memory ones for this process, once).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from ingestion.core import telemetry
from ingestion.core.config import BatchingSettings, LakeSettings, Settings, SubmitSettings, TelemetrySettings

ROOT = Path(__file__).resolve().parents[3]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
ROW_VALUE = "Ada Lovelace"  # a value of a row: never in a log line

otel = pytest.importorskip("opentelemetry.sdk.trace", reason="the telemetry extra is not installed")


def _child_env() -> dict[str, str]:
    """This process's environment without any exporter setting (and no proxy for loopback)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "HEADWATER_TELEMETRY__", "APPLICATIONINSIGHTS_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _python(script: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def no_exporter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (telemetry.CONNECTION_STRING_ENV, telemetry.OTLP_ENDPOINT_ENV):
        monkeypatch.delenv(name, raising=False)


# --- providers and exporters ---------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector on loopback: records each POST, answers 200 with an empty message."""

    posts: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.posts.append((self.path, self.headers.get("Content-Type", ""), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def collector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


OTLP_SCRIPT = r"""
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ingestion.core import telemetry
from ingestion.core.config import Environment, Settings, TelemetrySettings

settings = Settings(env=Environment.qa, telemetry=TelemetrySettings(otlp_endpoint=sys.argv[1] + "/", service_name="hw-test"))
assert telemetry.exporter(settings) == "otlp"
telemetry.configure(settings, component="job")
provider = trace.get_tracer_provider()
late = InMemorySpanExporter()
telemetry.configure(Settings(), component="cli", span_processors=[SimpleSpanProcessor(late)])  # a no-op
with telemetry.stage_span("ingest", dataset="orders", run_id="ingest-1", batch=3):
    pass
telemetry.record_expectations("orders", rows=5, failed={"status.isin": 2})
telemetry.flush()
installed = telemetry.installed()
print(json.dumps({
    "installed": [installed.component, installed.exporter],
    "same_provider": trace.get_tracer_provider() is provider,
    "late_spans": len(late.get_finished_spans()),
}))
"""


def _attrs(kvs) -> dict:  # noqa: ANN001 - protobuf KeyValue list
    out = {}
    for kv in kvs:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_configure_installs_once_and_exports_otlp_http_protobuf(collector):
    base = f"http://127.0.0.1:{collector.server_address[1]}"
    out = _python(OTLP_SCRIPT, base)
    # Installed once: the second call (another component, another processor) changed nothing.
    assert out == {"installed": ["job", "otlp"], "same_provider": True, "late_spans": 0}

    posts = collector.posts
    traces = [(ctype, body) for path, ctype, body in posts if path == "/v1/traces"]
    metrics = [(ctype, body) for path, ctype, body in posts if path == "/v1/metrics"]
    assert traces and metrics, [p[0] for p in posts]
    assert {ctype for ctype, _ in traces + metrics} == {"application/x-protobuf"}
    try:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:  # no opentelemetry-proto: the bytes still name the span
        assert any(b"headwater.ingest" in body for _, body in traces)
        return
    spans, resources = [], []
    for _, body in traces:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            resources.append(_attrs(rs.resource.attributes))
            spans += [s for ss in rs.scope_spans for s in ss.spans]
    (span,) = spans
    assert span.name == "headwater.ingest"
    assert _attrs(span.attributes) == {
        "headwater.dataset": "orders",
        "headwater.run_id": "ingest-1",
        "headwater.batch": 3,
    }
    resource = resources[0]
    assert {k: resource[k] for k in telemetry.resource_attributes(Settings(), "job")} == {
        "service.name": "hw-test",
        "service.namespace": "headwater",
        "deployment.environment": "qa",
        "headwater.component": "job",
    }
    points = {}
    for _, body in metrics:
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.sum.data_points:
                        points[(m.name, _attrs(p.attributes)["expectation"])] = p.as_int
    assert points[(telemetry.FAILED_METRIC, "status.isin")] == 2
    assert points[(telemetry.PASSED_METRIC, "status.isin")] == 3


def test_without_an_exporter_nothing_is_installed(monkeypatch, no_exporter_env):
    from opentelemetry import trace

    monkeypatch.setattr(telemetry, "_installed", None)
    before = trace.get_tracer_provider()
    settings = Settings()
    assert telemetry.exporter(settings) == "none"
    telemetry.configure(settings, component="cli")
    assert telemetry.installed() is None and not telemetry.enabled()
    assert trace.get_tracer_provider() is before


def test_the_otlp_variable_counts_as_an_endpoint(monkeypatch, no_exporter_env):
    monkeypatch.setenv(telemetry.OTLP_ENDPOINT_ENV, "http://collector:4318/")
    assert telemetry.otlp_endpoint(Settings()) == "http://collector:4318"
    assert telemetry.exporter(Settings()) == "otlp"
    explicit = Settings(telemetry=TelemetrySettings(otlp_endpoint="http://other:4318"))
    assert telemetry.otlp_endpoint(explicit) == "http://other:4318"


@pytest.mark.parametrize(("component", "propagates"), [("function-app", False), ("job", True)])
def test_application_insights_gets_the_extra_processors_and_readers(
    monkeypatch, no_exporter_env, component, propagates
):
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    pytest.importorskip("azure.monitor.opentelemetry")
    calls: list[dict] = []
    # The SDK boundary: what headwater hands configure_azure_monitor.
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry, "_installed", None)
    monkeypatch.setattr(logging.getLogger(telemetry.LOGGER_NAME), "propagate", True)
    connection = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
    )
    monkeypatch.setenv(telemetry.CONNECTION_STRING_ENV, connection)
    # Application Insights wins over an OTLP endpoint.
    settings = Settings(telemetry=TelemetrySettings(otlp_endpoint="http://127.0.0.1:9"))
    assert telemetry.exporter(settings) == "azure-monitor"
    processor, reader = SimpleSpanProcessor(InMemorySpanExporter()), InMemoryMetricReader()

    telemetry.configure(settings, component=component, span_processors=[processor], metric_readers=[reader])
    telemetry.configure(settings, component=component)  # once per process

    (kwargs,) = calls
    assert kwargs.pop("connection_string") == connection
    assert kwargs.pop("span_processors") == [processor]
    assert kwargs.pop("metric_readers") == [reader]
    assert kwargs.pop("logger_name") == "headwater"
    resource = kwargs.pop("resource")
    assert {
        k: resource.attributes[k] for k in ("service.name", "service.namespace", "headwater.component")
    } == {
        "service.name": "headwater",
        "service.namespace": "headwater",
        "headwater.component": component,
    }
    assert resource.attributes["deployment.environment"] == settings.env.value
    assert kwargs == {}
    assert telemetry.installed() == telemetry.Installed(component, "azure-monitor")
    # In the Function App the host already sends the worker's logs: the SDK's are not sent twice.
    assert logging.getLogger(telemetry.LOGGER_NAME).propagate is propagates


# --- trace propagation ---------------------------------------------------------------------------
def test_a_traceparent_round_trips_and_parents_the_spans_inside():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    assert telemetry.current_traceparent() is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # this test's own: not the process's
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.continue_trace(TRACEPARENT):
        assert telemetry.current_traceparent() == TRACEPARENT
        with provider.get_tracer("t").start_as_current_span("child") as span:
            child_id = format(span.get_span_context().span_id, "016x")
            assert telemetry.current_traceparent() == f"00-{TRACE_ID}-{child_id}-01"
    assert telemetry.current_traceparent() is None
    (child,) = exporter.get_finished_spans()
    assert format(child.context.trace_id, "032x") == TRACE_ID
    assert child.parent is not None and child.parent.is_remote
    assert format(child.parent.span_id, "016x") == PARENT_ID

    for bad in (None, "", "not-a-traceparent", f"00-{'0' * 32}-{PARENT_ID}-01"):
        with telemetry.continue_trace(bad):
            assert telemetry.current_traceparent() is None


def test_a_submitted_run_gets_the_traceparent_only_inside_a_trace():
    from ingestion.remote.libraries import job_args
    from ingestion.submit import JobVenv, SparkSubmitSubmitter

    assert job_args("pipeline", "orders") == ["pipeline", "--dataset", "orders"]
    venv = JobVenv(Path("/v/bin/python"), Path("/v/site/jobs/launch.py"), Path("/v/site/pyspark"), ())
    sub = SparkSubmitSubmitter(
        Settings(submit=SubmitSettings(kind="spark-submit", master="local[1]")), job="pipeline", venv=venv
    )
    assert sub.argv("orders")[-4:] == ["/v/site/jobs/launch.py", "pipeline", "--dataset", "orders"]
    with telemetry.continue_trace(TRACEPARENT):
        assert job_args("pipeline", "orders") == [
            "pipeline",
            "--dataset",
            "orders",
            "--traceparent",
            TRACEPARENT,
        ]
        assert sub.argv("orders")[-5:] == ["pipeline", "--dataset", "orders", "--traceparent", TRACEPARENT]


def test_an_entry_point_continues_the_trace_it_is_given(monkeypatch, capsys, no_exporter_env):
    from ingestion.core.runs import RunRecord
    from jobs import entry

    seen: list[str | None] = []

    def start(args):  # noqa: ANN001, ANN202
        seen.append(telemetry.current_traceparent())
        return RunRecord(job="demo", dataset=args.dataset).finish("succeeded")

    args = entry.parser("jobs.demo", None).parse_args(["--dataset", "orders", "--traceparent", TRACEPARENT])
    assert args.traceparent == TRACEPARENT
    assert entry.main("jobs.demo", args, start) == 0
    assert (
        entry.main("jobs.demo", entry.parser("jobs.demo", None).parse_args(["--dataset", "orders"]), start)
        == 0
    )
    assert seen == [TRACEPARENT, None]
    assert [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()] == ["succeeded"] * 2


def test_a_function_invocation_passes_the_hosts_trace_to_the_run_it_submits(tmp_path):
    pytest.importorskip("azure.functions")
    from functions.runtime import LandingRuntime, invocation_trace
    from ingestion.core.storage import LocalStorage
    from ingestion.remote.libraries import job_args

    submitted: list[list[str]] = []

    class Submitter:
        def submit(self, dataset: str) -> dict:
            submitted.append(job_args("pipeline", dataset))
            return {"dataset": dataset, "status": "succeeded"}

    lake = LocalStorage(tmp_path / "lake")
    settings = Settings(lake=LakeSettings(root=tmp_path / "lake"), batching=BatchingSettings(max_files=1))
    runtime = LandingRuntime(settings, lake, submitter=Submitter())
    # The Python worker's trace context spells it Traceparent; azure-functions' abc trace_parent.
    worker = SimpleNamespace(trace_context=SimpleNamespace(Traceparent=TRACEPARENT, Tracestate=""))
    abc = SimpleNamespace(trace_context=SimpleNamespace(trace_parent=TRACEPARENT.replace("-01", "-00")))
    for i, context in enumerate((worker, abc, SimpleNamespace())):
        info = lake.write_bytes(f"landing/orders/{i}.csv", b"order_id\nO-0001\n")
        with invocation_trace(context):
            handled = runtime.handle_file(f"orders/{i}.csv", etag=info.etag, size=info.size)
        assert handled.outcome == "queued" and handled.batch is not None
    assert submitted == [
        ["pipeline", "--dataset", "orders", "--traceparent", TRACEPARENT],
        ["pipeline", "--dataset", "orders", "--traceparent", TRACEPARENT.replace("-01", "-00")],
        ["pipeline", "--dataset", "orders"],
    ]


def test_the_triggers_take_the_invocation_context():
    func = pytest.importorskip("azure.functions")
    import inspect

    from functions.blob_trigger import landing_blob
    from functions.event_grid import landing_events

    for builder in (landing_blob, landing_events):
        user = builder._function.get_user_function()  # not app.get_functions(): it indexes once
        assert inspect.signature(user).parameters["context"].annotation is func.Context


# --- JSON logs -----------------------------------------------------------------------------------
class _Kept(logging.Handler):
    """Keeps records to format later, as a handler that sends them from another thread does."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_json_log_lines_carry_the_run_and_never_row_contents():
    logger = logging.getLogger("tests.telemetry.json")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream, kept = io.StringIO(), _Kept()
    logger.handlers[:] = [logging.StreamHandler(stream), kept]
    telemetry.install_json_logs(logger)
    telemetry.install_json_logs(logger)  # idempotent: one filter per handler
    assert [len(h.filters) for h in logger.handlers] == [1, 1]
    try:
        with telemetry.continue_trace(TRACEPARENT):
            with telemetry.stage_span("ingest", dataset="orders", run_id="ingest-7", batch=4):
                logger.info("ingested %d rows", 2, extra={"row": {"name": ROW_VALUE}})
                try:
                    raise ValueError(f"cannot cast {ROW_VALUE!r} to int")
                except ValueError:
                    logger.exception("batch failed")
            with telemetry.stage_span("publish", dataset="customer_features", run_id="publish-1"):
                logger.warning("published")
        logger.info("outside")
    finally:
        logger.handlers[:] = []
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    assert ROW_VALUE not in stream.getvalue()
    first, failure, published, outside = lines
    assert set(first) == {
        "time",
        "level",
        "logger",
        "message",
        "run_id",
        "dataset",
        "zone",
        "batch",
        "trace_id",
        "span_id",
    }
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "tests.telemetry.json",
        "ingested 2 rows",
    )
    assert (first["run_id"], first["dataset"], first["zone"], first["batch"]) == (
        "ingest-7",
        "orders",
        "bronze",
        4,
    )
    assert first["trace_id"] == TRACE_ID and len(first["span_id"]) == 16
    assert first["time"].startswith("20") and first["time"].endswith("+00:00")
    assert (failure["message"], failure["exc_type"]) == ("batch failed", "ValueError")
    assert "raise ValueError" in failure["stack"]  # the frames, not the message
    assert (published["run_id"], published["dataset"], published["zone"]) == (
        "publish-1",
        "customer_features",
        "gold",
    )
    assert "batch" not in published
    assert set(outside) == {"time", "level", "logger", "message"}
    # Formatted later (another thread, no stage open): the fields are the ones logged with.
    later = [json.loads(telemetry.JsonFormatter().format(r)) for r in kept.records]
    assert [(x.get("run_id"), x.get("batch")) for x in later] == [
        ("ingest-7", 4),
        ("ingest-7", 4),
        ("publish-1", None),
        (None, None),
    ]


def test_the_cli_logs_json_lines_with_log_json():
    from typer.testing import CliRunner

    from jobs.cli import app

    result = CliRunner().invoke(app, ["--log-json", "settings", "show"])
    assert result.exit_code == 0, result.output
    assert any(isinstance(h.formatter, telemetry.JsonFormatter) for h in logging.getLogger().handlers)


# --- without OpenTelemetry -----------------------------------------------------------------------
NO_OTEL = r"""
import importlib.abc, io, json, logging, sys

class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoOtel())
from ingestion.core import telemetry
from ingestion.core.config import Settings, TelemetrySettings
from ingestion.core.runs import RunRecord
from ingestion.remote.libraries import job_args

telemetry.configure(Settings(telemetry=TelemetrySettings(otlp_endpoint="http://127.0.0.1:9")), component="job")
stream = io.StringIO()
logger = logging.getLogger("x")
logger.handlers[:] = [logging.StreamHandler(stream)]
logger.propagate = False
telemetry.install_json_logs(logger)
record = RunRecord(job="curate", dataset="orders")
with telemetry.continue_trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
    with telemetry.run_span(record) as stage:
        logger.warning("validated")
        record.finish("failed", "curate: 1 rows failed")
        tp = telemetry.current_traceparent()
        args = job_args("pipeline", "orders")
telemetry.record_expectations("orders", rows=1, failed={"a.b": 1})
telemetry.register_backlog(None, None)
telemetry.flush()
print(json.dumps({
    "available": telemetry.available(), "enabled": telemetry.enabled(), "traceparent": tp, "args": args,
    "log": json.loads(stream.getvalue()), "span": stage.span,
    "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
}))
"""


def test_without_opentelemetry_everything_is_a_noop_but_the_log_lines():
    out = _python(NO_OTEL)
    line = out.pop("log")
    assert out == {
        "available": False,
        "enabled": False,
        "traceparent": None,
        "args": ["pipeline", "--dataset", "orders"],
        "span": None,
        "otel": [],
    }
    assert (line["message"], line["dataset"], line["zone"]) == ("validated", "orders", "silver")
    assert line["run_id"].startswith("curate-")
    assert "trace_id" not in line
