"""Publish: silver -> gold with the contract checked first, idempotent by silver versions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import gold_fixtures as gf
import pytest
from chispa import assert_df_equality

from ingestion.contracts import Catalog, Gold
from ingestion.core.lake import gold_table
from ingestion.core.runs import RunLedger
from ingestion.core.spark.delta import table_version

pytestmark = pytest.mark.spark

FEATURES = (
    "customer_id string, country string, segment string, order_count bigint, cancelled_count bigint, "
    "total_amount double, mean_amount double, last_order_date date, days_since_last_order int, "
    "as_of_date date"
)


def _publish(spark, lake, catalog, settings, dataset="orders", **kw):
    from transforms.gold import publish

    return publish(spark, lake, catalog, dataset, settings=settings, **kw)


def _gold(spark, lake, name="customer_features", version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(lake.uri(gold_table(name)))


def _base_silver(spark, lake):
    gf.write_silver(
        spark,
        lake,
        "customers",
        [gf.customer(1, "DE", "consumer"), gf.customer(2, "FR", "business"), gf.customer(3, "NL", None)],
        bronze_end=0,
    )
    gf.write_silver(
        spark,
        lake,
        "orders",
        [
            gf.order(1, 1, "10.00", 0),
            gf.order(2, 1, "30.00", 4),
            gf.order(3, 2, "5.50", 2),
            gf.order(4, 2, "99.00", 9, status="cancelled"),
            gf.order(5, 9, "1.00", 1),  # customer 9 is not in the CRM: left out
        ],
        bronze_end=0,
    )


@pytest.mark.floor
def test_publish_builds_the_feature_view_from_pinned_silver(spark, lake, catalog, lake_settings):
    _base_silver(spark, lake)
    rec = _publish(spark, lake, catalog, lake_settings)

    assert rec.status == "succeeded"
    assert rec.details["inputs"] == {"orders": 0, "customers": 0}
    assert rec.details["changed"] is True and rec.details["inserted"] == 3
    d = dt.date
    expected = spark.createDataFrame(
        [
            ("C-001", "DE", "consumer", 2, 0, 40.0, 20.0, d(2026, 1, 5), 5, d(2026, 1, 10)),
            ("C-002", "FR", "business", 1, 1, 5.5, 5.5, d(2026, 1, 3), 7, d(2026, 1, 10)),
            ("C-003", "NL", None, 0, 0, 0.0, None, None, None, d(2026, 1, 10)),
        ],
        FEATURES,
    )
    assert_df_equality(_gold(spark, lake), expected, ignore_row_order=True, ignore_nullable=True)
    # the commit names the silver versions it was built from
    from transforms.gold import gold_commits

    commits = gold_commits(spark, lake, "customer_features")
    assert [(c.version, c.inputs) for c in commits] == [(rec.output_version, {"orders": 0, "customers": 0})]
    ledger = RunLedger(spark, lake).latest(job="publish")
    assert ledger[0]["run_id"] == rec.run_id and ledger[0]["output_version"] == rec.output_version


def test_rerun_on_the_same_silver_is_skipped_without_a_commit(spark, lake, catalog, lake_settings):
    _base_silver(spark, lake)
    first = _publish(spark, lake, catalog, lake_settings)
    again = _publish(spark, lake, catalog, lake_settings)

    assert again.status == "skipped"
    assert again.output_version == first.output_version
    assert table_version(spark, lake.uri(gold_table("customer_features"))) == first.output_version


def test_silver_moving_without_changing_gold_makes_no_commit(spark, lake, catalog, lake_settings):
    _base_silver(spark, lake)
    first = _publish(spark, lake, catalog, lake_settings)
    # one more order of a customer unknown to the CRM, on an early date: no gold row changes
    rows = [
        gf.order(1, 1, "10.00", 0),
        gf.order(2, 1, "30.00", 4),
        gf.order(3, 2, "5.50", 2),
        gf.order(4, 2, "99.00", 9, status="cancelled"),
        gf.order(5, 9, "1.00", 1),
        gf.order(6, 9, "2.00", 1),
    ]
    gf.write_silver(spark, lake, "orders", rows, bronze_end=1)
    rec = _publish(spark, lake, catalog, lake_settings)

    assert rec.status == "succeeded" and rec.details["changed"] is False
    assert rec.details["inputs"] == {"orders": 1, "customers": 0}
    assert table_version(spark, lake.uri(gold_table("customer_features"))) == first.output_version
    # ... and the next run with the same silver is skipped outright
    assert _publish(spark, lake, catalog, lake_settings).status == "skipped"


def test_merge_rewrites_only_the_rows_that_changed(spark, lake, catalog, lake_settings):
    _base_silver(spark, lake)
    first = _publish(spark, lake, catalog, lake_settings)
    before = _gold(spark, lake, version=first.output_version)
    # an amount update for customer 2, and customer 3 leaves the CRM
    gf.write_silver(
        spark,
        lake,
        "customers",
        [gf.customer(1, "DE", "consumer"), gf.customer(2, "FR", "business")],
        bronze_end=1,
    )
    gf.write_silver(
        spark,
        lake,
        "orders",
        [
            gf.order(1, 1, "10.00", 0),
            gf.order(2, 1, "30.00", 4),
            gf.order(3, 2, "7.50", 2),
            gf.order(4, 2, "99.00", 9, status="cancelled"),
            gf.order(5, 9, "1.00", 1),
        ],
        bronze_end=1,
    )
    rec = _publish(spark, lake, catalog, lake_settings)

    assert rec.details["changed"] is True
    assert (rec.details["inserted"], rec.details["updated"], rec.details["deleted"]) == (0, 1, 1)
    assert rec.output_version == first.output_version + 1
    now = _gold(spark, lake).orderBy("customer_id").collect()
    assert [(r.customer_id, r.total_amount) for r in now] == [("C-001", 40.0), ("C-002", 7.5)]
    # the version before still reads as it was (time travel)
    assert before.count() == 3


def test_contract_violation_commits_nothing_and_is_recorded(spark, lake, catalog, lake_settings):
    from pyspark.sql import functions as F

    from transforms.gold import GoldContractError
    from transforms.gold.features import customer_features

    _base_silver(spark, lake)
    good = _publish(spark, lake, catalog, lake_settings)

    def broken(spark_, silver):  # negative totals and a column the contract does not know
        return (
            customer_features(spark_, silver)
            .withColumn("total_amount", -F.col("total_amount") - 1)
            .withColumn("debug", F.lit(1))
        )

    orders = catalog.get("orders")
    bad = Catalog(
        [
            dataclasses.replace(orders, gold=dataclasses.replace(orders.gold, build=broken)),
            catalog.get("customers"),
        ]
    )
    with pytest.raises(GoldContractError) as err:
        _publish(spark, lake, bad, lake_settings, force=True)

    assert "total_amount.greater_than_or_equal_to(0) failed on 3 row(s)" in str(err.value)
    assert "columns not in the gold contract: debug" in str(err.value)
    assert table_version(spark, lake.uri(gold_table("customer_features"))) == good.output_version
    last = RunLedger(spark, lake).latest(job="publish", limit=1)[0]
    assert last["status"] == "failed" and "GoldContractError" in last["error"]


def test_overwrite_partitions_replaces_only_partitions_whose_rows_changed(
    spark, lake, catalog, lake_settings
):
    orders = catalog.get("orders")
    by_country = dataclasses.replace(
        orders.gold,
        name="country_features",
        write="overwrite_partitions",
        keys=("customer_id",),
        partition_by=("country",),
    )
    cat = Catalog([dataclasses.replace(orders, gold=by_country), catalog.get("customers")])
    gf.write_silver(
        spark,
        lake,
        "customers",
        [gf.customer(1, "DE"), gf.customer(2, "FR"), gf.customer(3, "NL")],
        bronze_end=0,
    )
    gf.write_silver(
        spark,
        lake,
        "orders",
        [gf.order(1, 1, "10.00", 5), gf.order(2, 2, "20.00", 5), gf.order(3, 3, "30.00", 5)],
        bronze_end=0,
    )
    first = _publish(spark, lake, cat, lake_settings)
    uri = lake.uri(gold_table("country_features"))

    def files(country, version=None):
        df = _gold(spark, lake, "country_features", version).where(f"country = '{country}'")
        return set(df.inputFiles())

    de_before = files("DE")
    # FR's order changes, NL's customer leaves; DE is untouched
    gf.write_silver(spark, lake, "customers", [gf.customer(1, "DE"), gf.customer(2, "FR")], bronze_end=1)
    gf.write_silver(
        spark,
        lake,
        "orders",
        [gf.order(1, 1, "10.00", 5), gf.order(2, 2, "25.00", 5), gf.order(3, 3, "30.00", 5)],
        bronze_end=1,
    )
    rec = _publish(spark, lake, cat, lake_settings)

    assert rec.output_version == first.output_version + 1
    assert sorted(p["country"] for p in rec.details["partitions_replaced"]) == ["FR", "NL"]
    assert files("DE") == de_before  # same files: the partition was not rewritten
    rows = {
        r.customer_id: (r.country, r.total_amount) for r in _gold(spark, lake, "country_features").collect()
    }
    assert rows == {"C-001": ("DE", 10.0), "C-002": ("FR", 25.0)}
    from delta.tables import DeltaTable

    assert DeltaTable.forPath(spark, uri).history(1).first()["operation"] == "WRITE"


def test_gold_table_uses_only_features_azure_ml_reads_and_keeps_history(spark, lake, catalog, lake_settings):
    from delta.tables import DeltaTable

    _base_silver(spark, lake)
    _publish(spark, lake, catalog, lake_settings)
    detail = DeltaTable.forPath(spark, lake.uri(gold_table("customer_features"))).detail().first()
    props = detail["properties"]

    assert props["delta.enableDeletionVectors"] == "false"
    assert props["delta.logRetentionDuration"] == "interval 120 days"  # 90 + slack for late registers
    assert props["delta.deletedFileRetentionDuration"] == "interval 120 days"
    assert "delta.columnMapping.mode" not in props
    features = set(detail["tableFeatures"] or []) if "tableFeatures" in detail.asDict() else set()
    assert not features & {"deletionVectors", "columnMapping"}


def test_unknown_dataset_and_missing_silver_are_clear_errors(spark, lake, catalog, lake_settings):
    from ingestion.core.errors import UnknownDatasetError
    from transforms.gold import MissingSilverError, NoGoldDeclaredError

    with pytest.raises(UnknownDatasetError):
        _publish(spark, lake, catalog, lake_settings, dataset="nope")
    with pytest.raises(NoGoldDeclaredError, match="customers"):
        _publish(spark, lake, catalog, lake_settings, dataset="customers")
    gf.write_silver(spark, lake, "orders", [gf.order(1, 1, "10.00", 0)], bronze_end=0)
    with pytest.raises(MissingSilverError, match="silver/customers"):
        _publish(spark, lake, catalog, lake_settings)
    last = RunLedger(spark, lake).latest(job="publish", limit=1)[0]
    assert last["status"] == "failed" and json.loads(last["details"])["gold"] == "customer_features"


def test_gold_declaration_rejects_contradictions():
    from ingestion.core.errors import ContractError

    with pytest.raises(ContractError, match="needs gold.keys"):
        Gold(name="x", build="a.b:c", inputs=("orders",), write="merge")
    with pytest.raises(ContractError, match="needs gold.partition_by"):
        Gold(name="x", build="a.b:c", inputs=("orders",), write="overwrite_partitions")
    with pytest.raises(ContractError, match="package.module:function"):
        Gold(name="x", build="not a path", inputs=("orders",), keys=("k",))
    with pytest.raises(ContractError, match="gold.build 'no.such_module:f'"):
        Gold(name="x", build="no.such_module:f", inputs=("orders",), keys=("k",)).transform()
