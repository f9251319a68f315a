"""One plan compiler for silver and gold; the empty plan curates through the same path unchecked."""

import datetime as dt
import re
from decimal import Decimal

import pandera.pyspark as pa
import pyspark.sql.types as T
from chispa import assert_df_equality
from test_curate import ORDERS, order, silver

from ingestion import lake as layout
from ingestion.contracts import Dataset, Gold
from transforms.gold.publish import check_contract
from transforms.silver import curate
from transforms.silver.expectations import Plan
from transforms.silver.pipeline import prepare


class Scores(pa.DataFrameModel):
    id: T.StringType() = pa.Field(nullable=False, str_matches=r"^S-\d+$")
    grade: T.StringType() = pa.Field(isin=["a", "b", "c"], nullable=True)
    score: T.IntegerType() = pa.Field(ge=0, le=100, nullable=True)
    tag: T.StringType() = pa.Field(nullable=False)

    class Config:
        unique = ["tag"]


ROWS = [  # (id, grade, score, tag)
    ("S-1", "a", 50, "t1"),
    ("S-2", "z", 101, "t2"),  # isin, le
    ("X-3", "b", -1, "t3"),  # str_matches, ge
    ("S-4", None, None, None),  # tag not_nullable
    ("S-5", "q", 7, "t5"),  # isin; tag t5 twice: unique
    ("S-6", "c", 8, "t5"),
]


def test_gold_and_silver_report_the_same_failures_for_the_same_contract(spark):
    ds = Dataset(name="scores", landing="scores/*", columns=lambda: Scores, primary_key=("id",))
    gold = Gold(
        name="scores_gold",
        build=lambda s, f: f["scores"],
        inputs=("scores",),
        keys=("id",),
        columns=lambda: Scores,
    )
    bronze = spark.createDataFrame(
        [
            (i, g, None if s is None else str(s), t, "p", "sha", n + 1, dt.datetime(2026, 1, 1), 1)
            for n, (i, g, s, t) in enumerate(ROWS)
        ],
        "id string, grade string, score string, tag string, _source_path string, _source_sha256 string, "
        "_source_row long, _ingested_at timestamp, _batch_id long",
    )
    prepared = prepare(ds, bronze)
    try:
        silver_counts = dict(prepared.rule_counts)
    finally:
        prepared.release()
    typed = spark.createDataFrame(ROWS, "id string, grade string, score int, tag string")
    problems = check_contract(gold, typed)
    gold_counts = {}
    for p in problems:
        m = re.fullmatch(r"(?P<key>[^(]+?)(?:\((?P<args>.*)\))? failed on (?P<n>\d+) row\(s\)", p)
        assert m, p
        gold_counts[m["key"]] = int(m["n"])
    expected = {
        "id.str_matches": 1,
        "grade.isin": 2,
        "score.greater_than_or_equal_to": 1,
        "score.less_than_or_equal_to": 1,
        "tag.not_nullable": 1,
        "tag.unique": 2,
    }
    assert silver_counts == expected
    assert gold_counts == expected
    assert "score.greater_than_or_equal_to(0) failed on 1 row(s)" in problems


def test_the_empty_plan_curates_every_row_without_validating(spark, lake, catalog, write_bronze):
    write_bronze(
        "orders",
        ORDERS,
        [
            order("O-0001"),
            order("O-0002", status="lost"),  # isin: not checked
            order("O-0003", amount="12.345", ship_date="2026-10-01"),  # rounded; row rule not checked
            order("O-0004", amount="abc"),  # does not cast: null, not reported
            order("O-0001", status="shipped", updated_at="2026-11-02T09:00:00"),  # newer: wins
        ],
        batch=1,
    )
    rec = curate(spark, lake, catalog, "orders", plan=Plan.empty())
    assert rec.status == "succeeded", rec.error
    assert (rec.rows_read, rec.rows_written, rec.rows_quarantined) == (5, 4, 0)
    assert rec.rules == {} and rec.details["validation"] is False
    expected = spark.createDataFrame(
        [
            ("O-0001", "shipped", Decimal("10.00")),
            ("O-0002", "lost", Decimal("10.00")),
            ("O-0003", "paid", Decimal("12.35")),
            ("O-0004", "paid", None),
        ],
        "order_id string, status string, amount decimal(12,2)",
    )
    got = silver(spark, lake, "orders", *expected.columns).orderBy("order_id")
    assert_df_equality(got, expected, ignore_nullable=True)
    assert not (lake.root / layout.quarantine_rows_table("orders")).exists()
