"""The pipeline tests' telemetry sink: in-memory span exporter and metric reader, installed once.

Providers are process-wide and installed once (``ingestion.core.telemetry.configure``), so the
sink is session-scoped: a test clears the spans it reads and compares metric values before and
after its run (they are cumulative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class TelemetrySink:
    spans: Any  # InMemorySpanExporter
    metrics: Any  # InMemoryMetricReader

    def points(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
        """Every data point now: (metric, attributes) -> value (a histogram's: (count, sum))."""
        out: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
        data = self.metrics.get_metrics_data()
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        key = (metric.name, frozenset(dict(p.attributes).items()))
                        out[key] = (p.count, p.sum) if hasattr(p, "count") else p.value
        return out


@pytest.fixture(scope="session")
def telemetry_sink() -> TelemetrySink:
    pytest.importorskip("opentelemetry.sdk.trace", reason="the telemetry extra is not installed")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ingestion.core import telemetry
    from ingestion.core.config import Settings

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    with pytest.MonkeyPatch.context() as mp:
        for name in (telemetry.CONNECTION_STRING_ENV, telemetry.OTLP_ENDPOINT_ENV):
            mp.delenv(name, raising=False)
        telemetry.configure(
            Settings(),
            component="job",
            span_processors=[SimpleSpanProcessor(exporter)],
            metric_readers=[reader],
        )
    installed = telemetry.installed()
    if installed is None or installed.exporter != "sdk":
        pytest.fail(f"telemetry providers were installed before the sink: {installed}")
    return TelemetrySink(exporter, reader)
