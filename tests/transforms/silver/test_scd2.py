"""CDC apply in curate (SCD2): history rows with intervals, late changes in place, deletes kept."""

from __future__ import annotations

from datetime import datetime, timezone

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion import lake as layout
from ingestion.contracts import Catalog, Cdc, Dataset
from transforms.silver import curate

pytestmark = pytest.mark.spark

COLS = ["id", "name", "balance"]
EXTRA = ["_change_op", "_change_seq"]
HISTORY = "id string, name string, __start_at long, __end_at long"


def columns():  # noqa: ANN201
    class Accounts(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        name: T.StringType() = pa.Field(nullable=False)
        balance: T.DoubleType() = pa.Field(nullable=True)

    return Accounts


def accounts(**cdc: object) -> Dataset:
    spec = {"mode": "scd2", "sequence_by": "_change_seq", **cdc}
    return Dataset(
        name="accounts", landing="accounts/*", columns=columns, primary_key=("id",), cdc=Cdc(**spec)
    )


def change(op: str, seq: int, key: str, name: str | None = None, balance: str | None = None) -> dict:
    return {"id": key, "name": name, "balance": balance, "_change_op": op, "_change_seq": str(seq)}


def history(spark, lake, *cols: str):  # noqa: ANN001, ANN201
    df = spark.read.format("delta").load(lake.uri(layout.silver_table("accounts")))
    return df.select(*(cols or ("id", "name", "__start_at", "__end_at"))).orderBy("id", "__start_at")


def test_late_changes_land_at_their_place_and_deletes_close_history(spark, lake, write_bronze):
    catalog = Catalog([accounts()])
    write_bronze(
        "accounts",
        COLS,
        # Two changes of A-1 in one batch: both enter history.
        [change("I", 1, "A-1", "ann"), change("U", 3, "A-1", "ann3"), change("I", 2, "A-2", "bob")],
        extra=EXTRA,
        batch=1,
    )
    assert curate(spark, lake, catalog, "accounts").status == "succeeded"
    assert_df_equality(
        history(spark, lake),
        spark.createDataFrame(
            [("A-1", "ann", 1, 3), ("A-1", "ann3", 3, None), ("A-2", "bob", 2, None)], HISTORY
        ),
        ignore_nullable=True,
    )

    # A late update of A-1 between its versions; a key-only delete of A-2.
    write_bronze(
        "accounts", COLS, [change("U", 2, "A-1", "ann2"), change("D", 5, "A-2")], extra=EXTRA, batch=2
    )
    rec = curate(spark, lake, catalog, "accounts")
    assert (rec.status, rec.rows_quarantined, rec.details["tombstones"]) == ("succeeded", 0, 1)
    # A late update of A-2 from before its delete, and A-1's version 3 delivered again.
    write_bronze(
        "accounts", COLS, [change("U", 4, "A-2", "bob4"), change("U", 3, "A-1", "ann3")], extra=EXTRA, batch=3
    )
    assert curate(spark, lake, catalog, "accounts").status == "succeeded"
    expected = [
        ("A-1", "ann", 1, 2),
        ("A-1", "ann2", 2, 3),
        ("A-1", "ann3", 3, None),
        ("A-2", "bob", 2, 4),
        ("A-2", "bob4", 4, 5),  # closed by the delete at 5
    ]
    assert_df_equality(history(spark, lake), spark.createDataFrame(expected, HISTORY), ignore_nullable=True)

    from transforms.silver.scd2 import current_rows

    current = current_rows(spark.read.format("delta").load(lake.uri(layout.silver_table("accounts"))))
    assert [(r["id"], r["name"]) for r in current.collect()] == [("A-1", "ann3")]


def test_a_delete_before_any_version_still_bounds_a_later_late_insert(spark, lake, write_bronze):
    catalog = Catalog([accounts()])
    write_bronze("accounts", COLS, [change("D", 7, "A-1")], extra=EXTRA, batch=1)
    curate(spark, lake, catalog, "accounts")
    write_bronze("accounts", COLS, [change("I", 3, "A-1", "ann")], extra=EXTRA, batch=2)
    curate(spark, lake, catalog, "accounts")
    assert_df_equality(
        history(spark, lake), spark.createDataFrame([("A-1", "ann", 3, 7)], HISTORY), ignore_nullable=True
    )


def test_untracked_columns_update_the_current_row_in_place(spark, lake, write_bronze):
    catalog = Catalog([accounts(track_history_columns=("name",))])
    write_bronze(
        "accounts",
        COLS,
        [
            change("I", 1, "A-1", "ann", "1"),
            change("U", 2, "A-1", "ann", "2"),
            change("U", 3, "A-1", "anna", "3"),
        ],
        extra=EXTRA,
        batch=1,
    )
    curate(spark, lake, catalog, "accounts")
    assert_df_equality(
        history(spark, lake, "id", "name", "balance", "__start_at", "__end_at"),
        spark.createDataFrame(
            [("A-1", "ann", 2.0, 1, 3), ("A-1", "anna", 3.0, 3, None)],
            "id string, name string, balance double, __start_at long, __end_at long",
        ),
        ignore_nullable=True,
    )


def test_a_change_without_a_sequence_is_quarantined_under_scd2(spark, lake, write_bronze):
    write_bronze("accounts", COLS, [{"id": "A-1", "name": "x", "_change_op": "U"}], extra=EXTRA, batch=1)
    rec = curate(spark, lake, Catalog([accounts()]), "accounts")
    assert (rec.status, rec.rows_quarantined, rec.rules) == ("succeeded", 1, {"_change_seq.not_nullable": 1})


# --- property: any interleaving of the same changes ends in the oracle's history --------------
def oracle(changes: dict[str, list[tuple[int, str, str]]]) -> list[tuple]:
    """Per key, sorted by sequence: each non-delete opens a row that the next change closes."""
    out = []
    for key, events in changes.items():
        events = sorted(events)
        for i, (seq, op, name) in enumerate(events):
            if op != "D":
                end = events[i + 1][0] if i + 1 < len(events) else None
                out.append((key, name, seq, end))
    return sorted(out, key=lambda r: (r[0], r[2]))


@st.composite
def interleavings(draw):  # noqa: ANN001, ANN201
    keys = draw(st.integers(min_value=3, max_value=12))
    changes, deliveries = {}, []
    for k in range(keys):
        seqs = draw(st.lists(st.integers(1, 40), min_size=1, max_size=5, unique=True))
        events = [(s, draw(st.sampled_from(["I", "U", "D"])), f"v{s}") for s in seqs]
        changes[f"K-{k}"] = events
        for seq, op, name in events:
            deliveries.append((draw(st.integers(0, 2)), draw(st.integers(0, 10**6)), f"K-{k}", seq, op, name))
    return changes, sorted(deliveries)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=interleavings())
def test_any_interleaving_of_the_changes_ends_in_the_same_history(spark, tmp_path_factory, case):
    from ingestion.core.storage import LocalStorage
    from transforms.silver.cdc import tombstone_tag
    from transforms.silver.scd2 import apply_scd2
    from transforms.silver.silver import silver_tag

    changes, deliveries = case
    lake = LocalStorage(tmp_path_factory.mktemp("scd2"))
    ds = accounts()
    schema = (
        "id string, name string, balance double, _change_op string, _change_seq long, _source_path string, "
        "_source_sha256 string, _source_row long, _ingested_at timestamp, _batch_id long"
    )
    now = datetime.now(timezone.utc)
    for batch in range(3):  # many keys per Spark run; the delivery order inside a batch is random
        rows = [
            (key, None if op == "D" else name, None, op, seq, f"b{batch}.jsonl", "sha", i, now, batch)
            for i, (_, _, key, seq, op, name) in enumerate(d for d in deliveries if d[0] == batch)
        ]
        if rows:
            frame = spark.createDataFrame(rows, schema)
            tags = {"tag": silver_tag("accounts", batch), "tombstone": tombstone_tag("accounts", batch)}
            apply_scd2(spark, lake, frame, ds, **tags)
    got = history(spark, lake).collect()
    assert [tuple(r) for r in got] == oracle(changes)
