"""Bounded lines (issue 9): a line of max_line_bytes or more lands as a line_too_long row."""

import gzip
import json
import tracemalloc

import pytest

from ingestion.bronze.content import ContentScan, text_chunks
from ingestion.bronze.lines import HEAD_BYTES, LineScan, delivered_before, long_lines
from ingestion.core.config import Settings
from ingestion.core.storage import LocalStorage

MAX = 100

# Files whose every line ending, BOM and blank line is one the line reader treats its own way.
CASES = {
    "lf": b"a" * 97 + b"\n" + b"b" * 98 + b"\n" + b"c" * 99 + b"\n" + b"d" * 100 + b"\n" + b"e\n",
    "crlf": b"a" * 97 + b"\r\n" + b"b" * 98 + b"\r\n" + b"c\r\n",
    "lone_cr": b"a" * 10 + b"\r" + b"b" * 120 + b"\r" + b"c\r",
    "no_final_break": b"x\n" + b"y" * 100,
    "bom": b"\xef\xbb\xbf" + b"z" * 99 + b"\nd\n",
    "blank_and_long": b"\n   \n" + b"q" * 150 + b"\n" + b" " * 150 + b"\nok\n",
}


def _lines_spark_delivers(spark, path: str) -> list[str]:
    df = spark.read.option("mapreduce.input.linerecordreader.line.maxlength", str(MAX)).text(path)
    return [r.value for r in df.collect()]


def _split_like_hadoop(data: bytes) -> list[bytes]:
    import re

    parts = re.split(rb"\r\n|\r|\n", data)
    return parts[:-1] if parts and parts[-1] == b"" else parts


@pytest.mark.spark
@pytest.mark.floor
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_long_lines_found_are_exactly_the_lines_spark_skips(spark, tmp_path, case, gz):
    data = CASES[case]
    path = tmp_path / "landing" / (f"{case}.txt.gz" if gz else f"{case}.txt")
    path.parent.mkdir()
    path.write_bytes(gzip.compress(data) if gz else data)
    delivered = _lines_spark_delivers(spark, str(path))

    found = long_lines(
        text_chunks(LocalStorage(tmp_path), f"landing/{path.name}"), max_line=MAX, csv=False, csv_header=False
    )

    lines = _split_like_hadoop(data)
    skipped = {x.line for x in found}
    kept = [ln.removeprefix(b"\xef\xbb\xbf").decode() for i, ln in enumerate(lines, 1) if i not in skipped]
    assert kept == delivered
    assert found, "every case holds at least one long line"
    assert all(x.head == lines[x.line - 1][:HEAD_BYTES] for x in found)
    # The first pass never misses a file the second pass finds lines in.
    scan = LineScan(MAX)
    for chunk in text_chunks(LocalStorage(tmp_path), f"landing/{path.name}"):
        scan.feed(chunk)
    assert scan.flagged


def test_the_first_pass_does_not_flag_short_lines_across_chunks():
    scan = LineScan(MAX)
    for chunk in (b"a" * 50, b"b" * 40 + b"\n", b"c" * 90, b"\r\n" + b"d" * 60):
        scan.feed(chunk)
    assert not scan.flagged
    scan.feed(b"d" * 40)  # the open line reaches 100 bytes
    assert scan.flagged


def test_a_break_split_across_chunks_counts_once():
    chunks = [b"a" * 97 + b"\r", b"\n" + b"b" * 5 + b"\n"]  # 97 + \r\n = 99 bytes: not long
    assert long_lines(iter(chunks), max_line=MAX, csv=False, csv_header=False) == []
    chunks = [b"a" * 98 + b"\r", b"\nb\n"]  # 98 + \r\n = 100 bytes: long
    (found,) = long_lines(iter(chunks), max_line=MAX, csv=False, csv_header=False)
    assert (found.line, found.size, found.records_before) == (1, 100, 0)


def test_csv_counts_records_without_the_header_and_blank_lines():
    data = b"id,v\n\n1,a\n" + b"2," + b"x" * 200 + b"\n   \n3,c\n" + b"4," + b"y" * 200 + b"\n5,e\n"
    found = long_lines(iter([data]), max_line=MAX, csv=True, csv_header=True)
    assert [(x.line, x.records_before, x.header) for x in found] == [(4, 1, False), (7, 2, False)]
    # Delivered records 1 (id 1), 2 (id 3), 3 (id 5) move to positions 1, 3, 5.
    skipped = delivered_before(found, csv=True)
    assert [k + sum(n < k for n in skipped) for k in (1, 2, 3)] == [1, 3, 5]
    (header,) = long_lines(iter([b"h" * 150 + b"\n1\n"]), max_line=MAX, csv=True, csv_header=True)
    assert header.header


def test_memory_stays_bounded_for_a_line_far_longer_than_the_bound(tmp_path):
    """Peak Python memory of both passes over a 48 MiB line, with a 64 KiB bound."""
    line_mib = 48
    path = tmp_path / "landing" / "big.jsonl"
    path.parent.mkdir()
    with path.open("wb") as fh:
        fh.write(b'{"id":"a"}\n')
        block = b"x" * (1024 * 1024)
        for _ in range(line_mib):
            fh.write(block)
        fh.write(b'\n{"id":"b"}\n')
    storage = LocalStorage(tmp_path)
    tracemalloc.start()
    try:
        scan = ContentScan(gz=False, lines=LineScan(64 * 1024))
        storage.sha256("landing/big.jsonl", observe=scan.feed)
        found = long_lines(
            text_chunks(storage, "landing/big.jsonl"), max_line=64 * 1024, csv=False, csv_header=False
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.lines is not None and scan.lines.flagged
    assert [(x.line, x.size) for x in found] == [(2, line_mib * 1024 * 1024 + 1)]
    # About two read chunks (4 MiB each) at a time, never the line: measured 8.0 MiB.
    assert peak < 10 * 1024 * 1024  # a fifth of the line


def _land(storage, catalog, path: str, data: bytes) -> None:
    from ingestion.events import EventHandler, Ledger

    info = storage.write_bytes(f"landing/{path}", data)
    assert EventHandler(Ledger(storage), catalog).file_landed(
        path, etag=info.etag, size=info.size
    ).outcome == ("queued")


CUSTOMER = {
    "name": "A",
    "email": "a@example.com",
    "country": "DE",
    "segment": "consumer",
    "signup_date": "2024-01-01",
    "lifetime_value": 1.5,
}


def _customer(cid: str, **extra: str) -> bytes:
    return json.dumps({"customer_id": cid, **CUSTOMER, **extra}).encode() + b"\n"


@pytest.mark.spark
@pytest.mark.floor
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_long_json_line_is_a_line_too_long_row_and_the_rest_of_the_file_lands(
    spark, lake, lake_settings, catalog, gz
):
    from chispa import assert_df_equality

    from transforms.silver import curate

    settings = Settings(lake=lake_settings.lake, max_line_bytes=512)
    long_record = _customer("C-002", notes="n" * 2000)
    data = _customer("C-001") + b"\n" + long_record + _customer("C-003") + long_record + _customer("C-004")
    name = "customers/a.jsonl.gz" if gz else "customers/a.jsonl"
    _land(lake, catalog, name, gzip.compress(data) if gz else data)

    from ingestion.bronze.job import ingest

    result = ingest(spark, lake, catalog, "customers", settings=settings)

    assert (result.status, result.files_ingested, result.rows, result.rejected) == ("succeeded", 1, 5, [])
    bronze = spark.read.format("delta").load(lake.uri("bronze/customers"))
    got = bronze.select("customer_id", "_source_row", "_parse_error").orderBy("_source_row")
    size = len(long_record)
    msg = f"line_too_long: line {{}} has {size} bytes with its line break; max_line_bytes is 512 (its first 1024 bytes are kept)"
    expected = spark.createDataFrame(
        [
            ("C-001", 1, None),
            (None, 3, msg.format(3)),
            ("C-003", 4, None),
            (None, 5, msg.format(5)),
            ("C-004", 6, None),
        ],
        "customer_id string, _source_row long, _parse_error string",
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    heads = [r._corrupt_record for r in bronze.where("_parse_error is not null").collect()]
    assert heads == [long_record[:HEAD_BYTES].decode()] * 2

    curated = curate(spark, lake, catalog, "customers", settings=settings)
    assert curated.status == "succeeded"
    silver = spark.read.format("delta").load(lake.uri("silver/customers"))
    assert sorted(r.customer_id for r in silver.collect()) == ["C-001", "C-003", "C-004"]
    quarantined = (
        spark.read.format("delta")
        .load(lake.uri("quarantine/customers/rows"))
        .selectExpr("_source_row", "explode(_errors) as e")
        .selectExpr("_source_row", "e.check as check")
        .orderBy("_source_row")
    )
    assert [tuple(r) for r in quarantined.collect()] == [(3, "line_too_long"), (5, "line_too_long")]


ORDERS_HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"


def _order(oid: str, status: str = "new") -> bytes:
    return f"{oid},C-001,{status},10.50,1,2026-01-01,,2026-01-01T10:00:00\n".encode()


@pytest.mark.spark
@pytest.mark.floor
def test_a_long_csv_record_is_a_line_too_long_row_with_its_record_position(
    spark, lake, lake_settings, catalog
):
    from ingestion.bronze.job import ingest

    settings = Settings(lake=lake_settings.lake, max_line_bytes=256)
    data = ORDERS_HEADER + _order("O-1") + b"\n" + _order("O-2", "x" * 400) + _order("O-3")
    _land(lake, catalog, "orders/a.csv", data)
    wide = ORDERS_HEADER.rstrip(b"\n") + b"".join(b",extra_%d" % i for i in range(40)) + b"\n"
    assert len(wide) > 256
    _land(lake, catalog, "orders/long_header.csv", wide + _order("O-9"))

    result = ingest(spark, lake, catalog, "orders", settings=settings)

    assert (result.files_ingested, result.rows) == (1, 3)
    assert [(r["path"], r["code"]) for r in result.rejected] == [("orders/long_header.csv", "no_header")]
    bronze = spark.read.format("delta").load(lake.uri("bronze/orders"))
    rows = bronze.select("order_id", "_source_row", "_parse_error").orderBy("_source_row").collect()
    assert [(r.order_id, r._source_row) for r in rows] == [("O-1", 1), (None, 2), ("O-3", 3)]
    assert rows[1]._parse_error.startswith("line_too_long: line 4 has ")
