"""landing -> bronze on real local Spark + Delta: rows, lineage, exactly-once, quarantine."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from chispa import assert_df_equality

from ingestion.bronze.job import IngestJob, ingest
from ingestion.bronze.manifest import Manifests
from ingestion.core.errors import LeaseHeldError
from ingestion.core.lease import Lease
from ingestion.core.spark.delta import table_version
from ingestion.events import Ledger

pytestmark = pytest.mark.spark

ORDERS_HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ORDERS_A = ORDERS_HEADER + (
    b"O-0001,C-001,new,10.50,1,2026-01-01,,2026-01-01T10:00:00\n"
    b"O-0002,C-002,paid,7.25,3,2026-01-02,2026-01-04,2026-01-02T09:30:00\n"
)
BRONZE_ORDERS = (
    "order_id string, customer_id string, status string, amount string, quantity string, "
    "order_date string, ship_date string, updated_at string, _corrupt_record string, "
    "_parse_error string, _source_path string, _source_sha256 string, _source_row long, "
    "_batch_id long"
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(spark, lake, catalog, name, **kw):
    return ingest(spark, lake, catalog, name, **kw)


@pytest.mark.floor
def test_csv_lands_with_exact_rows_and_lineage(spark, lake, catalog, land, bronze):
    assert land("orders/2026/a.csv", ORDERS_A).outcome == "queued"
    result = run(spark, lake, catalog, "orders")
    assert (result.batch, result.rows, result.files_ingested, result.bronze_version) == (1, 2, 1, 0)
    expected = spark.createDataFrame(
        [
            (
                "O-0001",
                "C-001",
                "new",
                "10.50",
                "1",
                "2026-01-01",
                "",
                "2026-01-01T10:00:00",
                None,
                None,
                "orders/2026/a.csv",
                sha(ORDERS_A),
                1,
                1,
            ),
            (
                "O-0002",
                "C-002",
                "paid",
                "7.25",
                "3",
                "2026-01-02",
                "2026-01-04",
                "2026-01-02T09:30:00",
                None,
                None,
                "orders/2026/a.csv",
                sha(ORDERS_A),
                2,
                1,
            ),
        ],
        BRONZE_ORDERS,
    )
    # Spark's CSV reader reads an empty unquoted field as null: raw "absent".
    expected = expected.replace("", None, subset=["ship_date"])
    assert_df_equality(bronze("orders"), expected, ignore_row_order=True, ignore_nullable=True)
    entry = next(Ledger(lake).entries("orders"))
    assert (entry.status, entry.batch, entry.sha256) == ("ingested", 1, sha(ORDERS_A))


@pytest.mark.floor
def test_jsonl_keeps_raw_values_rescues_unknown_and_keeps_malformed_lines(spark, lake, catalog, land, bronze):
    data = (
        b'{"customer_id":"C-001","name":"Ann","country":"DE","lifetime_value":12.50,"vip":{"since":2020}}\n'
        b"\n"
        b"{not json\n"
        b'{"customer_id":"C-002","name":"Bo","country":"SE","signup_date":"2026-02-01"}\n'
    )
    land("customers/c1.jsonl", data)
    result = run(spark, lake, catalog, "customers")
    assert (result.rows, result.files_rejected) == (3, 0)
    got = bronze("customers").select(
        "customer_id",
        "name",
        "country",
        "signup_date",
        "lifetime_value",
        "_rescued_data",
        "_corrupt_record",
        "_source_row",
    )
    expected = spark.createDataFrame(
        [
            ("C-001", "Ann", "DE", None, "12.50", '{"vip":{"since":2020}}', None, 1),
            (None, None, None, None, None, None, "{not json", 3),
            ("C-002", "Bo", "SE", "2026-02-01", None, None, None, 4),
        ],
        "customer_id string, name string, country string, signup_date string, lifetime_value string, "
        "_rescued_data string, _corrupt_record string, _source_row long",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    err = bronze("customers").where("_corrupt_record is not null").first()["_parse_error"]
    assert err.startswith("invalid JSON")


def test_event_delivered_three_times_lands_once(spark, lake, catalog, land, bronze):
    first = land("orders/a.csv", ORDERS_A, events=3)
    assert first.outcome == "duplicate"  # the 2nd and 3rd deliveries
    assert len(list(Ledger(lake).entries("orders"))) == 1
    run(spark, lake, catalog, "orders")
    assert bronze("orders").count() == 2


def test_identical_reupload_adds_no_rows_changed_file_adds_rows(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    run(spark, lake, catalog, "orders")
    # Same bytes again: a new etag (new upload) but the same content -> no rows.
    lake.delete("landing/orders/a.csv")
    land("orders/a.csv", ORDERS_A)
    again = run(spark, lake, catalog, "orders")
    assert (again.files_unchanged, again.rows, again.bronze_version) == (1, 0, None)
    assert bronze("orders").count() == 2
    # The same bytes under another path are another file.
    land("orders/copy.csv", ORDERS_A)
    assert run(spark, lake, catalog, "orders").rows == 2
    # New bytes at the old path: new rows (bronze is append-only; silver decides latest).
    changed = ORDERS_A + b"O-0003,C-003,new,1.00,1,2026-01-03,,2026-01-03T08:00:00\n"
    land("orders/a.csv", changed)
    res = run(spark, lake, catalog, "orders")
    assert res.rows == 3
    counts = {
        r["_source_path"]: r["count"] for r in bronze("orders").groupBy("_source_path").count().collect()
    }
    assert counts == {"orders/a.csv": 5, "orders/copy.csv": 2}
    assert [m.batch for m in Manifests(lake, "orders").all()] == [1, 2, 3, 4]


class Crash(RuntimeError):
    pass


def crash_at(point):
    def fault(p):
        if p == point:
            raise Crash(p)

    return fault


@pytest.mark.floor
def test_crash_after_commit_before_ledger_close_reruns_without_duplicates(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    with pytest.raises(Crash):
        IngestJob(spark, lake, catalog, fault=crash_at("after_commit")).run("orders")
    uri = lake.uri("bronze/orders")
    assert table_version(spark, uri) == 0 and bronze("orders").count() == 2
    assert Manifests(lake, "orders").latest().status == "open"
    assert next(Ledger(lake).entries("orders")).status == "batched"
    rerun = run(spark, lake, catalog, "orders")
    assert (rerun.batch, rerun.resumed, rerun.bronze_version, rerun.rows) == (1, True, 0, 2)
    assert table_version(spark, uri) == 0  # Delta skipped the duplicate append
    assert bronze("orders").count() == 2
    assert next(Ledger(lake).entries("orders")).status == "ingested"
    assert Manifests(lake, "orders").latest().status == "committed"


def test_crash_before_commit_reruns_and_lands_once(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    with pytest.raises(Crash):
        IngestJob(spark, lake, catalog, fault=crash_at("after_manifest")).run("orders")
    assert table_version(spark, lake.uri("bronze/orders")) is None
    rerun = run(spark, lake, catalog, "orders")
    assert (rerun.batch, rerun.rows) == (1, 2)
    assert bronze("orders").count() == 2
    # A later batch gets the next number; batch 1 is never reused.
    land("orders/b.csv", ORDERS_HEADER + b"O-0009,C-009,new,1.00,1,2026-01-05,,2026-01-05T08:00:00\n")
    assert run(spark, lake, catalog, "orders").batch == 2


def test_two_ingest_runs_started_together_one_wins_rows_once(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    outcomes: list[object] = []
    go = threading.Barrier(2)

    def worker():
        go.wait()
        try:
            outcomes.append(run(spark, lake, catalog, "orders"))
        except LeaseHeldError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [o for o in outcomes if not isinstance(o, LeaseHeldError)]
    # Either the loser found the lease held, or it ran after the winner and found nothing queued.
    assert sum(r.rows for r in results) == 2
    assert all(isinstance(o, LeaseHeldError) or o.status in ("succeeded", "skipped") for o in outcomes)
    assert bronze("orders").count() == 2


def test_held_lease_makes_a_run_exit_cleanly_or_wait(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    holder = Lease(lake, "orders", owner="other-run", seconds=30, heartbeat=False).acquire()
    with pytest.raises(LeaseHeldError, match="being written by run other-run"):
        run(spark, lake, catalog, "orders")
    threading.Timer(1.0, holder.release).start()
    assert run(spark, lake, catalog, "orders", lease_wait=20).rows == 2


def test_garbage_file_is_quarantined_while_the_rest_of_the_batch_lands(spark, lake, catalog, land, bronze):
    land("orders/a.csv", ORDERS_A)
    land("orders/garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    land("orders/empty.csv", b"")
    land("orders/wrong.csv", b"foo,bar\n1,2\n")
    res = run(spark, lake, catalog, "orders")
    assert (res.rows, res.files_ingested, res.files_rejected) == (2, 1, 3)
    assert {r["path"]: r["code"] for r in res.rejected} == {
        "orders/garbage.csv": "binary",
        "orders/empty.csv": "empty",
        "orders/wrong.csv": "wrong_format",
    }
    reason = json.loads(lake.read_bytes("quarantine/orders/files/00000001/orders/garbage.csv.reason.json"))
    assert reason["code"] == "binary" and "NUL" in reason["reason"]
    assert lake.read_bytes("quarantine/orders/files/00000001/orders/garbage.csv").startswith(b"\x89PNG")
    assert lake.exists("landing/orders/garbage.csv")  # raw data stays in landing
    statuses = {e.path: e.status for e in Ledger(lake).entries("orders")}
    assert statuses["orders/garbage.csv"] == "rejected" and statuses["orders/a.csv"] == "ingested"
    # Rejected files are not retried forever: nothing is queued any more.
    assert Ledger(lake).queued("orders") == []
    assert run(spark, lake, catalog, "orders").status == "skipped"


def test_malformed_csv_lines_are_kept_with_the_raw_line(spark, lake, catalog, land, bronze):
    land(
        "orders/m.csv",
        ORDERS_A
        + b'O-0003,C-003,"unterminated\n'
        + b"O-0004,C-004,new,1,1,2026-01-01,,2026-01-01T00:00:00,extra\n",
    )
    run(spark, lake, catalog, "orders")
    bad = (
        bronze("orders")
        .where("_corrupt_record is not null")
        .select("_source_row", "_corrupt_record")
        .orderBy("_source_row")
    )
    assert [(r[0], r[1]) for r in bad.collect()] == [
        (3, 'O-0003,C-003,"unterminated'),
        (4, "O-0004,C-004,new,1,1,2026-01-01,,2026-01-01T00:00:00,extra"),
    ]
    reasons = {
        r[0] for r in bronze("orders").where("_parse_error is not null").select("_parse_error").collect()
    }
    assert reasons == {"malformed CSV record: field count differs from the header (8)"}
    assert bronze("orders").count() == 4  # good rows and malformed rows: nothing dropped


def test_unknown_column_under_freeze_evolve_rescue(spark, lake, policy_catalog, land_in, bronze):
    data = b"id,value,colour\na,1,red\nb,2,blue\n"
    for policy in ("freeze", "evolve", "rescue"):
        land_in(policy_catalog, f"ev_{policy}/x.csv", data)
        land_in(policy_catalog, f"ev_{policy}/ok.csv", b"id,value\nc,3\n")
        ingest(spark, lake, policy_catalog, f"ev_{policy}")
    # freeze: the file with the unknown column is quarantined, naming the column; the other lands.
    reason = json.loads(lake.read_bytes("quarantine/ev_freeze/files/00000001/ev_freeze/x.csv.reason.json"))
    assert reason["code"] == "unknown_columns" and "colour" in reason["reason"]
    assert_df_equality(
        bronze("ev_freeze").select("id", "value"),
        spark.createDataFrame([("c", "3")], "id string, value string"),
        ignore_nullable=True,
    )
    # evolve: the column is added (null where a file lacks it).
    assert_df_equality(
        bronze("ev_evolve").select("id", "value", "colour"),
        spark.createDataFrame(
            [("a", "1", "red"), ("b", "2", "blue"), ("c", "3", None)],
            "id string, value string, colour string",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # rescue: unknown fields kept as JSON in _rescued_data.
    assert_df_equality(
        bronze("ev_rescue").select("id", "value", "_rescued_data"),
        spark.createDataFrame(
            [("a", "1", '{"colour":"red"}'), ("b", "2", '{"colour":"blue"}'), ("c", "3", None)],
            "id string, value string, _rescued_data string",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_gzip_json_array_and_parquet_sources(spark, lake, land_in, bronze, tmp_path):
    import gzip

    from ingestion.contracts import Catalog, Dataset, JsonArray, Parquet
    from tests.ingestion.bronze.conftest import _columns

    cat = Catalog(
        [
            Dataset(
                name="arr", landing="arr/*.json", format=JsonArray(), columns=_columns, primary_key=("id",)
            ),
            Dataset(
                name="pq", landing="pq/*.parquet", format=Parquet(), columns=_columns, primary_key=("id",)
            ),
            Dataset(
                name="gz",
                landing="gz/*.csv.gz",
                format=__import__("ingestion.contracts", fromlist=["Csv"]).Csv(),
                columns=_columns,
                primary_key=("id",),
            ),
        ]
    )
    land_in(cat, "arr/a.json", b'[{"id":"a","value":1.50}, 7, {"id":"b"}]')
    land_in(cat, "arr/not.json", b'{"id":"x"}')
    spark.createDataFrame([("p", 5)], "id string, value int").coalesce(1).write.parquet(str(tmp_path / "pq"))
    part = next((tmp_path / "pq").glob("part-*.parquet")).read_bytes()
    land_in(cat, "pq/p.parquet", part)
    land_in(cat, "gz/g.csv.gz", gzip.compress(b"id,value\ng,9\n"))
    for name in ("arr", "pq", "gz"):
        ingest(spark, lake, cat, name)
    assert_df_equality(
        bronze("arr").select("id", "value", "_corrupt_record", "_source_row"),
        spark.createDataFrame(
            [("a", "1.50", None, 1), (None, None, "7", 2), ("b", None, None, 3)],
            "id string, value string, _corrupt_record string, _source_row long",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert (
        json.loads(lake.read_bytes("quarantine/arr/files/00000001/arr/not.json.reason.json"))["code"]
        == "wrong_format"
    )
    assert [tuple(r) for r in bronze("pq").select("id", "value", "_source_row").collect()] == [("p", "5", 1)]
    assert [tuple(r) for r in bronze("gz").select("id", "value").collect()] == [("g", "9")]


def test_rows_keep_their_position_across_file_splits(spark, lake, catalog, land, bronze):
    # Force several splits of one file: positions must still follow file order.
    lines = [f"O-{i:05d},C-001,new,1.00,1,2026-01-01,,2026-01-01T00:00:00\n".encode() for i in range(1, 3001)]
    land("orders/big.csv", ORDERS_HEADER + b"".join(lines))
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        run(spark, lake, catalog, "orders")
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)
    got = (
        bronze("orders").selectExpr("int(substr(order_id, 3)) as n", "_source_row").where("n != _source_row")
    )
    assert got.count() == 0
    assert bronze("orders").count() == 3000


def test_readmit_requeues_a_rejected_file(spark, lake, catalog, land, bronze):
    land("orders/late.csv", b"")
    run(spark, lake, catalog, "orders")
    ledger = Ledger(lake)
    entry = next(ledger.entries("orders"))
    assert entry.status == "rejected"
    lake.write_bytes("landing/orders/late.csv", ORDERS_A)  # fixed upstream
    ledger.update(entry, status="pending", reason=None, reason_code=None)
    assert run(spark, lake, catalog, "orders").rows == 2
