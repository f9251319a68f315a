"""The contract's checks compiled to Spark: reasons, null semantics, anchoring, fallbacks."""

import pandera.pyspark as pa
import pyspark.sql.functions as F
import pyspark.sql.types as T
import pytest
from chispa import assert_df_equality

from ingestion.contracts import Dataset, RowRule
from transforms.silver.expectations import (
    apply_plan,
    builder_for,
    compile_plan,
    register_builder,
    registered_checks,
)


def contract(model, **kw) -> Dataset:  # noqa: ANN001
    args = dict(name="t", landing="t/*.csv", columns=lambda: model, primary_key=("id",))
    args.update(kw)
    return Dataset(**args)


class Things(pa.DataFrameModel):
    id: T.StringType() = pa.Field(nullable=False)
    code: T.StringType() = pa.Field(nullable=True, str_matches=r"b+")
    n: T.IntegerType() = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 5})
    kind: T.StringType() = pa.Field(nullable=False, isin=["x", "y"])


SCHEMA = "id string, code string, n int, kind string"


def evaluate(spark, ds: Dataset, rows: list[tuple], schema: str = SCHEMA):  # noqa: ANN001, ANN201
    df = spark.createDataFrame(rows, schema).withColumns(
        {
            "_cast_fail_0": F.lit(0).cast("long"),
            "_corrupt_record": F.lit(None).cast("string"),
            "_parse_error": F.lit(None).cast("string"),
        }
    )
    return apply_plan(df, compile_plan(ds))


def reasons(df):  # noqa: ANN001, ANN201
    return df.selectExpr("id", "inline(_errors)").orderBy("id", "column", "check")


def test_reasons_name_column_check_and_value(spark):
    out = evaluate(
        spark, contract(Things), [("1", "bb", 3, "x"), ("2", "abb", 9, "z"), ("3", None, None, None)]
    )
    expected = spark.createDataFrame(
        [
            ("2", "code", "str_matches", "abb"),  # anchored at the start: "abb" does not match ^b+
            ("2", "kind", "isin", "z"),
            ("2", "n", "in_range", "9"),
            ("3", "kind", "not_nullable", None),  # null fails only nullability, never a value check
        ],
        "id string, column string, check string, value string",
    )
    assert_df_equality(reasons(out), expected, ignore_nullable=True)
    sev = {r["id"]: r["_severity"] for r in out.select("id", "_severity").collect()}
    assert sev == {"1": 0, "2": 3, "3": 3}


def test_worst_action_of_a_row_wins_and_rules_are_reasons(spark):
    ds = contract(
        Things,
        check_actions={"kind": "warn", "n.in_range": "drop"},
        rules=(RowRule(name="code_needs_n", expr="code IS NULL OR n IS NOT NULL", action="fail"),),
    )
    out = evaluate(spark, ds, [("1", "b", 3, "q"), ("2", "b", 7, "q"), ("3", "b", None, "x")])
    sev = {r["id"]: r["_severity"] for r in out.select("id", "_severity").collect()}
    assert sev == {"1": 1, "2": 2, "3": 4}
    rule = out.where("id = '3'").selectExpr("inline(_errors)").collect()
    assert [(r["column"], r["check"], r["value"]) for r in rule] == [(None, "code_needs_n", None)]


def test_keys_are_never_null_even_if_the_model_allows_it(spark):
    class Loose(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=True)

    plan = compile_plan(contract(Loose, check_actions={"id": "warn"}))
    assert [(e.column, e.check, e.action) for e in plan.expectations] == [
        ("id", "not_nullable", "quarantine")
    ]


def test_unique_columns_group_nulls_like_pandera(spark):
    class U(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        email: T.StringType() = pa.Field(nullable=True)

        class Config:
            unique = ["email"]

    out = evaluate(
        spark,
        contract(U),
        [("1", "a@x"), ("2", "a@x"), ("3", "b@x"), ("4", None), ("5", None)],
        "id string, email string",
    )
    got = [r["id"] for r in out.where("size(_errors) > 0").orderBy("id").collect()]
    assert got == ["1", "2", "4", "5"]


def test_a_check_without_builder_is_reported_not_skipped():
    class C(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        code: T.StringType() = pa.Field(unique_values_eq=["a"], str_length={"min_value": 1})

    plan = compile_plan(contract(C, check_actions={"code.unique_values_eq": "quarantine"}))
    assert [(u.key, u.declared_action, u.action) for u in plan.uncompiled] == [
        ("code.unique_values_eq", "quarantine", "fail")
    ]
    assert [e.key for e in plan.expectations] == ["id.not_nullable", "code.not_nullable", "code.str_length"]


def test_builders_cover_pandera_builtin_row_checks():
    for name in (
        "equal_to",
        "eq",
        "not_equal_to",
        "ne",
        "greater_than",
        "gt",
        "greater_than_or_equal_to",
        "ge",
        "less_than",
        "lt",
        "less_than_or_equal_to",
        "le",
        "in_range",
        "between",
        "isin",
        "notin",
        "str_matches",
        "str_contains",
        "str_startswith",
        "str_endswith",
        "str_length",
    ):
        assert builder_for(name) is not None, name
    assert builder_for("unique_values_eq") is None  # a whole-column check: batch-level fallback


def test_register_builder_for_a_custom_check(spark):
    @register_builder("hw_even")
    def _even(c, stats):  # noqa: ANN001, ANN202
        return c % 2 == 0

    try:
        assert "hw_even" in registered_checks()
        col = builder_for("hw_even")(F.col("n"), {})
        got = spark.createDataFrame([(2,), (3,), (None,)], "n int").select(col.alias("ok")).collect()
        assert [r["ok"] for r in got] == [True, False, None]
    finally:
        from transforms.silver import expectations

        expectations._BUILDERS.pop("hw_even")


@pytest.mark.parametrize("pattern", [r"^b+", r"b+"])
def test_str_matches_is_anchored_at_start_not_end(spark, pattern):
    stats = {"pattern": pattern}
    col = builder_for("str_matches")(F.col("s"), stats)
    got = spark.createDataFrame([("bbx",), ("xbb",)], "s string").select(col.alias("ok")).collect()
    assert [r["ok"] for r in got] == [True, False]
