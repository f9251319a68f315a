"""Closed reason codes, error classification and one-line errors (no Spark)."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc

import pytest

from ingestion.bronze.content import ContentScan
from ingestion.contracts.paths import check_landing_path
from ingestion.core.errors import (
    BatchFailedError,
    ContractError,
    FileRejectedError,
    LeaseHeldError,
    RejectedPathError,
    StorageError,
    classify,
    describe,
    one_line,
)
from ingestion.core.reasons import (
    FileCode,
    PathCode,
    RowCheck,
    RunCode,
    UnknownCodeError,
    parse_run_code,
    parse_stored,
    row_check_kind,
    run_error_code,
)


def test_members_are_their_stored_strings_in_json_and_text():
    assert FileCode.BAD_GZIP == "bad_gzip"
    assert json.dumps({"code": FileCode.BAD_GZIP}) == '{"code": "bad_gzip"}'
    assert f"{RunCode.STORAGE}: x" == "storage: x" and str(PathCode.TRAVERSAL) == "traversal"


def test_an_unknown_code_is_refused_naming_it_and_the_valid_ones():
    with pytest.raises(UnknownCodeError) as err:
        FileCode.parse("bad_gzpi")
    assert "'bad_gzpi'" in str(err.value) and "bad_gzip" in str(err.value) and "unreadable" in str(err.value)
    with pytest.raises(UnknownCodeError):
        parse_stored("no such code")


def test_legacy_codes_read_back():
    assert parse_run_code("LeaseHeldError") is RunCode.LEASE_HELD
    assert parse_run_code("ValueError") is RunCode.UNKNOWN  # class names before the codes were closed
    assert run_error_code("Py4JJavaError: An error occurred while calling o1.save.") is RunCode.SPARK
    assert run_error_code("storage: lake unreachable") is RunCode.STORAGE
    assert row_check_kind("cast") is RowCheck.CAST
    assert row_check_kind("shipped_after_ordered", rules=["shipped_after_ordered"]) is RowCheck.RULE
    assert row_check_kind("isin") is RowCheck.CHECK


def test_errors_carry_their_code_and_whether_they_are_transient():
    assert classify(FileRejectedError("a.csv", "bad", FileCode.BINARY)) == (FileCode.BINARY, False)
    assert classify(ContractError("orders", ["x"])) == (RunCode.CONTRACT, False)
    assert classify(StorageError("down")) == (RunCode.STORAGE, True)
    assert classify(LeaseHeldError("orders", "run-1", 0)) == (RunCode.LEASE_HELD, True)
    assert classify(ConnectionResetError("reset")) == (RunCode.STORAGE, True)
    assert classify(RuntimeError("?")) == (RunCode.UNKNOWN, True)
    assert classify(BatchFailedError("orders", 3, "storage: down")) == (RunCode.BATCH_FAILED, False)
    assert classify(RejectedPathError("../x", "traversal", PathCode.TRAVERSAL))[0] is PathCode.TRAVERSAL


def test_one_line_takes_the_root_cause_of_a_jvm_error():
    class Java:
        def __init__(self, text, cause=None):
            self.text, self.cause = text, cause

        def getCause(self):  # noqa: N802 - the py4j spelling
            return self.cause

        def toString(self):  # noqa: N802
            return self.text

    class Py4JLike(Exception):
        pass

    err = Py4JLike(
        "An error occurred while calling o1.save.\n: org.apache.spark.SparkException: Job aborted\n\tat x"
    )
    err.java_exception = Java(
        "SparkException: Job aborted", Java("java.io.EOFException: Unexpected end of input stream")
    )
    assert one_line(err) == "java.io.EOFException: Unexpected end of input stream"
    multi = RuntimeError("first line\nsecond line\n" + "trace\n" * 40)
    assert describe(multi) == "unknown: first line"
    assert "\n" not in describe(RuntimeError("x" * 5000)) and len(describe(RuntimeError("x" * 5000))) < 320


def _scan(data: bytes, chunk: int = 4096) -> ContentScan:
    scan = ContentScan(gz=True)
    for i in range(0, len(data), chunk):
        scan.feed(data[i : i + chunk])
    return scan.finish()


def test_content_scan_finds_truncated_and_corrupt_gzip_and_accepts_whole_members():
    whole = gzip.compress(b"a,b\n1,2\n" * 5000)
    assert _scan(whole).gzip_error is None
    assert _scan(whole + gzip.compress(b"3,4\n")).gzip_error is None  # concatenated members
    truncated = _scan(whole[: len(whole) // 2]).gzip_error
    assert truncated is not None and truncated.startswith("truncated gzip stream")
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 20] = b"\xff" * 20
    assert _scan(bytes(corrupt)).gzip_error is not None
    plain = ContentScan(gz=True)
    plain.feed(b"not gzip at all")  # no magic: left to the sniffer's precise message
    assert plain.finish().gzip_error is None


def test_content_scan_memory_stays_bounded_by_the_chunk_not_the_stream():
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB decompressed
    tracemalloc.start()
    try:
        scan = _scan(bomb, chunk=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.gzip_error is None
    assert peak < 8 * 1024 * 1024, peak  # measured ~2-3 MiB: one decompressed chunk plus input


@pytest.mark.parametrize("name", ["meter/\u202ertl.jsonl", "meter/a\u200bb.jsonl", "meter/\ufeffa.jsonl"])
def test_unicode_format_characters_in_paths_are_rejected(name):
    with pytest.raises(RejectedPathError) as err:
        check_landing_path(name)
    assert err.value.code is PathCode.FORMAT_CHARS and "U+" in err.value.reason


def test_readmit_refuses_an_unknown_code_and_lists_the_valid_ones(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ingestion.core.config import get_settings
    from jobs.cli import app

    monkeypatch.setenv("HEADWATER_LAKE__ROOT", os.fspath(tmp_path / "lake"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["readmit", "--dataset", "orders", "--code", "bad_gzpi"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    text = " ".join((result.stdout + (result.stderr or "")).split())
    assert "'bad_gzpi'" in text and "bad_gzip" in text and "abandoned" in text
