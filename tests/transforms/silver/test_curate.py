"""End-to-end curate runs (bronze -> silver + quarantine) on small bronze tables."""

import datetime as dt
import threading
from decimal import Decimal

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from chispa import assert_df_equality

from ingestion import lake as layout
from ingestion.core.runs import RunLedger
from transforms.silver import curate

ORDERS = ["order_id", "customer_id", "status", "amount", "quantity", "order_date", "ship_date", "updated_at"]


def order(oid: str, **kw: str | None) -> dict[str, str | None]:
    row = {
        "order_id": oid,
        "customer_id": "C-001",
        "status": "paid",
        "amount": "10.00",
        "quantity": "1",
        "order_date": "2026-11-01",
        "ship_date": None,
        "updated_at": "2026-11-01T10:00:00",
    }
    row.update(kw)
    return row


def silver(spark, lake, ds: str, *cols: str):  # noqa: ANN001
    df = spark.read.format("delta").load(lake.uri(layout.silver_table(ds)))
    return df.select(*cols) if cols else df


def quarantined(spark, lake, ds: str):  # noqa: ANN001
    return spark.read.format("delta").load(lake.uri(layout.quarantine_rows_table(ds)))


@pytest.mark.floor
def test_orders_good_bad_and_duplicates(spark, lake, catalog, write_bronze):
    write_bronze(
        "orders",
        ORDERS,
        [
            order("O-0001"),
            order("O-0002", amount="abc"),  # cast error
            order("O-0003", status="lost"),  # isin
            order("O-0004", ship_date="2026-10-01"),  # row rule: shipped before ordered
            order("O-0001", status="shipped", updated_at="2026-11-02T09:00:00"),  # newer update
            order("O-0005", order_date="01.11.2026"),  # date not in the contract format
        ],
        batch=1,
    )
    rec = curate(spark, lake, catalog, "orders")
    assert rec.status == "succeeded", rec.error
    assert (rec.rows_read, rec.rows_written, rec.rows_quarantined) == (6, 1, 4)
    assert rec.details["superseded"] == 1
    assert rec.rules == {"amount.cast": 1, "status.isin": 1, "shipped_after_ordered": 1, "order_date.cast": 1}
    expected = spark.createDataFrame(
        [("O-0001", "shipped", Decimal("10.00"), 1, dt.date(2026, 11, 1), dt.datetime(2026, 11, 2, 9))],
        "order_id string, status string, amount decimal(12,2), quantity int, order_date date, updated_at timestamp",
    )
    assert_df_equality(silver(spark, lake, "orders", *expected.columns), expected, ignore_nullable=True)
    reasons = quarantined(spark, lake, "orders").selectExpr("order_id", "inline(_errors)").orderBy("order_id")
    exp = spark.createDataFrame(
        [
            ("O-0002", "amount", "cast", "abc"),
            ("O-0003", "status", "isin", "lost"),
            ("O-0004", None, "shipped_after_ordered", None),
            ("O-0005", "order_date", "cast", "01.11.2026"),
        ],
        "order_id string, column string, check string, value string",
    )
    assert_df_equality(reasons, exp, ignore_nullable=True)
    runs = RunLedger(spark, lake).latest(dataset="orders", job="curate")
    assert runs[0]["status"] == "succeeded" and runs[0]["rows_quarantined"] == 4


# --- small contracts for focused cases -------------------------------------------------------------
def items_model():  # noqa: ANN201
    """The model of :func:`items_dataset`: key ``id``, ``qty`` 1..10, ``code`` pattern, ``ts``."""

    class Items(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        qty: T.IntegerType() = pa.Field(ge=1, le=10, nullable=True)
        code: T.StringType() = pa.Field(str_matches=r"[A-Z]{2}", nullable=True)
        ts: T.TimestampType() = pa.Field(nullable=False)

    return Items


def items_dataset(**overrides):  # noqa: ANN003, ANN201
    """A small CSV contract: key ``id``, ``qty`` 1..10, ``code`` pattern, ordered by ``ts``."""
    from ingestion.contracts import Csv, Dataset

    args = dict(
        name="items",
        landing="items/*.csv",
        format=Csv(timestamp_format="yyyy-MM-dd HH:mm"),
        columns=items_model,
        primary_key=("id",),
        order_by="ts",
    )
    args.update(overrides)
    return Dataset(**args)


ITEMS = ["id", "qty", "code", "ts"]


def item(i: str, qty: str | None = "1", code: str | None = "AB", ts: str = "2026-11-01 10:00") -> dict:
    return {"id": i, "qty": qty, "code": code, "ts": ts}


def versions(spark, lake, path: str) -> int | None:  # noqa: ANN001
    from ingestion.core.spark.delta import table_version

    return table_version(spark, lake.uri(path))


def test_each_action_warn_drop_quarantine(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    ds = items_dataset(check_actions={"qty.less_than_or_equal_to": "warn", "code.str_matches": "drop"})
    cat = Catalog([ds])
    write_bronze(
        "items",
        ITEMS,
        [
            item("a"),
            item("b", qty="11"),  # warn: kept, counted
            item("c", code="x1"),  # drop: gone, counted
            item("d", qty="0"),  # quarantine (default action)
        ],
        batch=1,
    )
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "succeeded", rec.error
    assert (rec.rows_warned, rec.rows_dropped, rec.rows_quarantined, rec.rows_written) == (1, 1, 1, 2)
    assert rec.rules == {
        "qty.less_than_or_equal_to": 1,
        "code.str_matches": 1,
        "qty.greater_than_or_equal_to": 1,
    }
    exp = spark.createDataFrame([("a", 1), ("b", 11)], "id string, qty int")
    assert_df_equality(silver(spark, lake, "items", "id", "qty").orderBy("id"), exp, ignore_nullable=True)
    q = quarantined(spark, lake, "items").selectExpr("id", "qty", "inline(_errors)")
    exp_q = spark.createDataFrame(
        [("d", "0", "qty", "greater_than_or_equal_to", "0")],
        "id string, qty string, column string, check string, value string",
    )
    assert_df_equality(q, exp_q, ignore_nullable=True)


@pytest.mark.floor
def test_fail_leaves_silver_untouched(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    cat = Catalog([items_dataset(check_actions={"qty": "fail"})])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    assert curate(spark, lake, cat, "items").status == "succeeded"
    silver_v = versions(spark, lake, "silver/items")
    write_bronze("items", ITEMS, [item("b"), item("c", qty="99")], batch=2)
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "failed"
    assert "qty.less_than_or_equal_to (1)" in rec.error
    assert versions(spark, lake, "silver/items") == silver_v
    assert versions(spark, lake, "quarantine/items/rows") is None
    exp = spark.createDataFrame([("a",)], "id string")
    assert_df_equality(silver(spark, lake, "items", "id"), exp, ignore_nullable=True)
    ledger = RunLedger(spark, lake).latest(dataset="items")
    assert ledger[0]["status"] == "failed" and "fail" in ledger[0]["error"]
    # The watermark did not move: after the contract is fixed, the same rows are curated.
    fixed = Catalog([items_dataset(check_actions={"qty": "warn"})])
    rec = curate(spark, lake, fixed, "items")
    assert rec.status == "succeeded" and (rec.input_from, rec.rows_read, rec.rows_warned) == (1, 2, 1)


def test_dataset_rule_fail_and_warn(spark, lake, write_bronze):
    from ingestion.contracts import Catalog, DatasetRule

    rules = (
        DatasetRule(name="few_missing_codes", expr="avg(cast(code is null as int)) < 0.5", action="fail"),
        DatasetRule(name="big_batch", expr="count(*) >= 100", action="warn"),
    )
    cat = Catalog([items_dataset(dataset_rules=rules)])
    write_bronze("items", ITEMS, [item("a", code=None), item("b", code=None), item("c")], batch=1)
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "failed" and "few_missing_codes" in rec.error
    assert versions(spark, lake, "silver/items") is None
    write_bronze("items", ITEMS, [item("d"), item("e")], batch=2)
    cat2 = Catalog([items_dataset(dataset_rules=rules[1:])])
    rec = curate(spark, lake, cat2, "items")
    assert rec.status == "succeeded" and rec.rows_written == 5
    assert rec.rules["dataset.big_batch"] == 1
    assert [r["passed"] for r in rec.details["dataset_rules"]] == [False]


def test_latest_wins_by_order_then_ingestion_and_late_updates_lose(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    cat = Catalog([items_dataset()])
    write_bronze(
        "items",
        ITEMS,
        [
            item("a", qty="1", ts="2026-11-01 10:00"),
            item("a", qty="2", ts="2026-11-01 12:00"),  # newest by ts within the batch
            item("a", qty="3", ts="2026-11-01 11:00"),
            item("b", qty="1", ts="2026-11-01 10:00"),
            item("b", qty="2", ts="2026-11-01 10:00"),  # same ts: later in the file wins
        ],
        batch=1,
    )
    assert curate(spark, lake, cat, "items").status == "succeeded"
    write_bronze(
        "items",
        ITEMS,
        [
            item("a", qty="4", ts="2026-11-01 09:00"),  # an older update arriving late: loses
            item("b", qty="5", ts="2026-11-01 10:00"),  # same ts, later batch: wins
            item("c", qty="6"),
        ],
        batch=2,
    )
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "succeeded"
    assert (rec.details["inserted"], rec.details["updated"], rec.details["not_newer"]) == (1, 1, 1)
    exp = spark.createDataFrame([("a", 2), ("b", 5), ("c", 6)], "id string, qty int")
    assert_df_equality(silver(spark, lake, "items", "id", "qty").orderBy("id"), exp, ignore_nullable=True)


def test_idempotent_rerun_makes_no_new_version(spark, lake, write_bronze):
    from ingestion.contracts import Catalog
    from transforms.silver import state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a"), item("b", qty="0")], batch=1)
    first = curate(spark, lake, cat, "items")
    assert first.status == "succeeded"
    before = (versions(spark, lake, "silver/items"), versions(spark, lake, "quarantine/items/rows"))
    again = curate(spark, lake, cat, "items")
    assert again.status == "skipped"
    # Even when the watermark is lost and the same range is redone, Delta skips both writes.
    lake.delete(state.state_path("items"))
    redo = curate(spark, lake, cat, "items")
    assert redo.status == "succeeded"
    assert (versions(spark, lake, "silver/items"), versions(spark, lake, "quarantine/items/rows")) == before
    assert quarantined(spark, lake, "items").count() == 1
    assert silver(spark, lake, "items").count() == 1


def crashed_run(spark, lake, monkeypatch, cat, step: str) -> None:  # noqa: ANN001
    """Run curate with ``step`` (``merge`` or ``append``) of the job raising; the run must fail."""
    import importlib

    # The MERGE is made where curate writes a batch (transforms.silver.apply); the append in curate.
    job = importlib.import_module(
        "transforms.silver.apply" if step == "merge" else "transforms.silver.curate"
    )

    def crash(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError(f"killed in {step}")

    monkeypatch.setattr(job, step, crash)
    with pytest.raises(RuntimeError, match=f"killed in {step}"):
        curate(spark, lake, cat, "items")
    monkeypatch.undo()


@pytest.mark.floor
def test_crash_between_merge_and_quarantine_append_then_rerun(spark, lake, write_bronze, monkeypatch):
    from ingestion.contracts import Catalog
    from transforms.silver import state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a"), item("b", qty="0")], batch=1)
    crashed_run(spark, lake, monkeypatch, cat, "append")
    assert state.load(lake, "items").pending == {
        "after": -1,
        "upto": 0,
        "run_id": state.load(lake, "items").pending["run_id"],
    }
    silver_v = versions(spark, lake, "silver/items")
    assert silver_v is not None and versions(spark, lake, "quarantine/items/rows") is None
    write_bronze("items", ITEMS, [item("c")], batch=2)  # new data meanwhile: not mixed in
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "succeeded" and (rec.input_from, rec.input_to) == (0, 0)
    assert versions(spark, lake, "silver/items") == silver_v  # the MERGE was not redone
    assert quarantined(spark, lake, "items").count() == 1
    rec = curate(spark, lake, cat, "items")
    assert (rec.input_from, rec.input_to, rec.rows_written) == (1, 1, 1)
    exp = spark.createDataFrame([("a",), ("c",)], "id string")
    assert_df_equality(silver(spark, lake, "items", "id").orderBy("id"), exp, ignore_nullable=True)
    assert state.load(lake, "items").bronze_version == 1


def test_a_failed_merge_writes_nothing_and_the_rerun_writes_everything_once(
    spark, lake, write_bronze, monkeypatch
):
    from ingestion.contracts import Catalog
    from transforms.silver import state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a"), item("b", qty="0")], batch=1)
    crashed_run(spark, lake, monkeypatch, cat, "merge")
    assert versions(spark, lake, "quarantine/items/rows") is None
    assert versions(spark, lake, "silver/items") is None
    assert state.load(lake, "items").pending is not None
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "succeeded" and (rec.input_from, rec.input_to) == (0, 0)
    assert rec.details["quarantine_version"] == 0
    assert quarantined(spark, lake, "items").count() == 1
    exp = spark.createDataFrame([("a",)], "id string")
    assert_df_equality(silver(spark, lake, "items", "id"), exp, ignore_nullable=True)
    assert state.load(lake, "items").pending is None


def test_parse_errors_go_to_quarantine_with_their_reason(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    cat = Catalog([items_dataset()])
    write_bronze(
        "items",
        ITEMS,
        [
            item("a"),
            {"_corrupt_record": 'a,"unclosed', "_parse_error": "unterminated quote"},
        ],
        batch=1,
    )
    rec = curate(spark, lake, cat, "items")
    assert rec.rules == {"_record.parse": 1} and rec.rows_quarantined == 1
    q = quarantined(spark, lake, "items").selectExpr("_corrupt_record", "inline(_errors)")
    exp = spark.createDataFrame(
        [('a,"unclosed', "_record", "parse", "unterminated quote")],
        "_corrupt_record string, column string, check string, value string",
    )
    assert_df_equality(q, exp, ignore_nullable=True)


def test_breaking_type_change_quarantines_the_batch(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    write_bronze("items", ITEMS, [item("a")], batch=1)
    assert curate(spark, lake, Catalog([items_dataset()]), "items").status == "succeeded"
    silver_v = versions(spark, lake, "silver/items")

    def columns_v2():  # qty becomes a long: silver has int
        class Items(pa.DataFrameModel):
            id: T.StringType() = pa.Field(nullable=False)
            qty: T.LongType() = pa.Field(nullable=True)
            code: T.StringType() = pa.Field(nullable=True)
            ts: T.TimestampType() = pa.Field(nullable=False)

        return Items

    write_bronze("items", ITEMS, [item("b"), item("c", qty="x")], batch=2)
    rec = curate(spark, lake, Catalog([items_dataset(columns=columns_v2)]), "items")
    assert rec.status == "succeeded" and rec.rows_quarantined == 2 and rec.rows_written == 0
    assert rec.details["schema_problems"] == [
        {"column": "qty", "reason": "silver has int, the batch has bigint"}
    ]
    assert versions(spark, lake, "silver/items") == silver_v
    q = quarantined(spark, lake, "items").selectExpr("id", "inline(_errors)").orderBy("id", "check")
    exp = spark.createDataFrame(
        [
            ("b", "qty", "schema", "silver has int, the batch has bigint"),
            ("c", "qty", "cast", "x"),
        ],
        "id string, column string, check string, value string",
    )
    assert_df_equality(q, exp, ignore_nullable=True)


def test_evolve_adds_new_columns_freeze_does_not(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    cat = Catalog([items_dataset(schema_policy="evolve")])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    curate(spark, lake, cat, "items")
    write_bronze("items", ITEMS, [{**item("b"), "colour": "red"}], batch=2, extra=["colour"])
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "succeeded"
    exp = spark.createDataFrame([("a", None), ("b", "red")], "id string, colour string")
    assert_df_equality(silver(spark, lake, "items", "id", "colour").orderBy("id"), exp, ignore_nullable=True)


def test_uncompiled_check_is_evaluated_by_pandera_at_batch_level(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    def columns():  # unique_values_eq is a whole-column check: no row builder
        class Items(pa.DataFrameModel):
            id: T.StringType() = pa.Field(nullable=False)
            qty: T.IntegerType() = pa.Field(nullable=True)
            code: T.StringType() = pa.Field(nullable=True, unique_values_eq=["AB", "CD"])
            ts: T.TimestampType() = pa.Field(nullable=False)

        return Items

    write_bronze("items", ITEMS, [item("a"), item("b", code="ZZ")], batch=1)
    warn = Catalog([items_dataset(columns=columns, check_actions={"code.unique_values_eq": "warn"})])
    rec = curate(spark, lake, warn, "items")
    assert rec.status == "succeeded" and rec.details["uncompiled_checks"] == ["code.unique_values_eq"]
    assert rec.rules == {"code.unique_values_eq": 1}
    write_bronze("items", ITEMS, [item("c", code="ZZ")], batch=2)
    rec = curate(spark, lake, Catalog([items_dataset(columns=columns)]), "items")
    assert rec.status == "failed" and "code.unique_values_eq has no Spark builder" in rec.error


@pytest.mark.floor
def test_customers_ingestion_order_rescue_and_transform(spark, lake, catalog, write_bronze):
    cols = ["customer_id", "name", "email", "country", "segment", "signup_date", "lifetime_value"]

    def cust(cid: str, **kw: str | None) -> dict:
        row = {
            "customer_id": cid,
            "name": "Ann",
            "email": "ann@example.com",
            "country": "DE",
            "segment": "consumer",
            "signup_date": "2026-01-02",
            "lifetime_value": "12.5",
        }
        row.update(kw)
        return row

    write_bronze(
        "customers",
        cols,
        [
            cust("C-001", name="Old"),
            cust("C-001", name="  New  Name ", email=" NEW@Example.COM", _rescued_data='{"vip": "yes"}'),
            cust("C-002", country="XX"),
        ],
        batch=1,
        path="customers/a.jsonl",
    )
    write_bronze("customers", cols, [cust("C-003", lifetime_value="-1")], batch=2, path="customers/b.jsonl")
    rec = curate(spark, lake, catalog, "customers")
    assert rec.status == "succeeded", rec.error
    assert rec.rules == {"country.isin": 1, "lifetime_value.greater_than_or_equal_to": 1}
    exp = spark.createDataFrame(
        [("C-001", "New Name", "new@example.com", '{"vip": "yes"}', 1, 2)],
        "customer_id string, name string, email string, _rescued_data string, _batch_id long, _source_row long",
    )
    assert_df_equality(silver(spark, lake, "customers", *exp.columns), exp, ignore_nullable=True)
    write_bronze("customers", cols, [cust("C-001", name="Newest")], batch=3, path="customers/c.jsonl")
    curate(spark, lake, catalog, "customers")
    names = silver(spark, lake, "customers", "name").collect()
    assert [r["name"] for r in names] == ["Newest"]


def test_non_data_commits_are_passed_untagged_data_is_refused(spark, lake, write_bronze):
    from delta.tables import DeltaTable

    from ingestion.contracts import Catalog
    from transforms.silver import CurateError, state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    curate(spark, lake, cat, "items")
    uri = lake.uri(layout.bronze_table("items"))
    DeltaTable.forPath(spark, uri).optimize().executeCompaction()  # no new rows
    rec = curate(spark, lake, cat, "items")
    assert rec.status == "skipped" and state.load(lake, "items").bronze_version == versions(
        spark, lake, "bronze/items"
    )
    spark.read.format("delta").load(uri).write.format("delta").mode("append").save(uri)  # no batch tag
    with pytest.raises(CurateError, match="carries no 'headwater-bronze-items:<batch>' tag"):
        curate(spark, lake, cat, "items")
    assert RunLedger(spark, lake).latest(dataset="items")[0]["status"] == "failed"


def test_freeze_keeps_unknown_columns_out_and_quarantines_a_new_contract_column(spark, lake, write_bronze):
    from ingestion.contracts import Catalog

    cat = Catalog([items_dataset(schema_policy="freeze")])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    assert curate(spark, lake, cat, "items").status == "succeeded"
    # A column bronze carries but the contract does not know never reaches silver under freeze.
    write_bronze("items", ITEMS, [{**item("b"), "colour": "red"}], batch=2, extra=["colour"])
    rec = curate(spark, lake, cat, "items")
    assert (rec.status, rec.rows_written, rec.rows_quarantined) == ("succeeded", 1, 0)
    silver_df = spark.read.format("delta").load(lake.uri("silver/items"))
    assert "colour" not in silver_df.columns
    assert sorted(r["id"] for r in silver_df.collect()) == ["a", "b"]

    # A new contract column under freeze is a breaking change: the batch goes to quarantine
    # with check `schema`, and silver stays as it was.
    def wider():  # noqa: ANN202
        class WiderItems(items_model()):
            size: T.StringType() = pa.Field(nullable=True)

        return WiderItems

    before = versions(spark, lake, "silver/items")
    write_bronze("items", ITEMS + ["size"], [{**item("c"), "size": "L"}], batch=3)
    rec = curate(spark, lake, Catalog([items_dataset(schema_policy="freeze", columns=wider)]), "items")
    assert rec.rows_quarantined == 1 and rec.rows_written == 0
    assert [p["column"] for p in rec.details["schema_problems"]] == ["size"]
    assert versions(spark, lake, "silver/items") == before
    q = spark.read.format("delta").load(lake.uri("quarantine/items/rows"))
    assert [(r["id"], [(e["column"], e["check"]) for e in r["_errors"]]) for r in q.collect()] == [
        ("c", [("size", "schema")])
    ]


def test_a_running_silver_writer_holds_off_curate_and_replay(spark, lake, write_bronze):
    from ingestion.contracts import Catalog
    from ingestion.core.errors import LeaseHeldError
    from ingestion.core.lease import Lease
    from transforms.silver import replay, state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    holder = Lease(lake, "items", scope="silver", owner="run-x", seconds=60, heartbeat=False).acquire()
    ingest = Lease(lake, "items", owner="ingest-y", seconds=60, heartbeat=False).acquire()  # no conflict
    for job in (curate, replay):
        with pytest.raises(LeaseHeldError, match="being written by run run-x"):
            job(spark, lake, cat, "items")
    # Nothing was read, written or recorded by the refused runs.
    assert lake.info(state.state_path("items")) is None
    assert not lake.info("silver/items/_delta_log/00000000000000000000.json")
    assert RunLedger(spark, lake).latest(dataset="items") == []
    threading.Timer(1.0, holder.release).start()
    rec = curate(spark, lake, cat, "items", lease_wait=30)
    ingest.release()
    assert rec.status == "succeeded" and rec.rows_written == 1
    assert lake.info("system/leases/items.silver.json") is None  # released after the run


def test_curate_stops_before_writing_when_its_lease_was_lost(spark, lake, write_bronze, monkeypatch):
    from ingestion.contracts import Catalog
    from ingestion.core.lease import Lease, LeaseLostError
    from transforms.silver import state

    cat = Catalog([items_dataset()])
    write_bronze("items", ITEMS, [item("a")], batch=1)
    monkeypatch.setattr(Lease, "check", lambda self: (_ for _ in ()).throw(LeaseLostError("items", "x", 0)))
    with pytest.raises(LeaseLostError):
        curate(spark, lake, cat, "items")
    assert not lake.info("silver/items/_delta_log/00000000000000000000.json")
    assert state.load(lake, "items").bronze_version == -1
    assert RunLedger(spark, lake).latest(dataset="items", job="curate")[0]["status"] == "failed"


def persistent_rdds(spark) -> dict[int, str]:  # noqa: ANN001
    """id -> name of every RDD Spark keeps stored now."""
    rdds = spark.sparkContext._jsc.getPersistentRDDs()
    return {int(k): str(rdds.get(k).name()) for k in rdds.keySet().toArray()}


@pytest.mark.floor
def test_batch_is_checkpointed_once_merged_without_a_second_copy_and_freed(
    spark, lake, write_bronze, monkeypatch
):
    from delta.tables import DeltaMergeBuilder

    from ingestion.contracts import Catalog
    from ingestion.core.spark.commits import CommitTag
    from transforms.silver.pipeline import prepare
    from transforms.silver.silver import merge

    ds = Catalog([items_dataset()]).get("items")
    write_bronze("items", ITEMS, [item("a"), item("b", qty="0"), item("a", qty="3")], batch=1)
    bronze = spark.read.format("delta").load(lake.uri("bronze/items"))
    prepared = prepare(ds, bronze)
    ours = int(prepared.frame._jdf.queryExecution().analyzed().rdd().id())
    seen: list[str | None] = []
    execute = DeltaMergeBuilder.execute

    def spy(self):  # noqa: ANN001, ANN202
        seen.append(spark.conf.get("spark.databricks.delta.merge.materializeSource", None))
        return execute(self)

    monkeypatch.setattr(DeltaMergeBuilder, "execute", spy)
    try:
        assert prepared.stable
        assert ours in persistent_rdds(spark)  # the counting job filled the checkpoint
        assert prepared.counts["rows"] == 3 and prepared.counts["quarantined"] == 1
        version, metrics = merge(
            spark,
            lake,
            prepared.silver_rows(),
            ds,
            tag=CommitTag("silver", "items", 1),
            stable_source=prepared.stable,
        )
        # Delta is told not to store a copy of its own beside ours, for this MERGE only.
        assert seen == ["none"]
        assert spark.conf.get("spark.databricks.delta.merge.materializeSource", None) != "none"
        assert int(metrics["numSourceRows"]) == 1 and version == 1
        got = spark.read.format("delta").load(lake.uri("silver/items")).select("id", "qty")
        assert_df_equality(got, spark.createDataFrame([("a", 3)], "id string, qty int"), ignore_nullable=True)
    finally:
        prepared.release()
    assert ours not in persistent_rdds(spark)
