"""End to end on any Spark the platform supports: publish -> register -> publish -> register.

Uses the ``uri_folder`` asset type (a Parquet snapshot of the pinned version), which needs no
Azure ML SDK, so the Spark side of registering (pins, snapshot check, profiles, drift, vacuum
guard) also runs on the platform floor, where mltable is not installed.
"""

from __future__ import annotations

import gold_fixtures as gf
import pytest

pytestmark = pytest.mark.spark


@pytest.mark.floor
def test_two_batches_end_with_two_versions_and_drift_on_the_shifted_column(
    spark, lake, catalog, lake_settings
):
    from transforms.assets import LocalRegistry, VacuumRefusedError, register
    from transforms.assets.vacuum import vacuum
    from transforms.gold import publish

    cat = gf.with_asset_type(catalog, "uri_folder")
    gf.write_silver(spark, lake, "customers", gf.customers(12), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(12, 60, seed=4), bronze_end=0)
    publish(spark, lake, cat, "orders", settings=lake_settings)
    v1 = register(spark, lake, cat, "orders", settings=lake_settings)
    # batch 2: the same orders, every amount x4 (an update of one column upstream)
    gf.write_silver(spark, lake, "orders", gf.orders(12, 60, seed=4, scale=4.0), bronze_end=1)
    publish(spark, lake, cat, "orders", settings=lake_settings)
    v2 = register(spark, lake, cat, "orders", settings=lake_settings)
    again = register(spark, lake, cat, "orders", settings=lake_settings)

    assert [a.version for a in LocalRegistry(lake).versions("customer_features")] == [1, 2]
    assert again.status == "skipped"
    assert v2.drift["verdict"] == "drift" and set(v2.drifted) == {"total_amount", "mean_amount"}
    assert v2.drift["columns"]["order_count"]["psi"] == pytest.approx(0.0, abs=1e-9)
    old = spark.read.parquet(v1.asset.asset_uri)
    assert (
        old.exceptAll(
            spark.read.format("delta").option("versionAsOf", v1.asset.delta_version).load(v1.asset.table_uri)
        ).count()
        == 0
    )
    with pytest.raises(VacuumRefusedError, match="customer_features:1"):
        vacuum(spark, lake, cat, "orders", registry=LocalRegistry(lake), retain_hours=0)
