"""Profiles and drift on known distributions."""

from __future__ import annotations

import math
import random

import pytest

from transforms.assets.profile import compare_profiles, profile_frame, psi


def _frame(spark, values, *, cats=None, schema="x double, c string"):
    cats = cats or ["a"] * len(values)
    return spark.createDataFrame(list(zip(values, cats, strict=True)), schema)


def test_psi_of_identical_fractions_is_zero_and_grows_with_the_shift():
    assert psi([0.1] * 10, [0.1] * 10) == pytest.approx(0.0, abs=1e-12)
    small = psi([0.1] * 10, [0.12] * 5 + [0.08] * 5)
    big = psi([0.1] * 10, [0.0] * 5 + [0.2] * 5)
    assert 0 < small < 0.1 < 0.25 < big
    # ε-smoothing keeps an empty bin finite
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


@pytest.mark.spark
@pytest.mark.floor
def test_identical_data_has_no_drift_and_a_shift_is_flagged(spark):
    rnd = random.Random(11)
    base = [rnd.gauss(100, 15) for _ in range(2000)]
    same = list(base)
    rnd.shuffle(same)
    shifted = [v + 15 for v in base]  # one standard deviation

    prev = profile_frame(_frame(spark, base))
    cur_same = profile_frame(_frame(spark, same), reference=prev)
    cur_shift = profile_frame(_frame(spark, shifted), reference=prev)
    same_drift = compare_profiles(prev, cur_same)
    shift_drift = compare_profiles(prev, cur_shift)

    assert same_drift["columns"]["x"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert same_drift["columns"]["x"]["ks"] == pytest.approx(0.0, abs=1e-9)
    assert same_drift["verdict"] == "stable"
    x = shift_drift["columns"]["x"]
    assert x["psi"] > 0.25 and x["verdict"] == "drift"
    # KS of N(0,1) vs N(1,1) is 2*Phi(0.5)-1 = 0.383; evaluated at the 101 quantile points
    assert x["ks"] == pytest.approx(0.383, abs=0.03)
    assert shift_drift["verdict"] == "drift"
    assert shift_drift["columns"]["c"]["verdict"] == "ok"


@pytest.mark.spark
def test_small_shift_warns_and_thresholds_are_per_dataset(spark):
    rnd = random.Random(5)
    base = [rnd.gauss(0, 1) for _ in range(3000)]
    prev = profile_frame(_frame(spark, base))
    cur = profile_frame(_frame(spark, [v + 0.35 for v in base]), reference=prev)

    default = compare_profiles(prev, cur)
    assert 0.1 <= default["columns"]["x"]["psi"] < 0.25
    assert default["columns"]["x"]["verdict"] == "warn" and default["verdict"] == "warn"
    strict = compare_profiles(prev, cur, warn=0.02, drift=0.05)
    assert strict["columns"]["x"]["verdict"] == "drift"


@pytest.mark.spark
def test_categories_new_vanished_and_null_rates(spark):
    prev_rows = [(1.0, "DE")] * 50 + [(1.0, "FR")] * 50
    cur_rows = [(1.0, "DE")] * 50 + [(1.0, "SE")] * 30 + [(None, None)] * 20
    schema = "x double, c string"
    prev = profile_frame(spark.createDataFrame(prev_rows, schema))
    cur = profile_frame(spark.createDataFrame(cur_rows, schema), reference=prev)
    d = compare_profiles(prev, cur)

    c = d["columns"]["c"]
    assert c["new_categories"] == ["SE"] and c["vanished_categories"] == ["FR"]
    assert c["verdict"] == "drift"
    assert c["null_rate"] == pytest.approx(0.2) and c["prev_null_rate"] == 0.0
    # x did not move in distribution but lost 20 % of its values: a null-rate warning
    assert d["columns"]["x"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert d["columns"]["x"]["verdict"] == "warn"
    assert d["row_change"] == pytest.approx(0.0)


@pytest.mark.spark
def test_profile_holds_quantiles_counts_nulls_and_skips_keys(spark):
    import datetime as dt

    rows = [
        (f"K{i}", float(i), dt.date(2026, 1, 1) + dt.timedelta(days=i % 10), "a" if i % 4 else None)
        for i in range(100)
    ]
    df = spark.createDataFrame(rows, "k string, x double, d date, c string")
    p = profile_frame(df, skip=("k",))

    assert p["rows"] == 100
    assert p["columns"]["k"]["kind"] == "skipped" and p["columns"]["k"]["reason"] == "key"
    x = p["columns"]["x"]
    assert len(x["quantiles"]) == 101 and x["quantiles"][0] == 0.0 and x["quantiles"][-1] == 99.0
    assert x["cdf"][-1] == 1.0 and x["min"] == 0.0 and x["max"] == 99.0
    assert p["columns"]["d"]["kind"] == "date"
    c = p["columns"]["c"]
    assert c["counts"] == {"a": 75} and c["nulls"] == 25 and c["null_rate"] == 0.25
    excluded = profile_frame(df, skip=("k",), exclude=("d",))["columns"]["d"]
    assert excluded["kind"] == "skipped" and excluded["reason"] == "excluded from drift"


def test_first_version_is_the_baseline():
    cur = {"rows": 3, "columns": {}}
    assert compare_profiles(None, cur)["verdict"] == "baseline"


def test_removed_and_added_columns_are_drift():
    prev = {"rows": 1, "columns": {"a": {"kind": "numeric", "type": "double"}}}
    cur = {"rows": 1, "columns": {"b": {"kind": "numeric", "type": "double"}}}
    d = compare_profiles(prev, cur)
    assert d["columns"]["a"]["note"] == "column removed" and d["columns"]["b"]["note"] == "column added"
    assert d["verdict"] == "drift"
