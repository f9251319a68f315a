"""No file can block a dataset (issue 9): bad files rejected in the same run, bounded retries."""

import gzip
import shutil
from pathlib import Path

import pyspark.sql.types as T
import pytest

from ingestion.bronze.batches import retry_batch
from ingestion.bronze.job import IngestJob, ingest
from ingestion.bronze.manifest import Manifests
from ingestion.core.config import RetrySettings, Settings
from ingestion.core.errors import BatchFailedError
from ingestion.core.reasons import FileCode, RunCode, run_error_code
from ingestion.core.runs import RunLedger
from ingestion.core.storage import LocalStorage
from ingestion.events import EventHandler, Ledger

pytestmark = pytest.mark.spark

ORDERS_HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ORDERS_A = ORDERS_HEADER + (
    b"O-0001,C-001,new,10.50,1,2026-01-01,,2026-01-01T10:00:00\n"
    b"O-0002,C-002,paid,7.25,3,2026-01-02,2026-01-04,2026-01-02T09:30:00\n"
)
CUSTOMER = (
    b'{"customer_id":"C-001","name":"A","email":"a@example.com","country":"DE",'
    b'"segment":"consumer","signup_date":"2024-01-01","lifetime_value":1.5}\n'
)


def _truncated(data: bytes) -> bytes:
    whole = gzip.compress(data * 200)
    return whole[: len(whole) // 2]


def _land(storage, catalog, path: str, data: bytes) -> None:
    info = storage.write_bytes(f"landing/{path}", data)
    assert (
        EventHandler(Ledger(storage), catalog).file_landed(path, etag=info.etag, size=info.size).outcome
        == "queued"
    )


@pytest.mark.floor
@pytest.mark.parametrize(
    ("dataset", "good", "bad", "rows"),
    [
        ("orders", ("orders/a.csv", ORDERS_A), ("orders/b.csv.gz", _truncated(ORDERS_A)), 2),
        ("customers", ("customers/a.jsonl", CUSTOMER), ("customers/b.jsonl.gz", _truncated(CUSTOMER)), 1),
    ],
)
def test_a_truncated_gzip_is_rejected_and_the_good_file_lands_in_the_same_run(
    spark, lake, catalog, dataset, good, bad, rows
):
    _land(lake, catalog, *good)
    _land(lake, catalog, *bad)
    result = ingest(spark, lake, catalog, dataset)
    assert (result.status, result.rows, result.files_ingested) == ("succeeded", rows, 1)
    assert [(r["path"], r["code"]) for r in result.rejected] == [(bad[0], "bad_gzip")]
    assert "truncated gzip stream" in result.rejected[0]["reason"]
    assert spark.read.format("delta").load(lake.uri(f"bronze/{dataset}")).count() == rows
    manifest = Manifests(lake, dataset).latest()
    assert manifest.status == "committed"
    entry = next(e for e in Ledger(lake).entries(dataset) if e.path == bad[0])
    assert (entry.status, entry.reason_code) == ("rejected", FileCode.BAD_GZIP)
    # The next run is not blocked: a new file lands in batch 2.
    _land(lake, catalog, good[0].replace("/a.", "/c."), good[1])
    assert ingest(spark, lake, catalog, dataset).batch == 2


class FlakyStorage(LocalStorage):
    """A local lake whose landing reads fail (connection reset) while ``failing`` is set."""

    failing = False

    def open_read(self, path: str):
        if self.failing and path.startswith("landing/"):
            raise ConnectionResetError(f"{path}: connection reset by peer (injected)")
        return super().open_read(path)


@pytest.mark.floor
def test_a_transient_storage_failure_is_retried_then_failed_then_retry_lands_it(
    spark, lake_settings, catalog
):
    storage = FlakyStorage(lake_settings.lake.root)
    settings = Settings(lake=lake_settings.lake, retry=RetrySettings(attempts=2, wait_seconds=0))
    _land(storage, catalog, "orders/a.csv", ORDERS_A)

    def fault(point: str) -> None:
        if point == "after_manifest":
            storage.failing = True  # the store goes away after the batch is written down

    with pytest.raises(BatchFailedError) as err:
        IngestJob(spark, storage, catalog, settings=settings, fault=fault).run("orders")
    manifest = Manifests(storage, "orders").latest()
    assert (manifest.status, manifest.attempts) == ("failed", 2)
    assert manifest.error.startswith("storage: ") and "\n" not in manifest.error
    assert err.value.code is RunCode.BATCH_FAILED
    runs = RunLedger(spark, storage).latest(dataset="orders")
    assert runs[0]["status"] == "failed" and "\n" not in runs[0]["error"]
    assert run_error_code(runs[0]["error"]) is RunCode.STORAGE
    # While it is failed, later runs refuse at once (no silent retry loop), naming what to do.
    with pytest.raises(BatchFailedError, match="batches retry"):
        ingest(spark, storage, catalog, "orders", settings=settings)
    storage.failing = False
    retry_batch(storage, "orders", manifest.batch)
    result = ingest(spark, storage, catalog, "orders", settings=settings)
    assert (result.status, result.batch, result.rows) == ("succeeded", 1, 2)
    assert Manifests(storage, "orders").latest().status == "committed"


FIXTURE = Path(__file__).parents[2] / "fixtures" / "lake_v0"


@pytest.mark.floor
def test_a_lake_written_before_the_codes_were_closed_reads_back_as_members(spark, tmp_path, catalog):
    from ingestion.core.lake import quarantine_rows_table
    from ingestion.core.reasons import PathCode, RowCheck, parse_run_code, row_check_kind
    from ingestion.poison import PoisonBox

    root = tmp_path / "lake"
    shutil.copytree(FIXTURE, root)
    storage = LocalStorage(root)
    ledger = Ledger(storage)
    codes = {e.path: e.reason_code for e in ledger.entries("orders") if e.status == "rejected"}
    assert codes == {
        "orders/2026/11/picture.csv": FileCode.BINARY,
        "orders/2026/11/empty.csv": FileCode.EMPTY,
        "orders/2026/11/other.csv": FileCode.WRONG_FORMAT,
        "orders/2026/11/bad.csv.gz": FileCode.BAD_GZIP,
    }
    assert all(type(c) is FileCode for c in codes.values())
    assert {e.reason_code for e in ledger.entries("_unrouted")} == {PathCode.TRAVERSAL, PathCode.NO_DATASET}
    rejected = Manifests(storage, "orders").get(1).by_disposition("rejected")
    assert {f.reason_code for f in rejected} == set(codes.values())
    reasons = [o.path for o in storage.list("quarantine/orders") if o.path.endswith(".reason.json")]
    import json

    assert {FileCode.parse(json.loads(storage.read_bytes(p))["code"]) for p in reasons} == set(codes.values())
    errors = (
        spark.read.format("delta")
        .load(storage.uri(quarantine_rows_table("orders")))
        .selectExpr("explode(_errors) as e")
    )
    kinds = {row_check_kind(r.e.check, rules=["shipped_after_ordered"]) for r in errors.collect()}
    assert kinds == {RowCheck.PARSE, RowCheck.CAST, RowCheck.NOT_NULLABLE, RowCheck.CHECK, RowCheck.RULE}
    failed = [r for r in RunLedger(spark, storage).latest(limit=50) if r["status"] == "failed"]
    assert [(r["dataset"], run_error_code(r["error"])) for r in failed] == [("customers", RunCode.SPARK)]
    assert {parse_run_code(p.reason_code) for p in PoisonBox(storage).parked()} == {
        RunCode.UNKNOWN,
        RunCode.STORAGE,
    }
    # The batch the old code left open (a truncated gzip) no longer blocks: it is rejected.
    result = ingest(spark, storage, catalog, "customers")
    assert result.status == "succeeded" and result.batch == 2
    assert [(r["path"], r["code"]) for r in result.rejected] == [
        ("customers/2026/11/truncated.jsonl.gz", "unreadable")
    ]


def _parquet_catalog():
    import pandera.pyspark as pa

    from ingestion.contracts import Catalog, Dataset, Parquet

    class Readings(pa.DataFrameModel):
        id: T.StringType() = pa.Field()
        value: T.IntegerType() = pa.Field(nullable=True)

    return Catalog(
        [
            Dataset(
                name="pq",
                landing="pq/*.parquet",
                format=Parquet(),
                columns=lambda: Readings,
                primary_key=("id",),
            )
        ]
    )


def _parquet_bytes(spark, tmp_path: Path, rows: list[tuple[str, int]], name: str) -> bytes:
    out = tmp_path / name
    spark.createDataFrame(rows, "id string, value int").coalesce(1).write.parquet(str(out))
    return next(out.glob("part-*.parquet")).read_bytes()


def _corrupt_footer(data: bytes) -> bytes:
    """Keep both PAR1 magics (the sniffer passes it) but scramble the footer's Thrift metadata."""
    footer_len = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_len
    return data[:start] + bytes(b ^ 0x5A for b in data[start:-8]) + data[-8:]


@pytest.mark.floor
def test_a_parquet_file_with_a_corrupt_footer_is_rejected_unreadable_and_the_rest_lands(
    spark, lake, tmp_path
):
    from chispa import assert_df_equality

    catalog = _parquet_catalog()
    good = _parquet_bytes(spark, tmp_path, [("a", 1), ("b", 2)], "good")
    other = _parquet_bytes(spark, tmp_path, [("c", 3)], "other")
    bad = _corrupt_footer(_parquet_bytes(spark, tmp_path, [("x", 9)], "bad"))
    assert bad[:4] == bad[-4:] == b"PAR1"
    for path, data in (("pq/a.parquet", good), ("pq/b.parquet", bad), ("pq/c.parquet", other)):
        _land(lake, catalog, path, data)

    result = ingest(spark, lake, catalog, "pq")

    assert (result.status, result.batch, result.files_ingested, result.rows) == ("succeeded", 1, 2, 3)
    assert [(r["path"], r["code"]) for r in result.rejected] == [("pq/b.parquet", "unreadable")]
    reason = result.rejected[0]["reason"]
    assert reason.startswith("the engine cannot read this file: ") and "\n" not in reason
    landed = spark.read.format("delta").load(lake.uri("bronze/pq")).select("id", "value", "_source_path")
    expected = spark.createDataFrame(
        [("a", "1", "pq/a.parquet"), ("b", "2", "pq/a.parquet"), ("c", "3", "pq/c.parquet")],
        "id string, value string, _source_path string",
    )
    assert_df_equality(landed, expected, ignore_row_order=True, ignore_nullable=True)
    manifest = Manifests(lake, "pq").latest()
    assert manifest.status == "committed"
    assert [(f.path, f.reason_code) for f in manifest.by_disposition("rejected")] == [
        ("pq/b.parquet", FileCode.UNREADABLE)
    ]
    assert lake.exists("landing/pq/b.parquet")  # nothing is lost: the original stays in landing
    assert any(o.path.endswith("pq/b.parquet.reason.json") for o in lake.list("quarantine/pq"))


class EngineDown(RuntimeError):
    __module__ = "py4j.protocol"  # classified like a JVM failure (transient spark)


@pytest.mark.floor
@pytest.mark.parametrize(
    ("error", "alive", "code"),
    [
        (EngineDown("Answer from Java side is empty (injected)"), False, "spark"),  # the engine is down
        (TypeError("unsupported operand (injected)"), True, "unknown"),  # our own code fails
    ],
    ids=["engine_down", "code_error"],
)
def test_a_failure_no_file_explains_blames_no_file(
    spark, lake, lake_settings, tmp_path, monkeypatch, error, alive, code
):
    """Every file failing alone for a reason outside the files quarantines none of them."""
    catalog = _parquet_catalog()
    _land(lake, catalog, "pq/a.parquet", _parquet_bytes(spark, tmp_path, [("a", 1)], "a"))
    _land(lake, catalog, "pq/b.parquet", _parquet_bytes(spark, tmp_path, [("b", 2)], "b"))

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(IngestJob, "_scan", fails)
    monkeypatch.setattr(IngestJob, "_engine_alive", lambda self: alive)
    settings = Settings(lake=lake_settings.lake, retry=RetrySettings(attempts=2, wait_seconds=0))
    with pytest.raises(BatchFailedError):
        IngestJob(spark, lake, catalog, settings=settings).run("pq")
    manifest = Manifests(lake, "pq").latest()
    assert manifest.status == "failed" and manifest.error.startswith(f"{code}: ")
    assert manifest.by_disposition("rejected") == []  # no file was blamed
    assert [f.path for f in manifest.by_disposition("ingest")] == ["pq/a.parquet", "pq/b.parquet"]
    assert not lake.exists("quarantine/pq")


# Every FileCode, from the input that produces it (the note lists these cases).
ORDERS_CASES = {
    "orders/good.csv": (ORDERS_A, None),
    "orders/missing.csv": (ORDERS_A, FileCode.MISSING),  # deleted from landing before the run
    "orders/blank.csv": (b"  \n\n \t\n", FileCode.EMPTY),
    "orders/picture.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", FileCode.BINARY),
    "orders/short.csv.gz": (_truncated(ORDERS_A), FileCode.BAD_GZIP),
    "orders/latin1.csv": (
        ORDERS_HEADER + "O-9,C-1,n\u00e9,1,1,2026-01-01,,x\n".encode("latin-1"),
        FileCode.ENCODING,
    ),
    "orders/no_header.csv": (b",,,\nO-1,C-1,new,1\n", FileCode.NO_HEADER),
    "orders/twice.csv": (b"order_id,order_id,status\nO-1,O-1,new\n", FileCode.DUPLICATE_COLUMNS),
    "orders/other.csv": (b"colour,size\nred,9\n", FileCode.WRONG_FORMAT),
    "orders/extra.csv": (
        ORDERS_HEADER.rstrip(b"\n") + b",discount\n" + ORDERS_A.split(b"\n")[1] + b",5\n",
        FileCode.UNKNOWN_COLUMNS,
    ),
}


@pytest.mark.floor
def test_every_file_code_comes_from_its_case_and_the_good_file_still_lands(
    spark, lake, lake_settings, catalog, tmp_path
):
    from ingestion.bronze.batches import abandon_batch

    cases = ORDERS_CASES
    for path, (data, _) in cases.items():
        _land(lake, catalog, path, data)
    lake.delete("landing/orders/missing.csv")
    result = ingest(spark, lake, catalog, "orders")
    got = {r["path"]: r["code"] for r in result.rejected}
    assert got == {p: c for p, (_, c) in cases.items() if c is not None}
    assert (result.files_ingested, result.rows) == (1, 2)

    _land(lake, catalog, "customers/garbage.jsonl", b"{not json\n[1,2]\n")
    _land(lake, catalog, "customers/array.jsonl", b'[{"customer_id": "C-1"}]\n')
    customers = ingest(spark, lake, catalog, "customers")
    assert {r["path"]: r["code"] for r in customers.rejected} == {
        "customers/garbage.jsonl": FileCode.UNPARSEABLE,
        "customers/array.jsonl": FileCode.WRONG_FORMAT,
    }

    pq = _parquet_catalog()
    _land(lake, pq, "pq/csv.parquet", ORDERS_A)
    _land(lake, pq, "pq/footer.parquet", _corrupt_footer(_parquet_bytes(spark, tmp_path, [("x", 1)], "f")))
    _land(lake, pq, "pq/ok.parquet", _parquet_bytes(spark, tmp_path, [("y", 2)], "ok"))
    parquet = ingest(spark, lake, pq, "pq")
    assert {r["path"]: r["code"] for r in parquet.rejected} == {
        "pq/csv.parquet": FileCode.NOT_PARQUET,
        "pq/footer.parquet": FileCode.UNREADABLE,
    }

    # abandoned: an operator gives up on a failed batch; its files go to quarantine, nothing lost.
    _land(lake, catalog, "orders/late.csv", ORDERS_A)
    manifests = Manifests(lake, "orders")
    storage = FlakyStorage(lake.root)
    settings = Settings(lake=lake_settings.lake, retry=RetrySettings(attempts=1, wait_seconds=0))

    def fault(point: str) -> None:
        storage.failing = storage.failing or point == "after_manifest"

    with pytest.raises(BatchFailedError):
        IngestJob(spark, storage, catalog, settings=settings, fault=fault).run("orders")
    failed = manifests.latest()
    abandon_batch(spark, lake, catalog, "orders", failed.batch)
    entry = next(e for e in Ledger(lake).entries("orders") if e.path == "orders/late.csv")
    assert (entry.status, entry.reason_code) == ("rejected", FileCode.ABANDONED)
    assert lake.exists("landing/orders/late.csv")
    assert ingest(spark, lake, catalog, "orders").status == "skipped"  # later batches go on
    assert set(FileCode) - {c for _, c in ORDERS_CASES.values()} == {
        FileCode.UNPARSEABLE,
        FileCode.NOT_PARQUET,
        FileCode.UNREADABLE,
        FileCode.ABANDONED,
        FileCode.BAD_CHANGES,  # the SQL trigger's, from its payload: tests/functions/test_sql_trigger.py
        # A change file whose source dropped or retyped a column: tests/ingestion/changes/test_puller.py
        # and tests/functions/test_sql_trigger.py
        FileCode.SCHEMA,
    }
