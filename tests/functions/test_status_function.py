"""The ``status`` HTTP function and its reader (``ingestion.lakeview``), checked against the lake.

A real lake (land -> ingest -> curate -> publish -> register on the Spark fixture) read through
the registered function; every number is compared with what Spark, the Ledger API, the run
ledger, the registry and ``headwater status --json`` say. Without Spark: the modules load with
pyspark blocked, an unknown dataset is a 400, deletion vectors are honoured, and a lake on the
Blob API (Azurite, shared key) is read through the same ``abfss://`` URIs as the jobs use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions.runtime import LandingRuntime, set_runtime
from ingestion.core.lake import bronze_table, gold_table, quarantine_rows_table, silver_table
from ingestion.events import Ledger
from ingestion.events.ledger import UNROUTED
from tests.functions.conftest import RecordingSubmitter

ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("pending", "batched", "ingested", "unchanged", "rejected")

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ORDERS = (
    HEADER + b"O-0001,C-001,paid,10.50,1,2026-11-01,,2026-11-01T10:00:00\n"
    b"O-0002,C-002,new,7.25,3,2026-11-02,,2026-11-02T09:30:00\n"
    # Three errors in one row: status isin, amount >= 0, quantity >= 1 (two of one check).
    b"O-0003,C-001,bogus,-1.00,0,2026-11-02,,2026-11-02T09:30:00\n"
    b"O-0004,C-002,paid,abc,1,2026-11-03,,2026-11-03T09:30:00\n"  # amount does not cast
    b"O-0005,C-002,shipped,3.00,1,2026-11-04,2026-11-01,2026-11-04T09:30:00\n"  # a row rule
)
CUSTOMERS = (
    b'{"customer_id": "C-001", "name": "Ada", "country": "DE", "signup_date": "2024-01-01"}\n'
    b'{"customer_id": "C-002", "name": "Bo", "country": "FR", "signup_date": "2024-02-01"}\n'
)
LATE = HEADER + b"O-0009,C-001,new,1.00,1,2026-11-05,,2026-11-05T10:00:00\n"
GOLD = "customer_features"


def _call(function: Callable[[str], Callable[..., Any]], **params: str) -> tuple[int, str, Any]:
    """Invoke the registered ``status`` function as the host would; (status, mimetype, JSON)."""
    req = func.HttpRequest("GET", "/api/status", params=params, body=b"")
    resp = function("status")(req)
    return resp.status_code, resp.mimetype, json.loads(resp.get_body())


@pytest.fixture
def status_runtime(lake_settings, lake, catalog) -> Iterator[LandingRuntime]:  # noqa: ANN001
    """The worker's runtime over the test's local lake (the function reads it via get_runtime)."""
    rt = LandingRuntime(lake_settings, lake, catalog=catalog, submitter=RecordingSubmitter())
    set_runtime(rt)
    yield rt
    set_runtime(None)


# --- without Spark -------------------------------------------------------------------------------
# A fresh interpreter where pyspark (and delta-spark, pandera's Spark backend) cannot be imported:
# loads the reader, the function and the app, prints the function's bindings as the host gets
# them, then answers one request over a lake written by delta-rs alone.
PROBE = r"""
import importlib.abc, json, sys, tempfile

class NoSpark(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark.") or name in ("delta", "pandera.pyspark"):
            raise ImportError(f"{name} is blocked in this test (the Function App must not need it)")
        return None

sys.meta_path.insert(0, NoSpark())
import ingestion.lakeview, functions.status
import function_app
import azure.functions as func
import pyarrow as pa
from deltalake import write_deltalake
from functions.runtime import LandingRuntime, set_runtime
from ingestion.core.config import LakeSettings, Settings
from ingestion.core.storage import LocalStorage

fn = {f.get_function_name(): f for f in function_app.app.get_functions()}["status"]
root = tempfile.mkdtemp()
lake = LocalStorage(root)
lake.write_bytes("system/FORMAT.json", b"{}")
local = lambda path: lake.uri(path)[len("file://"):]
write_deltalake(local("bronze/orders"), pa.table({"order_id": ["O-1", "O-2", "O-3"]}))
write_deltalake(local("bronze/orders"), pa.table({"order_id": ["O-4"]}), mode="append")
errors = pa.array(
    [[{"column": "amount", "check": "cast", "value": "x"}, {"column": "amount", "check": "cast", "value": "y"}],
     [{"column": None, "check": "shipped_after_ordered", "value": None}]],
    type=pa.list_(pa.struct([("column", pa.string()), ("check", pa.string()), ("value", pa.string())])),
)
write_deltalake(local("quarantine/orders/rows"), pa.table({"order_id": ["O-5", "O-6"], "_errors": errors}))
settings = Settings(lake=LakeSettings(root=root))
set_runtime(LandingRuntime(settings, lake))
resp = fn.get_user_function()(func.HttpRequest("GET", "/api/status", params={"dataset": "orders"}, body=b""))
print(json.dumps({
    "raw": [json.loads(r) for r in fn.get_raw_bindings()],
    "script": fn.function_script_file,
    "status_code": resp.status_code,
    "mimetype": resp.mimetype,
    "body": json.loads(resp.get_body()),
    "spark": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "delta")),
}))
"""


def test_status_loads_and_answers_without_pyspark_with_a_function_key_get_binding():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spark"] == []
    assert out["raw"] == [
        {
            "direction": "IN",
            "type": "httpTrigger",
            "name": "req",
            "methods": ["GET"],
            "authLevel": "FUNCTION",
            "route": "status",
        },
        {"direction": "OUT", "type": "http", "name": "$return"},
    ]
    assert out["script"] == "function_app.py"
    assert (out["status_code"], out["mimetype"]) == (200, "application/json")
    body = out["body"]
    assert body["errors"] == []
    assert list(body["datasets"]) == ["orders"]
    orders = body["datasets"]["orders"]
    bronze = orders["tables"]["bronze"]
    assert (bronze["version"], bronze["rows"], bronze["files"], bronze["rows_from"]) == (1, 4, 2, "stats")
    assert bronze["operation"] == "WRITE" and bronze["updated_at"].endswith("+00:00")
    assert orders["tables"]["silver"] is None and orders["golds"] == {GOLD: None}
    q = orders["quarantine"]
    # by_reason counts rows (the row with two cast errors once); by_column counts errors.
    assert q["rows"] == 2 and q["by_reason"] == {"cast": 1, "shipped_after_ordered": 1}
    assert q["by_column"] == [
        {"column": "amount", "check": "cast", "rows": 2},
        {"column": None, "check": "shipped_after_ordered", "rows": 1},
    ]
    assert orders["ledger"] == dict.fromkeys(STATUSES, 0)
    assert orders["runs"] == {} and orders["assets"] == [] and orders["latest_batch"] is None


def test_an_unknown_dataset_is_a_400_naming_the_known_ones(status_runtime, function, catalog):  # noqa: ANN001
    code, mimetype, body = _call(function, dataset="nope")
    assert (code, mimetype) == (400, "application/json")
    assert body["code"] == "unknown_dataset" and body["dataset"] == "nope"
    assert "no dataset named 'nope'" in body["error"]
    assert body["known"] == catalog.names()

    # An empty lake is no error: every dataset, nothing in it yet.
    code, _, body = _call(function)
    assert code == 200 and body["errors"] == [] and body["unrouted"] == {}
    assert sorted(body["datasets"]) == catalog.names()
    for ds in body["datasets"].values():
        assert ds["tables"] == {"bronze": None, "silver": None, "quarantine": None}
        assert ds["ledger"] == dict.fromkeys(STATUSES, 0) and ds["pending"]["files"] == 0


def test_an_unreadable_table_is_reported_and_the_rest_still_shown(status_runtime, function, lake):  # noqa: ANN001
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(lake.uri(bronze_table("orders"))[len("file://") :], pa.table({"a": ["1"]}))
    # A log entry that is not JSON: delta-rs cannot read the silver table.
    lake.write_bytes(f"{silver_table('orders')}/_delta_log/00000000000000000000.json", b"{not json")
    code, _, body = _call(function, dataset="orders")
    assert code == 200
    assert [e["section"] for e in body["errors"]] == ["orders.tables.silver"]
    assert body["datasets"]["orders"]["tables"]["bronze"]["rows"] == 1
    assert body["datasets"]["orders"]["tables"]["silver"] is None


def test_a_lake_on_the_blob_api_is_read_through_its_abfss_uris(runtime, function, tmp_path):  # noqa: ANN001
    """Azurite: a shared-key account, so delta-rs gets the account key and the blob endpoint."""
    import pyarrow as pa
    from deltalake import write_deltalake

    local = tmp_path / "quarantine"
    errors = pa.array(
        [[{"column": "status", "check": "isin", "value": "x"}]] * 3,
        type=pa.list_(pa.struct([("column", pa.string()), ("check", pa.string()), ("value", pa.string())])),
    )
    write_deltalake(str(local), pa.table({"_errors": errors}))
    write_deltalake(str(local), pa.table({"_errors": errors.slice(0, 1)}), mode="append")
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        runtime.storage.write_bytes(
            f"{quarantine_rows_table('orders')}/{file.relative_to(local)}", file.read_bytes()
        )
    assert runtime.storage.uri(quarantine_rows_table("orders")).startswith("abfss://")

    code, _, body = _call(function, dataset="orders")
    assert code == 200 and body["errors"] == []
    orders = body["datasets"]["orders"]
    assert (orders["tables"]["quarantine"]["version"], orders["tables"]["quarantine"]["rows"]) == (1, 4)
    assert orders["quarantine"]["by_reason"] == {"isin": 4}
    assert orders["tables"]["bronze"] is None


# --- with Spark ----------------------------------------------------------------------------------
def _version(spark, lake, path: str) -> int:  # noqa: ANN001
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, lake.uri(path)).history(1).select("version").first()[0])


def _rows(spark, lake, path: str) -> int:  # noqa: ANN001
    return spark.read.format("delta").load(lake.uri(path)).count()


def _reasons(spark, lake, dataset: str) -> tuple[dict[str, int], list[dict[str, Any]]]:  # noqa: ANN001
    """Spark's own count: rows per check (distinct rows), and errors per (column, check)."""
    import pyspark.sql.functions as F

    df = spark.read.format("delta").load(lake.uri(quarantine_rows_table(dataset)))
    exploded = df.withColumn("_row", F.monotonically_increasing_id()).select(
        "_row", F.explode("_errors").alias("e")
    )
    by_reason = {
        r["check"]: r["rows"]
        for r in exploded.groupBy(F.col("e.check").alias("check"))
        .agg(F.countDistinct("_row").alias("rows"))
        .collect()
    }
    by_column = [
        {"column": r["column"], "check": r["check"], "rows": r["count"]}
        for r in exploded.groupBy(F.col("e.column").alias("column"), F.col("e.check").alias("check"))
        .count()
        .collect()
    ]
    return by_reason, by_column


def _key(d: dict[str, Any]) -> tuple[str, str]:
    return (d["column"] or "", d["check"])


@pytest.mark.spark
def test_status_agrees_with_spark_the_ledger_the_runs_the_registry_and_the_cli(
    spark, lake, lake_settings, catalog, land, status_runtime, function, monkeypatch
):  # noqa: ANN001
    from ingestion.core.config import get_settings
    from ingestion.core.runs import RunLedger
    from transforms.assets import LocalRegistry
    from transforms.pipeline import run_pipeline

    land("orders/2026/11/a.csv", ORDERS)
    land("customers/a.jsonl", CUSTOMERS)
    run_pipeline(spark, lake, catalog, "orders", settings=lake_settings)
    customers_run = run_pipeline(spark, lake, catalog, "customers", settings=lake_settings)
    assert customers_run.status == "succeeded", customers_run
    land("orders/2026/11/late.csv", LATE)  # queued, not run: pending
    land("nowhere/x.csv", b"a\n1\n")  # routed to no dataset
    ledger = Ledger(lake)

    code, mimetype, body = _call(function)
    assert (code, mimetype) == (200, "application/json")
    assert body["errors"] == []
    assert sorted(body["datasets"]) == catalog.names()
    # The ledger API's own counts, every status present.
    for name, ds in body["datasets"].items():
        assert ds["ledger"] == {
            **dict.fromkeys(STATUSES, 0),
            **Counter(e.status for e in ledger.entries(name)),
        }
    assert body["unrouted"] == {
        UNROUTED: {**dict.fromkeys(STATUSES, 0), **Counter(e.status for e in ledger.entries(UNROUTED))}
    }
    assert body["unrouted"][UNROUTED]["rejected"] == 1
    assert body["datasets"]["orders"]["ledger"]["ingested"] == 1
    assert body["datasets"]["orders"]["ledger"]["pending"] == 1

    code, _, one = _call(function, dataset="orders")
    assert code == 200 and one["errors"] == [] and list(one["datasets"]) == ["orders"]
    orders = one["datasets"]["orders"]
    assert orders == {**body["datasets"]["orders"], "pending": orders["pending"]}  # only age moved

    # Tables: Spark's count and the log's latest version.
    for zone, path in (
        ("bronze", bronze_table("orders")),
        ("silver", silver_table("orders")),
        ("quarantine", quarantine_rows_table("orders")),
    ):
        info = orders["tables"][zone]
        assert (info["path"], info["version"], info["rows"]) == (
            path,
            _version(spark, lake, path),
            _rows(spark, lake, path),
        ), zone
    assert orders["tables"]["bronze"]["rows"] == 5 and orders["tables"]["silver"]["rows"] == 2
    gold = orders["golds"][GOLD]
    assert (gold["version"], gold["rows"]) == (_version(spark, lake, gold_table(GOLD)), 2)
    assert body["datasets"]["customers"]["golds"] == {GOLD: gold}  # customers feed the same gold

    # Quarantine: rows per reason code and errors per (column, check), as Spark counts them.
    by_reason, by_column = _reasons(spark, lake, "orders")
    q = orders["quarantine"]
    assert q["rows"] == _rows(spark, lake, quarantine_rows_table("orders")) == 3
    assert q["by_reason"] == by_reason
    assert sorted(q["by_column"], key=_key) == sorted(by_column, key=_key)
    assert by_reason["greater_than_or_equal_to"] == 1  # one row, two columns: counted once
    assert sum(d["rows"] for d in by_column if d["check"] == "greater_than_or_equal_to") == 2

    # Pending: the queue, against the thresholds.
    queued = ledger.queued("orders")
    assert (orders["pending"]["files"], orders["pending"]["bytes"]) == (1, sum(f.size for f in queued))
    assert orders["pending"]["max_files"] == lake_settings.batching.max_files

    # Runs: the latest of each job, as the run ledger has it.
    runs = RunLedger(spark, lake)
    assert {"ingest", "curate", "pipeline", "publish"} <= set(orders["runs"])
    for job, run in orders["runs"].items():
        (latest,) = runs.latest(dataset="orders", job=job, limit=1)
        assert (run["run_id"], run["status"], run["dataset"]) == (
            latest["run_id"],
            latest["status"],
            "orders",
        )
        for count in (
            "rows_read",
            "rows_written",
            "rows_quarantined",
            "rows_dropped",
            "input_from",
            "input_to",
        ):
            assert run[count] == latest[count], (job, count)
    assert orders["runs"]["curate"]["rows_quarantined"] == 3

    # Assets: the registry's latest version.
    latest_asset = LocalRegistry(lake).latest(GOLD)
    assert latest_asset is not None
    assert [(a["asset"], a["delta_version"], a["dataset"]) for a in orders["assets"]] == [
        (latest_asset.label, latest_asset.delta_version, "orders")
    ]

    # And what `headwater status --json` shows for the same lake.
    from typer.testing import CliRunner

    from jobs.cli import app

    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["status", "--dataset", "orders", "--json"])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)
    assert cli["ledger"]["orders"] == {k: v for k, v in orders["ledger"].items() if v}
    decision = cli["batching"]["orders"]["decision"]
    assert (decision["files"], decision["bytes"]) == (orders["pending"]["files"], orders["pending"]["bytes"])
    assert {zone: v for zone, v in cli["tables"]["orders"].items() if zone != "gold"} == {
        zone: {"version": orders["tables"][zone]["version"], "rows": orders["tables"][zone]["rows"]}
        for zone in ("bronze", "silver", "quarantine")
    }
    cli_quarantine = [{k: d[k] for k in ("column", "check", "rows")} for d in cli["quarantine"]]
    assert sorted(cli_quarantine, key=_key) == sorted(q["by_column"], key=_key)
    last = cli["batches"]["orders"][-1]
    mine = orders["latest_batch"]
    assert {k: last[k] for k in ("batch", "status", "rows", "bronze_version", "files", "rejected")} == {
        k: mine[k] for k in ("batch", "status", "rows", "bronze_version", "files", "rejected")
    }
    newest = {}
    for r in cli["runs"]:  # newest first
        newest.setdefault(r["job"], r["run_id"])
    assert newest == {job: run["run_id"] for job, run in orders["runs"].items()}
    assert [(a["asset"], a["delta_version"]) for a in cli["assets"]] == [
        (a["asset"], a["delta_version"]) for a in orders["assets"]
    ]
    assert len(cli["parked"]) == orders["parked"] == 0


@pytest.mark.spark
def test_rows_deleted_by_deletion_vectors_are_not_counted(spark, lake, catalog, lake_settings):  # noqa: ANN001
    """Databricks turns deletion vectors on for new tables: stats less deleted rows, scans skip them."""
    from ingestion.lakeview import LakeView

    uri = lake.uri(quarantine_rows_table("orders"))
    df = spark.range(10).selectExpr(
        "id",
        "array(named_struct('column', 'amount', 'check', IF(id % 2 = 0, 'cast', 'isin'), 'value', 'v')) AS _errors",
    )
    df.write.format("delta").option("delta.enableDeletionVectors", "true").save(uri)
    spark.sql(f"DELETE FROM delta.`{uri}` WHERE id < 3")
    assert (
        spark.sql(f"DESCRIBE HISTORY delta.`{uri}`").first()["operationMetrics"]["numDeletionVectorsAdded"]
        != "0"
    )

    view = LakeView(lake, catalog, lake_settings)
    info = view.table(quarantine_rows_table("orders"))
    assert info is not None
    assert (info.version, info.rows, info.rows_from) == (
        _version(spark, lake, quarantine_rows_table("orders")),
        7,
        "stats",
    )
    by_reason, _ = _reasons(spark, lake, "orders")
    assert view.quarantine_reasons("orders") == by_reason == {"cast": 3, "isin": 4}
