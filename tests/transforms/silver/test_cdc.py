"""CDC apply in curate (SCD1): upserts by key, hard deletes with tombstones, soft deletes."""

from __future__ import annotations

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from ingestion import lake as layout
from ingestion.contracts import Catalog, Cdc, Dataset
from ingestion.contracts.validate import validate_catalog
from ingestion.core.spark.delta import is_delta
from transforms.silver import curate

pytestmark = pytest.mark.spark

COLS = ["id", "name", "balance"]
EXTRA = ["_change_op", "_change_seq"]
SCHEMA = "id string, name string, balance double, _change_op string, _change_seq long"


def columns(floor: float = 0):  # noqa: ANN201
    class Accounts(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False, str_matches=r"^A-\d+$")
        name: T.StringType() = pa.Field(nullable=False, str_length={"min_value": 1})
        balance: T.DoubleType() = pa.Field(nullable=False, ge=floor)

    return Accounts


def accounts(floor: float = 0, **cdc: object) -> Catalog:
    spec = {"mode": "scd1", "sequence_by": "_change_seq", **cdc}
    ds = Dataset(
        name="accounts",
        landing="accounts/*",
        columns=lambda: columns(floor),
        primary_key=("id",),
        cdc=Cdc(**spec),
    )
    return Catalog([ds])


def change(op: str, seq: int, key: str, name: str | None = None, balance: str | None = None) -> dict:
    return {"id": key, "name": name, "balance": balance, "_change_op": op, "_change_seq": str(seq)}


def silver(spark, lake, *cols: str):  # noqa: ANN001, ANN201
    df = spark.read.format("delta").load(lake.uri(layout.silver_table("accounts")))
    return df.select(*(cols or ("id", "name", "balance", "_change_op", "_change_seq"))).orderBy("id")


def tombstones(spark, lake):  # noqa: ANN001, ANN201
    uri = lake.uri(layout.tombstones_table("accounts"))
    return spark.read.format("delta").load(uri).select("id", "_change_seq").orderBy("id")


def test_scd1_applies_changes_in_sequence_and_a_tombstone_stops_a_late_update(spark, lake, write_bronze):
    catalog = accounts()
    write_bronze(
        "accounts",
        COLS,
        [
            change("insert", 1, "A-1", "ann", "10"),
            change("I", 1, "A-2", "bob", "20"),
            change("0", 1, "A-3", "cy", "30"),
        ],
        extra=EXTRA,
        batch=1,
    )
    assert curate(spark, lake, catalog, "accounts").status == "succeeded"

    # One batch: two updates of A-1 (out of order: the newer wins), a key-only delete of A-2
    # (not quarantined for its null name and balance), and the trigger's number for update.
    write_bronze(
        "accounts",
        COLS,
        [
            change("U", 3, "A-1", "ann3", "13"),
            change("update", 2, "A-1", "ann2", "12"),
            change("DELETE", 5, "A-2"),
            change("1", 2, "A-3", "cy2", "32"),
        ],
        extra=EXTRA,
        batch=2,
    )
    rec = curate(spark, lake, catalog, "accounts")
    assert (rec.status, rec.rows_quarantined, rec.details["deleted"], rec.details["tombstones"]) == (
        "succeeded",
        0,
        1,
        1,
    )
    expected = spark.createDataFrame([("A-1", "ann3", 13.0, "U", 3), ("A-3", "cy2", 32.0, "U", 2)], SCHEMA)
    assert_df_equality(silver(spark, lake), expected, ignore_nullable=True)
    assert_df_equality(
        tombstones(spark, lake),
        spark.createDataFrame([("A-2", 5)], "id string, _change_seq long"),
        ignore_nullable=True,
    )

    # Late changes older than what silver or the tombstone holds change nothing.
    write_bronze(
        "accounts",
        COLS,
        [change("U", 4, "A-2", "bob4", "24"), change("U", 2, "A-1", "late", "1")],
        extra=EXTRA,
        batch=3,
    )
    rec = curate(spark, lake, catalog, "accounts")
    assert (rec.status, rec.rows_written) == ("succeeded", 0)
    assert_df_equality(silver(spark, lake), expected, ignore_nullable=True)

    # A change newer than the delete brings the key back.
    write_bronze("accounts", COLS, [change("I", 7, "A-2", "bob7", "27")], extra=EXTRA, batch=4)
    assert curate(spark, lake, catalog, "accounts").rows_written == 1
    assert_df_equality(
        silver(spark, lake),
        spark.createDataFrame(
            [("A-1", "ann3", 13.0, "U", 3), ("A-2", "bob7", 27.0, "I", 7), ("A-3", "cy2", 32.0, "U", 2)],
            SCHEMA,
        ),
        ignore_nullable=True,
    )


def test_an_unknown_operation_and_a_bad_insert_go_to_quarantine_with_their_reasons(spark, lake, write_bronze):
    write_bronze(
        "accounts",
        COLS,
        [change("MERGE", 1, "A-1", "ann", "1"), change("I", 1, "A-2", None, "-5"), change("D", 1, "bad-key")],
        extra=EXTRA,
        batch=1,
    )
    rec = curate(spark, lake, accounts(), "accounts")
    assert (rec.status, rec.rows_quarantined) == ("succeeded", 3)
    q = spark.read.format("delta").load(lake.uri(layout.quarantine_rows_table("accounts")))
    got = sorted((r["id"], e["column"], e["check"], e["value"]) for r in q.collect() for e in r["_errors"])
    assert got == [
        ("A-1", "_change_op", "operation", "MERGE"),
        ("A-2", "balance", "greater_than_or_equal_to", "-5.0"),
        ("A-2", "name", "not_nullable", None),
        ("bad-key", "id", "str_matches", "bad-key"),  # a delete's key is still checked
    ]


def test_a_soft_delete_keeps_the_last_values_flagged_and_a_late_update_does_not_undo_it(
    spark, lake, write_bronze
):
    catalog = accounts(deletes="soft")
    write_bronze("accounts", COLS, [change("I", 1, "A-1", "ann", "10")], extra=EXTRA, batch=1)
    curate(spark, lake, catalog, "accounts")
    write_bronze("accounts", COLS, [change("D", 3, "A-1")], extra=EXTRA, batch=2)
    assert curate(spark, lake, catalog, "accounts").rows_written == 1
    write_bronze("accounts", COLS, [change("U", 2, "A-1", "late", "2")], extra=EXTRA, batch=3)
    assert curate(spark, lake, catalog, "accounts").rows_written == 0
    cols = ("id", "name", "balance", "_change_op", "_change_seq", "_deleted")
    schema = SCHEMA + ", _deleted boolean"
    assert_df_equality(
        silver(spark, lake, *cols),
        spark.createDataFrame([("A-1", "ann", 10.0, "D", 3, True)], schema),
        ignore_nullable=True,
    )
    write_bronze("accounts", COLS, [change("I", 4, "A-1", "ann4", "40")], extra=EXTRA, batch=4)
    curate(spark, lake, catalog, "accounts")
    assert_df_equality(
        silver(spark, lake, *cols),
        spark.createDataFrame([("A-1", "ann4", 40.0, "I", 4, False)], schema),
        ignore_nullable=True,
    )
    assert not is_delta(spark, lake.uri(layout.tombstones_table("accounts")))  # the row is the tombstone


def test_a_crash_after_the_tombstones_is_completed_once_by_the_rerun(spark, lake, write_bronze, monkeypatch):
    from transforms.silver import cdc

    catalog = accounts()
    write_bronze(
        "accounts",
        COLS,
        [change("I", 1, "A-1", "ann", "1"), change("I", 1, "A-2", "bob", "2")],
        extra=EXTRA,
        batch=1,
    )
    curate(spark, lake, catalog, "accounts")
    write_bronze(
        "accounts", COLS, [change("D", 2, "A-1"), change("U", 2, "A-2", "bob2", "3")], extra=EXTRA, batch=2
    )

    def crash(*_a: object, **_k: object) -> None:
        raise RuntimeError("killed between the tombstone and the silver commit")

    monkeypatch.setattr(cdc, "merge", crash)
    with pytest.raises(RuntimeError, match="killed between"):
        curate(spark, lake, catalog, "accounts")
    assert_df_equality(
        tombstones(spark, lake),
        spark.createDataFrame([("A-1", 2)], "id string, _change_seq long"),
        ignore_nullable=True,
    )
    monkeypatch.undo()

    rec = curate(spark, lake, catalog, "accounts")
    # The rerun found the tombstone commit the crashed run made and made no second one.
    assert (rec.status, rec.details["deleted"], rec.details["updated"], rec.details["tombstones"]) == (
        "succeeded",
        1,
        1,
        1,
    )
    history = DeltaTable.forPath(spark, lake.uri(layout.tombstones_table("accounts"))).history()
    assert [r["operation"] for r in history.orderBy("version").collect()] == ["WRITE", "MERGE"]
    assert_df_equality(
        silver(spark, lake),
        spark.createDataFrame([("A-2", "bob2", 3.0, "U", 2)], SCHEMA),
        ignore_nullable=True,
    )
    assert tombstones(spark, lake).count() == 1


def test_tombstones_past_their_days_are_removed_by_the_next_delete(spark, lake, write_bronze):
    catalog = accounts(tombstone_days=1e-9)  # expired as soon as written
    write_bronze("accounts", COLS, [change("D", 1, "A-1")], extra=EXTRA, batch=1)
    assert curate(spark, lake, catalog, "accounts").details["tombstones"] == 1
    write_bronze("accounts", COLS, [change("D", 1, "A-2")], extra=EXTRA, batch=2)
    rec = curate(spark, lake, catalog, "accounts")
    assert (rec.details["tombstones"], rec.details["tombstones_expired"]) == (1, 1)
    assert [r["id"] for r in tombstones(spark, lake).collect()] == ["A-2"]


def test_validate_holds_one_ordering_concept_and_refuses_what_it_cannot_apply():
    def problems(**kw: object) -> list[str]:
        cdc = {"mode": "scd1", "sequence_by": "_change_seq", **kw.pop("cdc", {})}  # type: ignore[dict-item]
        ds = Dataset(
            name="accounts", landing="accounts/*", columns=columns, primary_key=("id",), cdc=Cdc(**cdc), **kw
        )
        return [p.message for p in validate_catalog(Catalog([ds])) if p.code == "cdc"]

    assert problems() == []
    assert problems(cdc={"sequence_by": "balance"}, order_by="balance") == []
    assert problems(order_by="balance") == [
        "order_by 'balance' and cdc sequence_by '_change_seq' disagree: a dataset has one ordering; "
        "leave order_by unset or make it the same column"
    ]
    assert problems(cdc={"sequence_by": "nope"}) == [
        "sequence_by column 'nope' is neither a column nor '_change_seq'"
    ]
    assert problems(cdc={"mode": "scd2", "track_history_columns": ("name",)}) == []
    assert problems(cdc={"mode": "scd2", "track_history_columns": ("nope",)}) == [
        "track_history_columns names 'nope', which is not in the columns"
    ]
    assert problems(cdc={"track_history_columns": ("name",)}) == [
        "track_history_columns applies only to mode scd2"
    ]


def test_under_freeze_the_change_columns_are_reserved_and_a_contract_column_can_order(
    spark, lake, write_bronze
):
    def versioned():  # noqa: ANN202
        class Accounts(pa.DataFrameModel):
            id: T.StringType() = pa.Field(nullable=False)
            name: T.StringType() = pa.Field(nullable=False)
            version: T.LongType() = pa.Field(nullable=False)

        return Accounts

    ds = Dataset(
        name="accounts",
        landing="accounts/*",
        columns=versioned,
        primary_key=("id",),
        order_by="version",
        schema_policy="freeze",
        cdc=Cdc(mode="scd1", sequence_by="version"),
    )
    cols = ["id", "name", "version", "_change_op"]
    rows = [
        {"id": "A-1", "name": "new", "version": "9", "_change_op": "U"},
        {"id": "A-1", "name": "old", "version": "4", "_change_op": "U"},
        {"id": "A-2", "version": "3", "_change_op": "D"},  # no row to delete: nothing happens
    ]
    write_bronze("accounts", cols, rows, batch=1)  # the trigger's path: no _change_seq
    rec = curate(spark, lake, Catalog([ds]), "accounts")
    assert (rec.status, rec.rows_quarantined, rec.rows_written) == ("succeeded", 0, 1)
    assert_df_equality(
        silver(spark, lake, "id", "name", "version", "_change_op", "_change_seq"),
        spark.createDataFrame(
            [("A-1", "new", 9, "U", None)],
            "id string, name string, version long, _change_op string, _change_seq long",
        ),
        ignore_nullable=True,
    )


def test_a_replayed_change_is_applied_as_a_change_and_respects_a_newer_delete(spark, lake, write_bronze):
    from transforms.silver import replay

    # A-1's insert is quarantined (negative balance); A-2's update waits in quarantine too.
    write_bronze(
        "accounts",
        COLS,
        [
            change("I", 1, "A-1", "ann", "-5"),
            change("I", 1, "A-2", "bob", "2"),
            change("U", 2, "A-2", "bob2", "-1"),
        ],
        extra=EXTRA,
        batch=1,
    )
    assert curate(spark, lake, accounts(), "accounts").rows_quarantined == 2
    # Then A-1 is deleted (a tombstone: silver never had it).
    write_bronze("accounts", COLS, [change("D", 3, "A-1")], extra=EXTRA, batch=2)
    assert curate(spark, lake, accounts(), "accounts").details["tombstones"] == 1

    # The fix allows negative balances: A-2's update applies; A-1's insert is older than its delete.
    rec = replay(spark, lake, accounts(floor=-100), "accounts")
    assert (rec.status, rec.rows_written) == ("succeeded", 1)
    assert_df_equality(
        silver(spark, lake),
        spark.createDataFrame([("A-2", "bob2", -1.0, "U", 2)], SCHEMA),
        ignore_nullable=True,
    )
