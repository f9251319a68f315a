"""Bronze strings to contract types: try semantics, formats, blanks, missing columns."""

import datetime as dt
from decimal import Decimal

import pandera.pyspark as pa
import pyspark.sql.types as T
from chispa import assert_df_equality

from ingestion.contracts import Dataset, JsonLines
from transforms.silver.casting import CAST_FAIL, RAW, bit_set, cast_bronze
from transforms.silver.expectations import Plan

LINEAGE = (
    "_source_path string, _source_sha256 string, _source_row long, _ingested_at timestamp, _batch_id long"
)


class Typed(pa.DataFrameModel):
    k: T.StringType() = pa.Field()
    i: T.IntegerType() = pa.Field(nullable=True)
    d: T.DecimalType(6, 2) = pa.Field(nullable=True)
    day: T.DateType() = pa.Field(nullable=True)
    at: T.TimestampType() = pa.Field(nullable=True)
    flag: T.BooleanType() = pa.Field(nullable=True)
    added: T.LongType() = pa.Field(nullable=True)  # not in bronze yet


DS = Dataset(
    name="typed",
    landing="t/*",
    format=JsonLines(date_format="dd.MM.yyyy", timestamp_format="yyyy-MM-dd HH:mm"),
    columns=lambda: Typed,
    primary_key=("k",),
    schema_policy="evolve",
)


def bronze(spark, rows):  # noqa: ANN001, ANN201
    return spark.createDataFrame(
        [(*r, "p", "s", n + 1, dt.datetime(2026, 1, 1), 1) for n, r in enumerate(rows)],
        "k string, i string, d string, day string, at string, flag string, extra string, " + LINEAGE,
    )


def test_casts_with_formats_and_try_semantics(spark):
    df = cast_bronze(
        DS,
        bronze(
            spark,
            [
                ("ok", " 12 ", "1234.5", "31.12.2026", "2026-11-01 10:30", "true", "x"),
                ("bad", "1.5", "12345678", "2026-12-31", "2026-11-01T10:30", "maybe", None),
                ("blank", "", "  ", "", None, None, None),
            ],
        ),
    )
    typed = df.select("k", "i", "d", "day", "at", "flag", "added", "extra")
    expected = spark.createDataFrame(
        [
            (
                "ok",
                12,
                Decimal("1234.50"),
                dt.date(2026, 12, 31),
                dt.datetime(2026, 11, 1, 10, 30),
                True,
                None,
                "x",
            ),
            ("bad", None, None, None, None, None, None, None),
            ("blank", None, None, None, None, None, None, None),
        ],
        "k string, i int, d decimal(6,2), day date, at timestamp, flag boolean, added long, extra string",
    )
    assert_df_equality(typed, expected, ignore_nullable=True)
    # Castable columns in order: i, d, day, at, flag, added. "bad" failed all but `added`;
    # blanks are absent values, not failures.
    flags = {
        r["k"]: [r[f"f{j}"] for j in range(6)]
        for r in df.select("k", *[bit_set(CAST_FAIL, j).alias(f"f{j}") for j in range(6)]).collect()
    }
    assert flags == {
        "ok": [False] * 6,
        "bad": [True, True, True, True, True, False],
        "blank": [False] * 6,
    }
    raw = df.where("k = 'bad'").select(f"{RAW}.*").first().asDict()
    assert raw == {
        "k": "bad",
        "i": "1.5",
        "d": "12345678",
        "day": "2026-12-31",
        "at": "2026-11-01T10:30",
        "flag": "maybe",
        "added": None,
    }


def test_without_validation_only_typed_columns(spark):
    df = cast_bronze(DS, bronze(spark, [("ok", "1", "1", None, None, None, None)]), Plan.empty())
    assert RAW not in df.columns and not [c for c in df.columns if c.startswith(CAST_FAIL)]


def test_a_decimal_that_would_be_rounded_is_a_cast_error(spark):
    rows = [
        ("exact", "12.3"),
        ("zeros", "12.3400"),
        ("sci", "1.25E1"),
        ("rounds", "12.345"),
        ("tiny", "0.001"),
        ("neg", "-9999.994"),
        ("wide", "1234.56"),
    ]
    df = cast_bronze(DS, bronze(spark, [(k, None, d, None, None, None, None) for k, d in rows]))
    got = df.select("k", "d", bit_set(CAST_FAIL, 1).alias("failed")).orderBy("k")
    expected = spark.createDataFrame(
        [
            ("exact", Decimal("12.30"), False),
            ("neg", None, True),
            ("rounds", None, True),
            ("sci", Decimal("12.50"), False),
            ("tiny", None, True),
            ("wide", Decimal("1234.56"), False),
            ("zeros", Decimal("12.34"), False),
        ],
        "k string, d decimal(6,2), failed boolean",
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    # Without validation (benchmarks only) try_cast's rounding stands.
    off = cast_bronze(DS, bronze(spark, [("rounds", None, "12.345", None, None, None, None)]), Plan.empty())
    assert off.first()["d"] == Decimal("12.35")
