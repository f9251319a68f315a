"""VACUUM never removes files a live asset version reads."""

from __future__ import annotations

from pathlib import Path

import gold_fixtures as gf
import pytest

from ingestion.core.lake import gold_table

pytestmark = pytest.mark.spark
mltable = pytest.importorskip("mltable")


@pytest.fixture(scope="module")
def two_versions(spark, module_lake):
    """Two registered versions of gold; the tests below run in order (the last one vacuums)."""
    from ingestion.contracts import Catalog
    from transforms.assets import LocalRegistry, register
    from transforms.gold import publish

    lake_settings, lake = module_lake
    catalog = Catalog.discover()

    gf.write_silver(spark, lake, "customers", gf.customers(6), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(6, 20, seed=1), bronze_end=0)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    v1 = register(spark, lake, catalog, "orders", settings=lake_settings).asset
    gf.write_silver(spark, lake, "orders", gf.orders(6, 20, seed=1, scale=2.0), bronze_end=1)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    return LocalRegistry(lake), v1, lake, catalog


def _files(lake) -> set[str]:
    root = Path(lake.root) / gold_table("customer_features")
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


def test_vacuum_refuses_to_break_a_live_version_and_names_it(spark, two_versions):
    from transforms.assets import VacuumRefusedError
    from transforms.assets.vacuum import vacuum

    registry, v1, lake, catalog = two_versions
    before = _files(lake)
    with pytest.raises(VacuumRefusedError) as err:
        vacuum(spark, lake, catalog, "orders", registry=registry, retain_hours=0)

    assert "customer_features:1" in str(err.value) and ".parquet" in str(err.value)
    assert err.value.needed["customer_features:1"] >= 1
    assert _files(lake) == before  # nothing deleted
    pdf = mltable.load(str(Path(lake.root) / v1.path)).to_pandas_dataframe()
    assert len(pdf) == 6  # the pinned version still loads
    # Delta's retention check is back on for everyone else
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled") == "true"


def test_default_retention_keeps_everything_recent(spark, two_versions):
    from transforms.assets.vacuum import vacuum

    registry, _, lake, catalog = two_versions
    before = _files(lake)
    res = vacuum(spark, lake, catalog, "orders", registry=registry)
    assert res.retain_hours == (90 + 30) * 24 and res.deleted == [] and _files(lake) == before


def test_vacuum_after_archiving_removes_files_but_keeps_mltables(spark, two_versions):
    from transforms.assets.vacuum import vacuum

    registry, v1, lake, catalog = two_versions
    registry.set_archived(v1.name, v1.version)
    dry = vacuum(spark, lake, catalog, "orders", registry=registry, retain_hours=0, dry_run=True)
    assert (
        dry.deleted and _files(lake) >= {Path(p).name for p in dry.deleted} | set()
    )  # dry run deletes nothing
    before = _files(lake)
    res = vacuum(spark, lake, catalog, "orders", registry=registry, retain_hours=0)

    assert len(res.deleted) >= 1 and res.protected == {}
    assert len(_files(lake)) == len(before) - len(res.deleted)
    assert (Path(lake.root) / v1.path / "MLTable").exists()  # _mltable is not Delta's to vacuum
    current = spark.read.format("delta").load(lake.uri(gold_table("customer_features")))
    assert current.count() == 6
