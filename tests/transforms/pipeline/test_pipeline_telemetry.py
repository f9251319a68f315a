"""A pipeline run's telemetry: its spans, their parents and attributes, and the metrics of the run,
checked against what the lake holds after it.

A traceparent handed to the entry point (as a submitter passes it) parents ``headwater.pipeline``,
whose children are the stages' spans; the row counters equal the rows in bronze, silver and
quarantine; each expectation's failed count equals the quarantined rows that failed it.
"""

from __future__ import annotations

import json
import sys

import pyspark.sql.functions as F
import pytest

from ingestion.core import telemetry
from ingestion.core.config import get_settings
from ingestion.core.lake import bronze_table, quarantine_rows_table, silver_table
from ingestion.core.runs import RunLedger

pytestmark = pytest.mark.spark

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ORDERS = (
    HEADER + b"O-0001,C-001,paid,10.50,1,2026-11-01,,2026-11-01T10:00:00\n"
    b"O-0002,C-002,new,7.25,3,2026-11-02,,2026-11-02T09:30:00\n"
    b"O-0003,C-001,weird,1.00,1,2026-11-03,,2026-11-03T10:00:00\n"  # status.isin
    b"O-0004,C-002,paid,-5.00,1,2026-11-03,,2026-11-03T11:00:00\n"  # amount >= 0
    b"O-0005,C-003,bogus,-1.00,1,2026-11-04,,2026-11-04T10:00:00\n"  # both
)
FAILING = {"status.isin", "amount.greater_than_or_equal_to"}


@pytest.fixture
def env_lake(lake, lake_settings, monkeypatch):
    """The entry point reads its settings from the environment: point them at the test lake."""
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    get_settings.cache_clear()
    yield lake
    get_settings.cache_clear()


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _ours(sink, trace_id: str) -> dict:  # noqa: ANN001
    spans = [s for s in sink.spans.get_finished_spans() if _hex(s.context.trace_id, 32) == trace_id]
    by_name = {}
    for span in spans:
        assert span.name not in by_name, f"two {span.name} spans in one run"
        by_name[span.name] = span
    return by_name


def _delta(before: dict, after: dict, name: str, **attrs: str):  # noqa: ANN202
    key = (name, frozenset(attrs.items()))
    now, then = after.get(key), before.get(key)
    if isinstance(now, tuple):
        then = then or (0, 0.0)
        return now[0] - then[0], now[1] - then[1]
    return (now or 0) - (then or 0)


def _quarantined_by_expectation(spark, lake) -> dict[str, int]:  # noqa: ANN001
    rows = spark.read.format("delta").load(lake.uri(quarantine_rows_table("orders")))
    errors = rows.select("_quarantine_id", F.explode("_errors").alias("e"))
    key = F.when(F.col("e.column").isNull(), F.col("e.check")).otherwise(
        F.concat_ws(".", F.col("e.column"), F.col("e.check"))
    )
    counted = errors.groupBy(key.alias("key")).agg(F.countDistinct("_quarantine_id").alias("n")).collect()
    return {r["key"]: r["n"] for r in counted}


def test_a_pipeline_run_continues_the_submitters_trace_and_counts_what_the_lake_holds(
    spark, env_lake, catalog, land, telemetry_sink, capsys
):
    from jobs import pipeline

    lake = env_lake
    landed = land("orders/a.csv", ORDERS)
    assert landed.outcome == "queued"
    lake.write_bytes("system/changes/club/state.json", b"{}")  # the SQL source's last pull: now
    telemetry.register_backlog(lake, catalog)
    before = telemetry_sink.points()
    assert before[(telemetry.PENDING_FILES, frozenset({("dataset", "orders")}))] == 1
    assert before[(telemetry.PENDING_BYTES, frozenset({("dataset", "orders")}))] == len(ORDERS)
    assert before[(telemetry.PENDING_FILES, frozenset({("dataset", "customers")}))] == 0
    lag = before[(telemetry.CHANGES_LAG, frozenset({("source", "club"), ("dataset", "members")}))]
    assert 0 <= lag < 60
    telemetry_sink.spans.clear()

    assert pipeline.main(["--dataset", "orders", "--traceparent", TRACEPARENT]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["outcomes"] == {
        "ingest": "succeeded",
        "curate": "succeeded",
        "publish:customer_features": "waiting",
    }
    after = telemetry_sink.points()

    # --- spans: the submitter's trace, the pipeline as the stages' parent --------------------------
    spans = _ours(telemetry_sink, TRACE_ID)
    assert sorted(spans) == ["headwater.curate", "headwater.ingest", "headwater.pipeline"]
    root, ingest, curate = spans["headwater.pipeline"], spans["headwater.ingest"], spans["headwater.curate"]
    assert root.parent is not None and root.parent.is_remote
    assert _hex(root.parent.span_id, 16) == PARENT_ID
    for stage in (ingest, curate):
        assert stage.parent is not None and stage.parent.span_id == root.context.span_id
    assert all(s.status.status_code.name == "UNSET" for s in spans.values())

    # --- attributes: the ledger's runs, the lake's rows ---------------------------------------------
    ledger = {r["job"]: r for r in RunLedger(spark, lake).latest(dataset="orders")}
    bronze = spark.read.format("delta").load(lake.uri(bronze_table("orders"))).count()
    silver = spark.read.format("delta").load(lake.uri(silver_table("orders"))).count()
    quarantined = spark.read.format("delta").load(lake.uri(quarantine_rows_table("orders"))).count()
    assert (bronze, silver, quarantined) == (5, 2, 3)
    bronze_version = ledger["ingest"]["output_version"]
    assert dict(ingest.attributes) == {
        "headwater.dataset": "orders",
        "headwater.run_id": ledger["ingest"]["run_id"],
        "headwater.batch": 1,
        "headwater.status": "succeeded",
        "headwater.output_version": bronze_version,
        "headwater.bronze.version_from": bronze_version,
        "headwater.bronze.version_to": bronze_version,
        "headwater.rows_in": bronze,
        "num_output_rows": bronze,
        "dropped_records": 0,
        "headwater.rows_quarantined": 0,
    }
    assert dict(curate.attributes) == {
        "headwater.dataset": "orders",
        "headwater.run_id": ledger["curate"]["run_id"],
        "headwater.batch": 1,
        "headwater.batches": (1,),
        "headwater.status": "succeeded",
        "headwater.output_version": ledger["curate"]["output_version"],
        "headwater.bronze.version_from": ledger["curate"]["input_from"],
        "headwater.bronze.version_to": ledger["curate"]["input_to"],
        "headwater.rows_in": bronze,
        "num_output_rows": silver,
        "dropped_records": 0,
        "headwater.rows_quarantined": quarantined,
    }
    assert ledger["curate"]["input_to"] == bronze_version
    assert dict(root.attributes) == {
        "headwater.dataset": "orders",
        "headwater.run_id": ledger["pipeline"]["run_id"],
        "headwater.batch": 1,
        "headwater.status": "succeeded",
        "headwater.bronze.version_from": ledger["curate"]["input_from"],
        "headwater.bronze.version_to": ledger["curate"]["input_to"],
    }

    # --- metrics: counters equal the lake's rows; durations one per run ---------------------------
    assert _delta(before, after, telemetry.OUTPUT_ROWS_METRIC, dataset="orders", stage="ingest") == bronze
    assert _delta(before, after, telemetry.OUTPUT_ROWS_METRIC, dataset="orders", stage="curate") == silver
    assert (
        _delta(before, after, telemetry.QUARANTINED_METRIC, dataset="orders", stage="curate") == quarantined
    )
    assert _delta(before, after, telemetry.DROPPED_METRIC, dataset="orders", stage="curate") == 0
    by_expectation = _quarantined_by_expectation(spark, lake)
    assert by_expectation == {"status.isin": 2, "amount.greater_than_or_equal_to": 2}
    evaluated = {
        dict(attrs)["expectation"]
        for name, attrs in after
        if name == telemetry.FAILED_METRIC and dict(attrs)["dataset"] == "orders"
    }
    assert (
        FAILING | {"order_id.str_matches", "customer_id.not_nullable", "shipped_after_ordered"} <= evaluated
    )
    for key in evaluated:
        failed = _delta(before, after, telemetry.FAILED_METRIC, dataset="orders", expectation=key)
        passed = _delta(before, after, telemetry.PASSED_METRIC, dataset="orders", expectation=key)
        assert (key, failed, passed) == (key, by_expectation.get(key, 0), bronze - by_expectation.get(key, 0))
    for stage in ("pipeline", "ingest", "curate"):
        count, seconds = _delta(
            before, after, telemetry.STAGE_DURATION, dataset="orders", stage=stage, status="succeeded"
        )
        assert count == 1 and seconds > 0, stage
    assert after[(telemetry.PENDING_FILES, frozenset({("dataset", "orders")}))] == 0
    assert after[(telemetry.PENDING_BYTES, frozenset({("dataset", "orders")}))] == 0


def test_a_failed_stage_ends_its_span_and_the_pipelines_as_errors_with_its_code(
    spark, lake, catalog, lake_settings, land, telemetry_sink, monkeypatch
):
    from transforms.pipeline import run_pipeline

    def drops_a_column(df):  # noqa: ANN001, ANN202
        return df.drop("status")

    # The dataset's silver transform breaks its contract: curate fails with bad_transform.
    monkeypatch.setattr(
        sys.modules["transforms.silver.curate"], "find_transform", lambda *a, **k: drops_a_column
    )
    land("orders/a.csv", ORDERS)
    telemetry_sink.spans.clear()
    before = telemetry_sink.points()

    with telemetry.continue_trace(TRACEPARENT.replace(TRACE_ID, "1" * 32)):
        result = run_pipeline(spark, lake, catalog, "orders", settings=lake_settings)
    after = telemetry_sink.points()

    assert result.outcomes["curate"] == "failed" and result.code == "bad_transform"
    spans = _ours(telemetry_sink, "1" * 32)
    assert sorted(spans) == ["headwater.curate", "headwater.ingest", "headwater.pipeline"]
    curate, root = spans["headwater.curate"], spans["headwater.pipeline"]
    for span in (curate, root):
        assert (span.status.status_code.name, span.status.description) == ("ERROR", "bad_transform")
        assert span.attributes["error.type"] == "bad_transform"
        assert span.attributes["headwater.status"] == "failed"
    assert curate.attributes["headwater.error"] == result.errors["curate"]
    assert spans["headwater.ingest"].status.status_code.name == "UNSET"
    count, _ = _delta(
        before, after, telemetry.STAGE_DURATION, dataset="orders", stage="curate", status="failed"
    )
    assert count == 1
    assert _delta(before, after, telemetry.OUTPUT_ROWS_METRIC, dataset="orders", stage="curate") == 0
