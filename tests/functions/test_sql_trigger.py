"""The Functions SQL trigger: bindings as the host reads them, batches persisted before return."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ingestion.changes import ChangePayloadError, SqlSource, check_source, trigger_rows
from ingestion.changes.trigger import land_trigger_batch
from ingestion.contracts import Catalog
from ingestion.events import Ledger
from tests.functions.test_function_app import PROBE as APP_PROBE

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "tests.functions.sql_schemas"

# The Function App's own probe (pyspark blocked in a fresh interpreter), printing each function's bindings.
PROBE = (
    APP_PROBE.split("import function_app")[0]
    + r"""
import function_app
out = {fn.get_function_name(): [json.loads(r) for r in fn.get_raw_bindings()] for fn in function_app.app.get_functions()}
print(json.dumps(out))
"""
)

# As the extension sends it to a Python function: numbers for the operation, a delete's Item
# holding only the key.
PAYLOAD = json.dumps(
    [
        {"Item": {"id": "A-1", "name": "ann", "balance": 10.5, "version": 1}, "Operation": 0},
        {"Item": {"id": "A-2", "name": "bob", "balance": 2, "version": 4}, "Operation": 1},
        {"Item": {"id": "A-3"}, "Operation": 2},
    ]
)


# What the worker hands a function's `context` parameter: the host's trace of the invocation.
INVOCATION = SimpleNamespace(
    trace_context=SimpleNamespace(
        Traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate=""
    )
)


@pytest.fixture
def sql_catalog(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.setenv("HEADWATER_SCHEMAS_PACKAGE", PACKAGE)
    return Catalog.discover(PACKAGE)


def test_each_declared_source_is_a_sql_trigger_with_a_fixed_leases_table():
    env = {**os.environ, "HEADWATER_SCHEMAS_PACKAGE": PACKAGE}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sql_changes_crm"] == [
        {
            "direction": "IN",
            "type": "sqlTrigger",
            "name": "changes",
            "tableName": "dbo.Accounts",
            "connectionStringSetting": "CrmSql",
            "leasesTableName": "headwater_leases_crm",
        }
    ]
    assert {"landing_blob", "landing_events", "landing_reconcile"} <= set(out)


def test_trigger_rows_keep_the_operation_and_name_a_bad_entry():
    rows = trigger_rows(PAYLOAD, source="crm")
    assert rows == [
        {"id": "A-1", "name": "ann", "balance": 10.5, "version": 1, "_change_op": "0"},
        {"id": "A-2", "name": "bob", "balance": 2, "version": 4, "_change_op": "1"},
        {"id": "A-3", "_change_op": "2"},
    ]
    assert (
        trigger_rows('[{"Item": {"id": "x"}, "Operation": "Delete"}]', source="crm")[0]["_change_op"]
        == "Delete"
    )
    for payload, why in [
        ("{not json", "not JSON"),
        ('{"Item": {}}', "a JSON dict, not an array of changes"),
        ('[{"Item": {"id": 1}, "Operation": 0}, 7]', "entry 1 is a int, not an object"),
        ('[{"Operation": 0}]', "entry 0 has no object Item"),
        ('[{"Item": {"id": 1}}]', "entry 0 has no Operation"),
    ]:
        with pytest.raises(ChangePayloadError) as err:
            trigger_rows(payload, source="crm")
        assert why in err.value.reason and "crm" in str(err.value) and err.value.transient is False


def test_a_batch_is_one_change_file_in_landing_recorded_in_the_ledger(lake, sql_catalog):
    from ingestion.events import EventHandler

    source, dataset = sql_catalog.source("crm"), sql_catalog.get("accounts")
    handler = EventHandler(Ledger(lake), sql_catalog)
    out = land_trigger_batch(
        lake,
        dataset,
        source,
        PAYLOAD,
        record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
        clock=lambda: 1_800_000_000.25,
    )
    assert (out.outcome, out.changes, out.recorded.outcome) == ("landed", 3, "queued")
    assert out.landed.path.startswith("accounts/crm/trigger-20270115T080000250000Z-")
    lines = lake.read_bytes(f"landing/{out.landed.path}").decode().splitlines()
    assert [json.loads(x) for x in lines] == trigger_rows(PAYLOAD, source="crm")
    assert [q.path for q in Ledger(lake).queued("accounts")] == [out.landed.path]


def test_nothing_raises_after_the_write_and_a_bad_payload_is_kept_in_quarantine(lake, sql_catalog):
    source, dataset = sql_catalog.source("crm"), sql_catalog.get("accounts")

    def ledger_down(_f: object) -> None:
        raise OSError("ledger unreachable")

    out = land_trigger_batch(lake, dataset, source, PAYLOAD, record=ledger_down, clock=lambda: 1.0)
    assert (out.outcome, out.recorded) == ("landed", None)
    assert lake.exists(f"landing/{out.landed.path}")  # the reconcile sweep records it later

    bad = land_trigger_batch(
        lake, dataset, source, '[{"Item": 5, "Operation": 0}]', record=ledger_down, clock=lambda: 2.0
    )
    assert bad.outcome == "quarantined" and bad.quarantined.startswith(
        "quarantine/accounts/files/crm/trigger-"
    )
    assert lake.read_bytes(bad.quarantined) == b'[{"Item": 5, "Operation": 0}]'
    reason = json.loads(lake.read_bytes(bad.quarantined + ".reason.json"))
    assert reason == {
        "code": "bad_changes",
        "reason": "entry 0 has no object Item",
        "source": "crm",
        "dataset": "accounts",
    }


def test_check_source_names_what_is_wrong(sql_catalog):
    assert check_source(sql_catalog.source("crm"), sql_catalog) == []
    broken = SqlSource(
        name="crm2",
        dataset="accounts",
        connection_setting="Server=tcp:x;Password=y",
        table="dbo.Acc;DROP TABLE x",
        key=("name",),
        mode="watermark",
    )
    assert [p.message for p in check_source(broken, sql_catalog)] == [
        "connection_setting must name an app setting (letters, digits, _), not hold a connection string",
        "table 'dbo.Acc;DROP TABLE x' must be table or schema.table, each an identifier",
        "mode watermark needs a watermark column",
        "key ['name'] is not dataset 'accounts''s primary key ['id']",
    ]


@pytest.mark.spark
def test_trigger_batches_reach_silver_as_current_state(spark, lake, sql_catalog):
    """Two trigger batches -> change files -> bronze -> silver: upserts in version order, a delete."""
    from chispa import assert_df_equality

    from ingestion import lake as layout
    from ingestion.bronze.job import ingest
    from ingestion.events import EventHandler
    from transforms.silver import curate

    source, dataset = sql_catalog.source("crm"), sql_catalog.get("accounts")
    handler = EventHandler(Ledger(lake), sql_catalog)

    def land(payload: str, at: float) -> None:
        out = land_trigger_batch(
            lake,
            dataset,
            source,
            payload,
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
            clock=lambda: at,
        )
        assert out.outcome == "landed"

    land(PAYLOAD, 100.0)
    later = [
        {"Item": {"id": "A-1", "name": "ann2", "balance": 11, "version": 2}, "Operation": 1},
        {
            "Item": {"id": "A-2", "name": "old", "balance": 1, "version": 3},
            "Operation": 1,
        },  # older than silver's
        {"Item": {"id": "A-2"}, "Operation": 2},
    ]
    land(json.dumps(later[:2]), 200.0)
    assert ingest(spark, lake, sql_catalog, "accounts").status == "succeeded"
    assert curate(spark, lake, sql_catalog, "accounts").status == "succeeded"
    land(json.dumps(later[2:]), 300.0)  # a key-only delete: ordered by arrival, version is null
    ingest(spark, lake, sql_catalog, "accounts")
    rec = curate(spark, lake, sql_catalog, "accounts")
    assert rec.rows_quarantined == 0
    silver = spark.read.format("delta").load(lake.uri(layout.silver_table("accounts")))
    assert_df_equality(
        silver.select("id", "name", "balance", "version", "_change_op").orderBy("id"),
        spark.createDataFrame(
            [("A-1", "ann2", 11.0, 2, "U")],
            "id string, name string, balance double, version long, _change_op string",
        ),
        ignore_nullable=True,
    )


def test_a_watermark_source_gets_a_pull_timer_and_no_trigger():
    env = {**os.environ, "HEADWATER_SCHEMAS_PACKAGE": "tests.ingestion.changes.pull_schemas"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "sql_changes_club" not in out
    assert out["sql_pull_club"] == [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "0 */5 * * * *",
            "runOnStartup": False,
            "useMonitor": True,
        }
    ]


def test_the_runtime_pulls_a_source_and_queues_its_change_file(tmp_path, monkeypatch, submitter):
    import sqlite3

    from functions.runtime import LandingRuntime
    from ingestion.core.config import LakeSettings, Settings
    from ingestion.core.storage import LocalStorage

    db = tmp_path / "club.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE members (id TEXT PRIMARY KEY, name TEXT, version INTEGER, is_deleted INTEGER)")
    conn.executemany("INSERT INTO members VALUES (?, ?, ?, 0)", [("M-1", "ann", 1), ("M-2", "bob", 2)])
    monkeypatch.setenv("CLUB_SQL", f"Driver=SQLite3;Database={db}")
    lake = LocalStorage(tmp_path / "lake")
    catalog = Catalog.discover("tests.ingestion.changes.pull_schemas")
    rt = LandingRuntime(
        Settings(lake=LakeSettings(root=tmp_path / "lake")), lake, catalog=catalog, submitter=submitter
    )
    result = rt.pull_source("club")
    assert (result.rows, result.watermark) == (2, 2)
    assert [q.path for q in Ledger(lake).queued("members")] == [result.files[0].path]
    assert rt.pull_source("club").rows == 0  # nothing new: no file, nothing queued twice
    assert len(Ledger(lake).queued("members")) == 1


def test_the_function_as_the_host_calls_it_persists_the_batch_before_returning(
    tmp_path, sql_catalog, submitter
):
    import azure.functions as func

    from functions.runtime import LandingRuntime, set_runtime
    from functions.sql_trigger import register
    from ingestion.core.config import LakeSettings, Settings
    from ingestion.core.storage import LocalStorage

    fn = register(func.Blueprint(), sql_catalog.source("crm"))
    lake = LocalStorage(tmp_path / "lake")
    set_runtime(
        LandingRuntime(
            Settings(lake=LakeSettings(root=tmp_path / "lake")),
            lake,
            catalog=sql_catalog,
            submitter=submitter,
        )
    )
    try:
        # Collapsed changes: A-1 changed three times between polls arrives once, in its last state.
        assert fn(PAYLOAD, INVOCATION) is None
        assert fn("not json at all", INVOCATION) is None  # kept in quarantine, never raised
    finally:
        set_runtime(None)
    (queued,) = Ledger(lake).queued("accounts")
    assert [
        json.loads(x) for x in lake.read_bytes(f"landing/{queued.path}").decode().splitlines()
    ] == trigger_rows(PAYLOAD, source="crm")
    (kept,) = [
        o.path for o in lake.list("quarantine/accounts/files/crm") if not o.path.endswith(".reason.json")
    ]
    assert lake.read_bytes(kept) == b"not json at all"


@pytest.mark.spark
def test_a_batch_whose_table_dropped_or_retyped_a_column_is_quarantined_with_the_schema_reason(
    spark, lake, sql_catalog
):
    from ingestion.bronze.job import ingest
    from ingestion.changes import columns
    from ingestion.events import EventHandler

    source, dataset = sql_catalog.source("crm"), sql_catalog.get("accounts")
    handler = EventHandler(Ledger(lake), sql_catalog)
    batches = {
        # `balance` became an nvarchar: the extension now sends it as a JSON string.
        "retyped": [{"Item": {"id": "A-1", "name": "ann", "balance": "10.50", "version": 2}, "Operation": 1}],
        # `name` was dropped: no whole row carries it any more.
        "dropped": [{"Item": {"id": "A-2", "balance": 3, "version": 5}, "Operation": 0}],
        # A delete carries only its key: it says nothing of the table's columns.
        "deletes": [{"Item": {"id": "A-3"}, "Operation": 2}],
    }
    landed = {}
    for i, (name, payload) in enumerate(batches.items()):
        out = land_trigger_batch(
            lake,
            dataset,
            source,
            json.dumps(payload),
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
            clock=lambda i=i: 1_800_000_000.0 + i,
        )
        landed[name] = out.landed.path
    record = columns.load(lake, columns.digest_of(landed["retyped"]))  # type: ignore[arg-type]
    assert record is not None
    assert dict(record.kinds) == {"id": "string", "name": "string", "balance": "string", "version": "integer"}
    assert columns.digest_of(landed["deletes"]) is None

    result = ingest(spark, lake, sql_catalog, "accounts")
    assert sorted((r["path"], r["code"], r["reason"]) for r in result.rejected) == sorted(
        [
            (
                landed["retyped"],
                "schema",
                "balance: retyped at the source: it now sends string values, the contract says double",
            ),
            (landed["dropped"], "schema", "name: dropped at the source: the changes carry no such column"),
        ]
    )
    assert result.files_ingested == 1  # the deletes: nothing to judge, they go on
