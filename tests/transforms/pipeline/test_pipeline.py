"""Pipeline runs: ingest -> curate -> publish -> register for one dataset, on one Spark session.

Each stage skips when it has nothing new; a crash between stages is resumed by the next run with
nothing written twice; a customers-only batch republishes the gold that reads customers and
registers a new asset version; a failed stage stops only what is downstream of it.
"""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from ingestion.core.lake import gold_table
from ingestion.core.runs import RunLedger
from ingestion.core.spark.delta import table_version

pytestmark = pytest.mark.spark

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ORDERS = (
    HEADER + b"O-0001,C-001,paid,10.50,1,2026-11-01,,2026-11-01T10:00:00\n"
    b"O-0002,C-002,new,7.25,3,2026-11-02,,2026-11-02T09:30:00\n"
)
CUSTOMERS = (
    b'{"customer_id": "C-001", "name": "Ada", "country": "DE", "signup_date": "2024-01-01"}\n'
    b'{"customer_id": "C-002", "name": "Bo", "country": "FR", "signup_date": "2024-02-01"}\n'
)
# A customers-only batch: Bo moved to Sweden.
CUSTOMERS_2 = b'{"customer_id": "C-002", "name": "Bo", "country": "SE", "signup_date": "2024-02-01"}\n'
GOLD = "customer_features"
ALL_STAGES = ("ingest", "curate", f"publish:{GOLD}", f"register:{GOLD}")


class Crash(BaseException):
    """The process dies at a fault point: nothing catches it, nothing is recorded after it."""


def crash_at(name: str):  # noqa: ANN201
    def fault(point: str) -> None:
        if point == name:
            raise Crash(point)

    return fault


def _run(spark, lake, catalog, settings, dataset, **kw):  # noqa: ANN001, ANN003, ANN202
    from transforms.pipeline import run_pipeline

    return run_pipeline(spark, lake, catalog, dataset, settings=settings, **kw)


def _features(spark, lake):  # noqa: ANN001, ANN202
    return (
        spark.read.format("delta")
        .load(lake.uri(gold_table(GOLD)))
        .select("customer_id", "country", "order_count", "total_amount")
    )


def _assets(lake):  # noqa: ANN001, ANN202
    from transforms.assets import LocalRegistry

    return [(a.label, a.delta_version) for a in LocalRegistry(lake).versions(GOLD)]


def test_a_customers_only_batch_republishes_the_gold_reading_it_and_registers_a_version(
    spark, lake, catalog, lake_settings, land
):
    land("orders/a.csv", ORDERS)
    land("customers/a.jsonl", CUSTOMERS)

    orders = _run(spark, lake, catalog, lake_settings, "orders")
    # Gold does not wait for customers to be curated forever: it says what it waits for.
    assert orders.outcomes == {
        "ingest": "succeeded",
        "curate": "succeeded",
        f"publish:{GOLD}": "waiting",
    }
    assert orders.status == "succeeded" and orders.details["waiting"] == {GOLD: ["customers"]}
    assert orders.details["golds"] == [GOLD]

    customers = _run(spark, lake, catalog, lake_settings, "customers")
    assert customers.outcomes == dict.fromkeys(ALL_STAGES, "succeeded")
    first = customers.releases[GOLD]
    pins = {name: table_version(spark, lake.uri(f"silver/{name}")) for name in ("orders", "customers")}
    assert first.publish.details["inputs"] == pins
    assert first.register is not None and first.register.asset is not None
    assert first.register.asset.label == f"{GOLD}:1"

    # Nothing new anywhere: every stage skips, no commit, no asset version.
    gold_v = table_version(spark, lake.uri(gold_table(GOLD)))
    again = _run(spark, lake, catalog, lake_settings, "customers")
    assert (again.status, again.outcomes) == ("skipped", dict.fromkeys(ALL_STAGES, "skipped"))
    assert table_version(spark, lake.uri(gold_table(GOLD))) == gold_v

    land("customers/b.jsonl", CUSTOMERS_2)
    second = _run(spark, lake, catalog, lake_settings, "customers")
    assert second.outcomes == dict.fromkeys(ALL_STAGES, "succeeded")
    release = second.releases[GOLD]
    # Published from the latest version of EACH input: orders did not move, customers did.
    assert release.publish.details["inputs"] == {"orders": pins["orders"], "customers": pins["customers"] + 1}
    assert release.publish.details["txn"] == first.publish.details["txn"] + 1
    assert release.register is not None and release.register.asset is not None
    assert release.register.asset.label == f"{GOLD}:2"
    assert release.register.asset.tags["silver_versions"] == (
        f"customers@{pins['customers'] + 1},orders@{pins['orders']}"
    )
    assert _assets(lake) == [(f"{GOLD}:1", gold_v), (f"{GOLD}:2", release.publish.output_version)]
    expected = spark.createDataFrame(
        [("C-001", "DE", 1, 10.5), ("C-002", "SE", 1, 7.25)],
        "customer_id string, country string, order_count bigint, total_amount double",
    )
    assert_df_equality(_features(spark, lake), expected, ignore_row_order=True, ignore_nullable=True)

    # The pipeline's own runs are in the run ledger, with each stage's outcome.
    runs = RunLedger(spark, lake).latest(job="pipeline", limit=10)
    assert sorted((r["dataset"], r["status"]) for r in runs) == [
        ("customers", "skipped"),
        ("customers", "succeeded"),
        ("customers", "succeeded"),
        ("orders", "succeeded"),
    ]


@pytest.mark.parametrize("point", ["after_curate", f"after_publish:{GOLD}"])
def test_a_crash_between_stages_is_resumed_by_the_next_run_with_nothing_written_twice(
    spark, lake, catalog, lake_settings, land, point
):
    land("customers/a.jsonl", CUSTOMERS)
    _run(spark, lake, catalog, lake_settings, "customers")  # gold waits for orders
    land("orders/a.csv", ORDERS)

    with pytest.raises(Crash):
        _run(spark, lake, catalog, lake_settings, "orders", fault=crash_at(point))

    resumed = _run(spark, lake, catalog, lake_settings, "orders")
    done = {"after_curate": 2, f"after_publish:{GOLD}": 3}[point]
    # The stages the crashed run finished skip; the rest run now.
    assert list(resumed.outcomes.values()) == ["skipped"] * done + ["succeeded"] * (4 - done)
    assert _assets(lake) == [(f"{GOLD}:1", table_version(spark, lake.uri(gold_table(GOLD))))]
    assert spark.read.format("delta").load(lake.uri("bronze/orders")).count() == 2
    assert spark.read.format("delta").load(lake.uri("silver/orders")).count() == 2
    expected = spark.createDataFrame(
        [("C-001", "DE", 1, 10.5), ("C-002", "FR", 1, 7.25)],
        "customer_id string, country string, order_count bigint, total_amount double",
    )
    assert_df_equality(_features(spark, lake), expected, ignore_row_order=True, ignore_nullable=True)
    # The crashed run left no pipeline row; the resumed one did.
    runs = RunLedger(spark, lake).latest(dataset="orders", job="pipeline")
    assert [r["status"] for r in runs] == ["succeeded"]


def test_a_failed_curate_stops_only_its_downstream_and_the_next_run_resumes_there(
    spark, lake, catalog, lake_settings, land, monkeypatch
):
    from ingestion.core.storage import LocalStorage
    from transforms.silver.state import state_path

    land("customers/a.jsonl", CUSTOMERS)
    land("orders/a.csv", ORDERS)
    real_write = LocalStorage.write_bytes

    def disk_full_for_orders_state(self, path, data, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if path == state_path("orders"):
            raise OSError(f"{path}: no space left on device")
        return real_write(self, path, data, **kwargs)

    monkeypatch.setattr(LocalStorage, "write_bytes", disk_full_for_orders_state)
    failed = _run(spark, lake, catalog, lake_settings, "orders")
    assert failed.outcomes == {
        "ingest": "succeeded",
        "curate": "failed",
        f"publish:{GOLD}": "blocked",
        f"register:{GOLD}": "blocked",
    }
    assert (failed.status, failed.stopped_at) == ("failed", "curate")
    assert failed.error == "storage: OSError: system/curate/orders.json: no space left on device" or (
        failed.error is not None and failed.error.startswith("storage: OSError:")
    )
    assert failed.curate is not None and failed.curate.status == "failed"

    # Another dataset is unaffected: customers curates; its gold waits for orders' silver.
    other = _run(spark, lake, catalog, lake_settings, "customers")
    assert other.outcomes == {"ingest": "succeeded", "curate": "succeeded", f"publish:{GOLD}": "waiting"}

    monkeypatch.setattr(LocalStorage, "write_bytes", real_write)  # the disk has room again
    resumed = _run(spark, lake, catalog, lake_settings, "orders")
    assert resumed.outcomes == {
        "ingest": "skipped",  # the batch is in bronze already
        "curate": "succeeded",
        f"publish:{GOLD}": "succeeded",
        f"register:{GOLD}": "succeeded",
    }
    assert resumed.curate is not None and resumed.curate.rows_written == 2

    ledger = RunLedger(spark, lake)
    pipeline_runs = {r["run_id"]: r for r in ledger.latest(dataset="orders", job="pipeline")}
    row = pipeline_runs[failed.run_id]
    assert row["status"] == "failed" and row["error"] == failed.error
    assert '"stopped_at": "curate"' in row["details"]
    assert sorted(r["status"] for r in ledger.latest(dataset="orders", job="curate")) == [
        "failed",
        "succeeded",
    ]
    assert [r["status"] for r in ledger.latest(dataset="orders", job="ingest")] == ["skipped", "succeeded"]


def test_golds_reading_golds_publish_in_dependency_order_and_a_failure_blocks_only_readers(
    spark, lake, catalog, lake_settings, land
):
    import dataclasses

    from ingestion.contracts import Catalog, Gold
    from transforms.gold.graph import golds_fed_by

    customers = catalog.get("customers")
    # customers publishes a gold reading customer_features (orders' gold): gold on gold.
    by_country = Gold(
        name="country_features",
        build=_by_country,
        inputs=(GOLD,),
        keys=("country",),
    )
    # ...and a broken gold reading orders, whose failure must not stop customer_features.
    broken = Gold(name="broken", build=_broken, inputs=("orders",), keys=("order_id",))
    extra = dataclasses.replace(customers, name="extra", landing="extra/**/*.jsonl", gold=broken)
    cat = Catalog([catalog.get("orders"), dataclasses.replace(customers, gold=by_country), extra])
    assert [g.name for _, g in golds_fed_by(cat, "orders")] == ["broken", GOLD, "country_features"]
    assert [g.name for _, g in golds_fed_by(cat, "customers")] == [GOLD, "country_features"]

    land("customers/a.jsonl", CUSTOMERS)
    land("orders/a.csv", ORDERS)
    _run(spark, lake, cat, lake_settings, "customers")
    result = _run(spark, lake, cat, lake_settings, "orders")
    assert result.outcomes == {
        "ingest": "succeeded",
        "curate": "succeeded",
        "publish:broken": "failed",
        "register:broken": "blocked",
        f"publish:{GOLD}": "succeeded",
        f"register:{GOLD}": "succeeded",
        "publish:country_features": "succeeded",
        "register:country_features": "succeeded",
    }
    assert result.status == "failed" and result.stopped_at == "publish:broken"
    gold_v = result.releases[GOLD].publish.output_version
    assert result.releases["country_features"].publish.details["inputs"] == {GOLD: gold_v}
    rows = spark.read.format("delta").load(lake.uri(gold_table("country_features")))
    expected = spark.createDataFrame([("DE", 1), ("FR", 1)], "country string, customers bigint")
    assert_df_equality(rows, expected, ignore_row_order=True, ignore_nullable=True)


def _by_country(spark, inputs):  # noqa: ANN001, ANN202
    from pyspark.sql import functions as F

    return inputs[GOLD].groupBy("country").agg(F.count("*").cast("long").alias("customers"))


def _broken(spark, inputs):  # noqa: ANN001, ANN202
    return inputs["orders"].select("order_id", "missing_column")


def test_two_runs_reaching_the_same_gold_at_once_publish_and_register_it_once(
    spark, lake, catalog, lake_settings, land
):
    import threading

    from ingestion.bronze.job import ingest
    from transforms.silver import curate

    land("orders/a.csv", ORDERS)
    land("customers/a.jsonl", CUSTOMERS)
    for name in ("orders", "customers"):
        ingest(spark, lake, catalog, name, settings=lake_settings)
        assert curate(spark, lake, catalog, name, settings=lake_settings).status == "succeeded"

    # Both runs find nothing to ingest or curate and reach customer_features together.
    start = threading.Barrier(2)
    results = {}
    errors = []

    def run(dataset: str) -> None:
        try:
            start.wait(30)
            results[dataset] = _run(spark, lake, catalog, lake_settings, dataset, stage_lease_wait=120)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("orders", "customers")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    publishes = sorted(r.outcomes[f"publish:{GOLD}"] for r in results.values())
    registers = sorted(r.outcomes[f"register:{GOLD}"] for r in results.values())
    # One published and registered; the other waited for the lease and found the pins unchanged.
    assert (publishes, registers) == (["skipped", "succeeded"], ["skipped", "succeeded"])
    skipped = next(r for r in results.values() if r.outcomes[f"publish:{GOLD}"] == "skipped")
    assert skipped.releases[GOLD].publish.details["reason"] == "silver unchanged since the last publish"
    assert _assets(lake) == [(f"{GOLD}:1", table_version(spark, lake.uri(gold_table(GOLD))))]
    publish_runs = RunLedger(spark, lake).latest(dataset="orders", job="publish")
    assert sorted(r["status"] for r in publish_runs) == ["skipped", "succeeded"]


def test_a_gold_waits_for_an_input_created_but_not_yet_curated(spark, lake, catalog, lake_settings, land):
    """A parallel run's curate creates silver empty before its MERGE: gold must not publish from it."""
    land("orders/a.csv", ORDERS)
    # customers' silver as another run's curate leaves it between creating and merging: empty.
    schema = "customer_id string, name string, email string, country string, segment string, signup_date date"
    spark.createDataFrame([], schema).write.format("delta").save(lake.uri("silver/customers"))

    orders = _run(spark, lake, catalog, lake_settings, "orders")
    assert orders.outcomes == {"ingest": "succeeded", "curate": "succeeded", f"publish:{GOLD}": "waiting"}
    assert orders.details["waiting"] == {GOLD: ["customers"]}
    assert table_version(spark, lake.uri(gold_table(GOLD))) is None  # nothing published, nothing registered
    assert _assets(lake) == []
