"""Gold's idempotency version (txnVersion) is its publish sequence: it strictly increases with
every change of the pins, a change of the declared inputs included, and continues above the
number a lake published with the old scheme (the sum of the input versions) holds."""

from __future__ import annotations

import importlib

import gold_fixtures as gf
import pytest
from chispa import assert_df_equality

from ingestion.core.lake import gold_table

pytestmark = pytest.mark.spark

GOLD = "customer_features"


def test_gold_txn_strictly_increases_when_an_input_is_removed_also_on_a_sum_scheme_lake(
    spark, lake, catalog, lake_settings, monkeypatch
):
    """Gold's txnVersion strictly increases with each change of its pins, whatever they are."""
    import dataclasses

    from ingestion.contracts import Catalog
    from ingestion.core.spark.commits import CommitIndex
    from transforms.gold import publish

    for n in (1, 2, 3):
        gf.write_silver(spark, lake, "customers", gf.customers(n), bronze_end=n)
    gf.write_silver(spark, lake, "orders", [gf.order(1, 1, "3.00", 0)], bronze_end=0)

    # A lake published by the code before the sequence: txn = the sum of the input versions.
    module = importlib.import_module("transforms.gold.publish")  # the package re-exports publish()
    monkeypatch.setattr(module, "publish_txn", lambda spark, storage, name, pins: sum(pins.values()))
    old = publish(spark, lake, catalog, "orders", settings=lake_settings)
    assert (old.status, old.details["inputs"], old.details["txn"]) == (
        "succeeded",
        {"customers": 2, "orders": 0},
        2,
    )
    monkeypatch.undo()

    # The declaration drops customers: the sum would be 0, below 2, and Delta would skip the write.
    orders = catalog.get("orders")
    assert orders.gold is not None
    gold = dataclasses.replace(orders.gold, build=_orders_only, inputs=("orders",))
    cat = Catalog([dataclasses.replace(orders, gold=gold)])
    rec = publish(spark, lake, cat, "orders", settings=lake_settings)
    assert (rec.status, rec.details["inputs"], rec.details["changed"]) == ("succeeded", {"orders": 0}, True)
    assert rec.details["txn"] == 3 and rec.output_version == old.output_version + 1
    last = CommitIndex(lake, gold_table(GOLD)).last()
    assert last is not None and str(last.tag) == f"headwater-gold-{GOLD}:3;inputs=orders@0"
    rows = spark.read.format("delta").load(lake.uri(gold_table(GOLD))).select("customer_id", "country")
    assert_df_equality(
        rows,
        spark.createDataFrame([("C-001", None)], "customer_id string, country string"),
        ignore_nullable=True,
    )

    # The same pins again reuse the number: a forced rebuild is a rerun Delta skips.
    again = publish(spark, lake, cat, "orders", settings=lake_settings, force=True)
    assert (again.details["txn"], again.output_version) == (3, rec.output_version)
    # customers comes back: the pins change again, the sequence moves on.
    rec = publish(spark, lake, catalog, "orders", settings=lake_settings)
    assert (rec.details["inputs"], rec.details["txn"]) == ({"customers": 2, "orders": 0}, 4)


def _orders_only(spark, inputs):  # noqa: ANN001, ANN202
    """customer_features without the CRM: customers known from their orders only."""
    from pyspark.sql import functions as F

    from transforms.gold.features import customer_features

    orders = inputs["orders"]
    crm = orders.select(
        "customer_id",
        F.lit(None).cast("string").alias("country"),
        F.lit(None).cast("string").alias("segment"),
    ).distinct()
    return customer_features(spark, {"orders": orders, "customers": crm})
