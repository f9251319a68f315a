"""Replay: quarantined rows re-validated after a fix move into silver exactly once."""

import importlib

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from chispa import assert_df_equality

from ingestion import lake as layout
from ingestion.contracts import Catalog, Csv, Dataset
from ingestion.core.spark.delta import table_version
from transforms.silver import curate, replay

COLS = ["id", "status", "ts"]


def dataset(allowed: list[str]) -> Dataset:
    def columns():  # noqa: ANN202
        class Tickets(pa.DataFrameModel):
            id: T.StringType() = pa.Field(nullable=False)
            status: T.StringType() = pa.Field(isin=allowed)
            ts: T.TimestampType() = pa.Field(nullable=False)

        return Tickets

    return Dataset(
        name="tickets",
        landing="tickets/*.csv",
        format=Csv(),
        columns=columns,
        primary_key=("id",),
        order_by="ts",
    )


def row(i: str, status: str, ts: str) -> dict:
    return {"id": i, "status": status, "ts": ts}


def silver(spark, lake):  # noqa: ANN001, ANN201
    return (
        spark.read.format("delta")
        .load(lake.uri(layout.silver_table("tickets")))
        .select("id", "status")
        .orderBy("id")
    )


def quarantine(spark, lake):  # noqa: ANN001, ANN201
    return spark.read.format("delta").load(lake.uri(layout.quarantine_rows_table("tickets")))


@pytest.fixture
def curated(spark, lake, write_bronze):  # noqa: ANN001, ANN201
    """Silver holds a, b; quarantine holds b (newer, 'hold'), c ('hold'), d ('bogus')."""
    write_bronze(
        "tickets",
        COLS,
        [
            row("a", "open", "2026-11-01 10:00:00"),
            row("b", "open", "2026-11-01 10:00:00"),
        ],
        batch=1,
    )
    write_bronze(
        "tickets",
        COLS,
        [
            row("b", "hold", "2026-11-01 11:00:00"),
            row("c", "hold", "2026-11-01 11:00:00"),
            row("d", "bogus", "2026-11-01 11:00:00"),
        ],
        batch=2,
    )
    rec = curate(spark, lake, Catalog([dataset(["open", "closed"])]), "tickets")
    assert rec.rows_quarantined == 3
    return Catalog([dataset(["open", "closed", "hold"])])  # the fix: "hold" is a valid status


@pytest.mark.floor
def test_replay_after_contract_fix_moves_passing_rows_once(spark, lake, curated):
    rec = replay(spark, lake, curated, "tickets")
    assert rec.status == "succeeded", rec.error
    assert (rec.rows_read, rec.rows_written, rec.rows_quarantined) == (3, 2, 1)
    exp = spark.createDataFrame([("a", "open"), ("b", "hold"), ("c", "hold")], "id string, status string")
    assert_df_equality(silver(spark, lake), exp, ignore_nullable=True)
    left = quarantine(spark, lake).selectExpr("id", "inline(_errors)").collect()
    assert [(r["id"], r["column"], r["check"], r["value"]) for r in left] == [
        ("d", "status", "isin", "bogus")
    ]
    silver_v = table_version(spark, lake.uri(layout.silver_table("tickets")))
    again = replay(spark, lake, curated, "tickets")
    assert (again.rows_read, again.rows_written) == (1, 0)
    assert table_version(spark, lake.uri(layout.silver_table("tickets"))) == silver_v


def test_replayed_row_never_rolls_back_a_newer_silver_row(spark, lake, curated, write_bronze):
    write_bronze("tickets", COLS, [row("c", "closed", "2026-11-02 09:00:00")], batch=3)
    assert curate(spark, lake, curated, "tickets").rows_written == 1
    rec = replay(spark, lake, curated, "tickets")
    assert rec.details["not_newer"] == 1  # c's quarantined 'hold' is older than silver's 'closed'
    exp = spark.createDataFrame([("a", "open"), ("b", "hold"), ("c", "closed")], "id string, status string")
    assert_df_equality(silver(spark, lake), exp, ignore_nullable=True)
    assert [r["id"] for r in quarantine(spark, lake).select("id").collect()] == ["d"]


def test_crash_between_silver_merge_and_quarantine_cleanup(spark, lake, curated, monkeypatch):
    job = importlib.import_module("transforms.silver.replay")

    def crash(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("killed after the MERGE")

    monkeypatch.setattr(job, "_clean_up", crash)
    with pytest.raises(RuntimeError):
        replay(spark, lake, curated, "tickets")
    silver_v = table_version(spark, lake.uri(layout.silver_table("tickets")))
    assert quarantine(spark, lake).count() == 3
    monkeypatch.undo()
    rec = replay(spark, lake, curated, "tickets")
    assert rec.status == "succeeded"
    assert table_version(spark, lake.uri(layout.silver_table("tickets"))) == silver_v  # skipped
    assert quarantine(spark, lake).count() == 1
    exp = spark.createDataFrame([("a", "open"), ("b", "hold"), ("c", "hold")], "id string, status string")
    assert_df_equality(silver(spark, lake), exp, ignore_nullable=True)
