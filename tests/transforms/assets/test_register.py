"""Register: N+1 only when gold changed, pinned MLTables, load check, tags, drift."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import gold_fixtures as gf
import pytest

from ingestion.contracts import Catalog
from ingestion.core.lake import gold_table
from ingestion.core.runs import RunLedger, RunRecord

pytestmark = pytest.mark.spark
mltable = pytest.importorskip("mltable")
yaml = pytest.importorskip("yaml")

N_CUSTOMERS = 30


def _orders(scale: float = 1.0) -> list[tuple]:
    rows = gf.orders(N_CUSTOMERS, 240, seed=7)
    # The second batch updates every order's amount (x3) and a few statuses: one shifted feature.
    out = []
    for i, r in enumerate(rows):
        status = "shipped" if (scale != 1.0 and r[2] == "paid" and i % 5 == 0) else r[2]
        out.append((r[0], r[1], status, (r[3] * Decimal(str(scale))).quantize(Decimal("0.01")), *r[4:]))
    return out


@pytest.fixture(scope="module")
def scenario(spark, module_lake):
    """Batch 1 -> publish, register; rerun; batch 2 (updates, amounts x3) -> publish, register."""
    from transforms.assets import register
    from transforms.gold import publish

    settings, lake = module_lake
    catalog = Catalog.discover()
    ledger = RunLedger(spark, lake)
    # quality figures come from the latest curate runs of the inputs
    for ds, n in (("orders", 240), ("customers", N_CUSTOMERS)):
        ledger.append(
            RunRecord(
                job="curate",
                dataset=ds,
                rows_read=n + 2,
                rows_written=n,
                rows_quarantined=2,
                rules={f"{ds}.not_nullable": 2},
                output_version=0,
            ).finish("succeeded")
        )
    gf.write_silver(spark, lake, "customers", gf.customers(N_CUSTOMERS), bronze_end=0)
    gf.write_silver(spark, lake, "orders", _orders(), bronze_end=0)
    out = {"settings": settings, "lake": lake, "catalog": catalog}
    out["pub1"] = publish(spark, lake, catalog, "orders", settings=settings)
    out["reg1"] = register(spark, lake, catalog, "orders", settings=settings)
    out["v1_rows"] = spark.read.format("delta").load(lake.uri(gold_table("customer_features"))).collect()
    out["pub_again"] = publish(spark, lake, catalog, "orders", settings=settings)
    out["reg_again"] = register(spark, lake, catalog, "orders", settings=settings)
    gf.write_silver(spark, lake, "orders", _orders(scale=3.0), bronze_end=1)
    out["pub2"] = publish(spark, lake, catalog, "orders", settings=settings)
    out["reg2"] = register(spark, lake, catalog, "orders", settings=settings)
    out["reg2_again"] = register(spark, lake, catalog, "orders", settings=settings)
    return out


def test_first_register_creates_version_1_pinned_to_gold(scenario):
    reg1 = scenario["reg1"]
    assert reg1.status == "succeeded"
    assert reg1.asset.label == "customer_features:1"
    assert reg1.asset.delta_version == scenario["pub1"].output_version
    assert reg1.drift["verdict"] == "baseline"


def test_rerun_creates_no_version(scenario, spark):
    from transforms.assets import LocalRegistry

    assert scenario["pub_again"].status == "skipped"
    assert scenario["reg_again"].status == "skipped"
    assert scenario["reg_again"].asset.version == 1
    assert scenario["reg2_again"].status == "skipped"
    versions = LocalRegistry(scenario["lake"]).versions("customer_features")
    assert [a.version for a in versions] == [1, 2]
    runs = RunLedger(spark, scenario["lake"]).latest(job="register", limit=10)
    assert sorted(r["status"] for r in runs) == ["skipped", "skipped", "succeeded", "succeeded"]


def test_changed_gold_creates_version_n_plus_1(scenario):
    reg2 = scenario["reg2"]
    assert reg2.status == "succeeded"
    assert reg2.asset.version == 2 and reg2.previous.version == 1
    assert reg2.asset.delta_version == scenario["pub2"].output_version > scenario["pub1"].output_version


def test_mltable_file_is_pinned_and_saved_next_to_the_table(scenario):
    lake = scenario["lake"]
    for reg in (scenario["reg1"], scenario["reg2"]):
        folder = Path(lake.root) / reg.asset.path
        assert reg.asset.path == f"gold/customer_features/_mltable/delta-{reg.asset.delta_version}"
        doc = yaml.safe_load((folder / "MLTable").read_text())
        assert doc["type"] == "mltable"
        assert doc["paths"] == [{"folder": "../.."}]  # relative: portable with the lake
        assert doc["transformations"] == [
            {"read_delta_lake": {"include_path_column": False, "version_as_of": reg.asset.delta_version}}
        ]


def test_pinned_version_reads_its_old_rows_after_gold_moved_on(scenario, spark):
    lake = scenario["lake"]
    v1 = mltable.load(str(Path(lake.root) / scenario["reg1"].asset.path)).to_pandas_dataframe()
    v2 = mltable.load(str(Path(lake.root) / scenario["reg2"].asset.path)).to_pandas_dataframe()

    old = {r.customer_id: r.total_amount for r in scenario["v1_rows"]}
    assert dict(zip(v1.customer_id, v1.total_amount, strict=True)) == pytest.approx(old)
    now = spark.read.format("delta").load(lake.uri(gold_table("customer_features"))).collect()
    assert dict(zip(v2.customer_id, v2.total_amount, strict=True)) == pytest.approx(
        {r.customer_id: r.total_amount for r in now}
    )
    assert any(abs(old[c] - t) > 0.01 for c, t in zip(v2.customer_id, v2.total_amount, strict=True))


def test_tags_describe_the_version(scenario, spark):
    reg2 = scenario["reg2"]
    tags = reg2.asset.tags
    lake = scenario["lake"]
    df = (
        spark.read.format("delta")
        .option("versionAsOf", reg2.asset.delta_version)
        .load(lake.uri(gold_table("customer_features")))
    )
    canonical = json.dumps(
        [[f.name, f.dataType.simpleString(), f.nullable] for f in df.schema.fields], separators=(",", ":")
    )

    assert tags["delta_version"] == str(reg2.asset.delta_version)
    assert tags["table_uri"] == lake.uri(gold_table("customer_features"))
    assert tags["row_count"] == str(df.count()) == str(N_CUSTOMERS)
    assert tags["schema"] == canonical
    assert tags["schema_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    quality = json.loads(tags["quality"])
    assert quality["orders"]["quarantined"] == 2 and quality["orders"]["rules"] == {"orders.not_nullable": 2}
    lineage = json.loads(Path(tags["lineage"].removeprefix("file://")).read_text())
    assert lineage["gold"]["delta_version"] == reg2.asset.delta_version
    assert (
        lineage["silver"]["orders"]["version"] == 1 and lineage["silver"]["orders"]["bronze_end_version"] == 1
    )
    assert tags["silver_versions"] == "customers@0,orders@1"
    assert tags["run_id"] == reg2.run_id and tags["run_id"].startswith("register-")
    assert tags["environment"] == "dev"
    assert tags["code_version"].startswith("headwater")
    assert tags["drift_verdict"] == "drift"
    assert tags["previous_version"] == "1"
    assert all(isinstance(v, str) for v in tags.values())


def test_second_version_flags_the_shifted_columns_and_writes_the_report(scenario):
    reg2 = scenario["reg2"]
    cols = reg2.drift["columns"]
    assert set(reg2.drifted) == {"total_amount", "mean_amount"}
    assert cols["mean_amount"]["psi"] > 0.25
    assert cols["order_count"]["verdict"] == "ok"  # same orders, only their amounts moved
    assert cols["country"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert cols["customer_id"]["verdict"] == "skipped"
    report = Path(reg2.report_uri)
    assert report.exists()
    html = report.read_text()
    assert "mean_amount" in html and "<svg" in html and "<script" not in html


def test_properties_only_change_registers_nothing(spark, lake, catalog, lake_settings):
    from transforms.assets import register
    from transforms.gold import publish

    gf.write_silver(spark, lake, "customers", gf.customers(4), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(4, 10, seed=3), bronze_end=0)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    first = register(spark, lake, catalog, "orders", settings=lake_settings)
    spark.sql(
        f"ALTER TABLE delta.`{lake.uri(gold_table('customer_features'))}` "
        "SET TBLPROPERTIES ('headwater.owner' = 'ml-team')"
    )
    again = register(spark, lake, catalog, "orders", settings=lake_settings)

    assert first.asset.version == 1
    assert again.status == "skipped" and "no new data" in again.reason


def test_load_check_refuses_a_column_mapped_table(spark, lake, catalog, lake_settings):
    """Azure ML's reader returns physical names for column-mapped tables: caught before registering."""
    from transforms.assets import LoadCheckError, LocalRegistry, register
    from transforms.gold import publish

    gf.write_silver(spark, lake, "customers", gf.customers(4), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(4, 10, seed=3), bronze_end=0)
    publish(spark, lake, catalog, "orders", settings=lake_settings)
    uri = lake.uri(gold_table("customer_features"))
    spark.sql(
        f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ('delta.minReaderVersion' = '2', "
        "'delta.minWriterVersion' = '5', 'delta.columnMapping.mode' = 'name')"
    )
    spark.sql(f"ALTER TABLE delta.`{uri}` RENAME COLUMN segment TO customer_segment")

    with pytest.raises(LoadCheckError) as err:
        register(spark, lake, catalog, "orders", settings=lake_settings)
    assert "customer_features:1" in str(err.value)
    assert "columns missing through mltable: customer_segment" in str(err.value)
    assert LocalRegistry(lake).versions("customer_features") == []
    last = RunLedger(spark, lake).latest(job="register", limit=1)[0]
    assert last["status"] == "failed" and "LoadCheckError" in last["error"]


def test_load_check_catches_an_mltable_that_does_not_load_or_pins_the_wrong_version(
    spark, lake, catalog, lake_settings
):
    from transforms.assets.mltable_io import check_mltable_yaml, load_check, write_mltable
    from transforms.gold import publish

    gf.write_silver(spark, lake, "customers", gf.customers(4), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(4, 10, seed=3), bronze_end=0)
    old = publish(spark, lake, catalog, "orders", settings=lake_settings).output_version
    gf.write_silver(spark, lake, "customers", gf.customers(5), bronze_end=1)
    v = publish(spark, lake, catalog, "orders", settings=lake_settings).output_version
    uri = lake.uri(gold_table("customer_features"))
    folder, text = write_mltable(lake, gold_table("customer_features"), v)
    assert load_check(spark, lake, folder, uri, v).ok

    # an MLTable pinned to another version reads other rows
    stale, stale_text = write_mltable(lake, gold_table("customer_features"), old)
    check = load_check(spark, lake, stale, uri, v)
    assert not check.ok and check.problems == [f"4 rows through mltable, 5 in Delta version {v}"]
    assert check_mltable_yaml(stale_text, delta_version=v) == [
        f"read_delta_lake.version_as_of is {old}, not the pinned version {v}"
    ]
    # the empty version 0 (table created, nothing written) cannot be read by mltable at all
    empty, _ = write_mltable(lake, gold_table("customer_features"), 0)
    check = load_check(spark, lake, empty, uri, 0)
    assert not check.ok and check.problems[0].startswith("mltable cannot load it")
    # an MLTable whose path does not resolve
    broken = Path(lake.root) / "gold/customer_features/_mltable/broken"
    broken.mkdir(parents=True)
    (broken / "MLTable").write_text(text.replace("folder: ../..", "folder: ../../../missing_table"))
    check = load_check(spark, lake, "gold/customer_features/_mltable/broken", uri, v)
    assert not check.ok and check.problems[0].startswith("mltable cannot load it")


def test_uri_folder_asset_is_an_immutable_snapshot(spark, lake, catalog, lake_settings):
    from transforms.assets import register
    from transforms.gold import publish

    cat = gf.with_asset_type(catalog, "uri_folder")
    gf.write_silver(spark, lake, "customers", gf.customers(4), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(4, 10, seed=3), bronze_end=0)
    publish(spark, lake, cat, "orders", settings=lake_settings)
    res = register(spark, lake, cat, "orders", settings=lake_settings)

    assert res.asset.asset_type == "uri_folder"
    assert res.asset.path == f"gold/customer_features/_snapshots/delta-{res.asset.delta_version}"
    snap = spark.read.parquet(res.asset.asset_uri)
    gold = spark.read.format("delta").load(lake.uri(gold_table("customer_features")))
    assert snap.exceptAll(gold).count() == 0 and gold.exceptAll(snap).count() == 0


def test_register_before_publish_is_a_clear_error(spark, lake, catalog, lake_settings):
    from transforms.assets import GoldNotPublishedError, register

    with pytest.raises(GoldNotPublishedError, match="run `headwater run publish` first"):
        register(spark, lake, catalog, "orders", settings=lake_settings)


def test_pinned_rows_survive_an_update_of_the_same_day(scenario):
    # sanity of the fixture: batch 2 changed amounts of existing orders, not the set of orders
    assert scenario["pub2"].details["inserted"] == 0
    assert scenario["pub2"].details["updated"] > 0
    assert dt.date(2026, 1, 1) <= max(r.last_order_date for r in scenario["v1_rows"] if r.last_order_date)


def test_load_check_of_a_large_table_reads_only_a_sample(scenario, spark):
    from transforms.assets.mltable_io import load_check

    lake, asset = scenario["lake"], scenario["reg2"].asset
    check = load_check(spark, lake, asset.path, asset.table_uri, asset.delta_version, max_rows=10)
    assert check.ok and not check.compared_rows
    assert check.rows_delta == N_CUSTOMERS and check.rows_asset == N_CUSTOMERS  # take(1000) of 30 rows
