"""The pyodbc change puller (watermark mode), through Debian's SQLite ODBC driver."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ingestion.changes.puller import ChangeSourceError, PullState, pull, select_sql
from ingestion.contracts import Catalog
from ingestion.core.config import Settings
from ingestion.core.errors import ConfigError
from ingestion.events import EventHandler, Ledger

PACKAGE = "tests.ingestion.changes.pull_schemas"


@pytest.fixture
def club(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    """The source table in a SQLite file, its ODBC connection string in the app setting."""
    db = tmp_path / "club.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TABLE members (id TEXT PRIMARY KEY, name TEXT, version INTEGER, is_deleted INTEGER, note TEXT)"
    )
    conn.executemany(
        "INSERT INTO members VALUES (?, ?, ?, ?, 'not pulled')",
        [("M-1", "ann", 1, 0), ("M-2", "bob", 2, 0), ("M-3", "cy", 3, 1)],
    )
    monkeypatch.setenv("CLUB_SQL", f"Driver=SQLite3;Database={db}")
    return conn


@pytest.fixture
def setup(lake):  # noqa: ANN001, ANN201
    catalog = Catalog.discover(PACKAGE)
    handler = EventHandler(Ledger(lake), catalog)

    def run():  # noqa: ANN202
        return pull(
            lake,
            catalog,
            catalog.source("club"),
            settings=Settings(),
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
        )

    return catalog, run


def _file_rows(lake, result) -> list[dict]:  # noqa: ANN001
    return [
        json.loads(line)
        for f in result.files
        for line in lake.read_bytes(f"landing/{f.path}").decode().splitlines()
    ]


def test_the_query_quotes_identifiers_and_binds_the_watermark(setup):
    catalog, _ = setup
    src = catalog.source("club")
    assert select_sql(src, bounded=True) == (
        'SELECT "id", "name", "version", "is_deleted" FROM "members" WHERE "version" >= ? ORDER BY "version", "id"'
    )


def test_pulls_land_each_change_once_and_catch_a_late_commit_within_the_lookback(lake, club, setup):
    _, run = setup
    first = run()
    assert (first.rows, first.again, first.full, first.watermark) == (3, 0, True, 3)
    assert _file_rows(lake, first) == [
        {"id": "M-1", "name": "ann", "version": 1, "_change_op": "U"},
        {"id": "M-2", "name": "bob", "version": 2, "_change_op": "U"},
        {"id": "M-3", "name": "cy", "version": 3, "_change_op": "D"},
    ]
    assert [q.path for q in Ledger(lake).queued("members")] == [first.files[0].path]
    assert first.files[0].path.startswith("members/club/pull-000000000000-")

    # A transaction in flight at the first pull commits with an older version (2), and M-1 changes.
    club.execute("INSERT INTO members VALUES ('M-4', 'dee', 2, 0, '')")
    club.execute("UPDATE members SET name = 'ann5', version = 5 WHERE id = 'M-1'")
    second = run()
    assert (second.rows, second.again, second.watermark) == (2, 2, 5)  # read v>=1 again: M-2, M-3 seen
    assert [(r["id"], r["version"]) for r in _file_rows(lake, second)] == [("M-4", 2), ("M-1", 5)]

    third = run()
    assert (third.rows, third.files, third.watermark) == (0, [], 5)
    state = PullState.load(lake, "club")
    assert state.mark == {"type": "int", "value": 5} and state.files == 2
    assert sorted(map(tuple, state.seen)) == [("M-1", 5), ("M-3", 3)]  # within the lookback of 5


def test_the_connection_string_never_leaks_and_a_missing_setting_is_named(lake, setup, monkeypatch):
    _, run = setup
    monkeypatch.delenv("CLUB_SQL", raising=False)
    with pytest.raises(ConfigError, match="app setting 'CLUB_SQL' holding its connection string is not set"):
        run()
    monkeypatch.setenv("CLUB_SQL", "Driver=NoSuchDriver;Server=db.example;PWD=hunter2secret")
    with pytest.raises(ChangeSourceError) as err:
        run()
    assert "could not connect" in str(err.value) and "hunter2secret" not in str(err.value)
    assert err.value.transient and not lake.exists(PullState.path("club"))


@pytest.mark.spark
def test_pulled_changes_reach_silver_as_current_state(spark, lake, club, setup):
    from chispa import assert_df_equality

    from ingestion import lake as layout
    from ingestion.bronze.job import ingest
    from transforms.silver import curate

    catalog, run = setup
    run()
    club.execute("UPDATE members SET name = 'bob4', version = 4 WHERE id = 'M-2'")
    club.execute("UPDATE members SET is_deleted = 1, version = 6 WHERE id = 'M-1'")
    run()
    assert ingest(spark, lake, catalog, "members").status == "succeeded"
    rec = curate(spark, lake, catalog, "members")
    assert (rec.status, rec.rows_quarantined) == ("succeeded", 0)
    silver = spark.read.format("delta").load(lake.uri(layout.silver_table("members")))
    assert_df_equality(
        silver.select("id", "name", "version", "_change_op").orderBy("id"),
        spark.createDataFrame(
            [("M-2", "bob4", 4, "U")], "id string, name string, version long, _change_op string"
        ),
        ignore_nullable=True,
    )


@pytest.mark.postgres
def test_a_timestamp_watermark_on_postgresql_reads_back_the_lookback_and_ties_break_on_the_key(
    lake, postgres, monkeypatch
):
    import pyodbc

    from ingestion.changes import SqlSource

    conn = pyodbc.connect(postgres.odbc(), autocommit=True)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS public.members")
    cur.execute(
        "CREATE TABLE public.members (id text PRIMARY KEY, name text, version bigint, updated_at timestamp(6))"
    )
    cur.execute(
        "INSERT INTO public.members VALUES ('M-2', 'bob', 1, '2026-12-01 10:00:00.123456'), "
        "('M-1', 'ann', 1, '2026-12-01 10:00:00.123456'), ('M-3', 'cy', 1, '2026-12-01 09:00:00')"
    )
    monkeypatch.setenv("CLUB_PG", postgres.odbc())
    catalog = Catalog.discover(PACKAGE)
    source = SqlSource(
        name="club",
        dataset="members",
        connection_setting="CLUB_PG",
        table="public.members",
        key=("id",),
        mode="watermark",
        watermark="updated_at",
        lookback=60,
        trigger=False,
    )
    handler = EventHandler(Ledger(lake), catalog)

    def run():  # noqa: ANN202
        return pull(
            lake,
            catalog,
            source,
            settings=Settings(),
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
        )

    first = run()
    assert [(r["id"], r["updated_at"]) for r in _file_rows(lake, first)] == [
        ("M-3", "2026-12-01 09:00:00.000000"),
        ("M-1", "2026-12-01 10:00:00.123456"),  # the same time: the key breaks the tie
        ("M-2", "2026-12-01 10:00:00.123456"),
    ]
    # Committed late, 30 s behind the stored watermark: inside the 60 s lookback.
    cur.execute("INSERT INTO public.members VALUES ('M-4', 'dee', 1, '2026-12-01 09:59:30')")
    second = run()
    assert (second.rows, second.again) == (1, 2)
    assert [r["id"] for r in _file_rows(lake, second)] == ["M-4"]
    assert PullState.load(lake, "club").mark == {"type": "datetime", "value": "2026-12-01T10:00:00.123456"}
    conn.close()


def test_keys_gone_from_the_table_are_landed_as_deletes_by_the_snapshot_diff(lake, club, setup):
    from dataclasses import replace

    catalog, _ = setup
    handler = EventHandler(Ledger(lake), catalog)
    source = replace(catalog.source("club"), soft_delete_column=None, snapshot_deletes=True, snapshot_every=3)

    def run(snapshot=None):  # noqa: ANN001, ANN202
        return pull(
            lake,
            catalog,
            source,
            settings=Settings(),
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
            snapshot=snapshot,
        )

    first = run()  # the first pull takes the first snapshot: nothing vanished yet
    assert (first.rows, first.snapshot, first.vanished) == (3, True, 0)
    club.execute("DELETE FROM members WHERE id = 'M-2'")  # a hard delete: no watermark moves
    club.execute("UPDATE members SET version = 5 WHERE id = 'M-1'")
    second = run()  # not due (1 of 3): the delete waits, the update lands
    assert (second.rows, second.snapshot, second.vanished) == (1, False, 0)
    third = run(snapshot=True)
    assert (third.rows, third.snapshot, third.vanished) == (0, True, 1)
    # The delete carries the newest watermark seen, so it orders after the key's last change.
    assert [
        json.loads(x) for x in lake.read_bytes(f"landing/{third.files[0].path}").decode().splitlines()
    ] == [{"id": "M-2", "version": 5, "_change_op": "D"}]
    assert run(snapshot=True).vanished == 0  # landed once


def test_a_crash_before_the_watermark_is_stored_lands_nothing_twice(lake, club, setup, monkeypatch):
    _, run = setup
    real = PullState.save

    def crash(self, storage, source):  # noqa: ANN001, ANN202
        raise OSError("killed after landing, before storing the watermark")

    monkeypatch.setattr(PullState, "save", crash)
    with pytest.raises(OSError, match="killed after landing"):
        run()
    monkeypatch.setattr(PullState, "save", real)
    again = run()  # the same rows again: the same file name, kept once
    assert (again.rows, len(again.files), again.files[0].already) == (3, 1, True)
    assert len(Ledger(lake).queued("members")) == 1 and len(list(lake.list("landing/members"))) == 1


def test_the_connection_string_is_in_no_log_line_and_no_lake_file(
    lake, club, setup, caplog, monkeypatch, tmp_path
):
    import logging

    _, run = setup
    secret = "Pwd-s3cr3t-value"
    monkeypatch.setenv("CLUB_SQL", f"Driver=SQLite3;Database={tmp_path / 'club.db'};PWD={secret}")
    with caplog.at_level(logging.DEBUG):
        assert run().rows == 3
        monkeypatch.setenv("CLUB_SQL", f"Driver=NoSuchDriver;PWD={secret}")
        with pytest.raises(ChangeSourceError):
            run()
    assert caplog.records and not any(secret in r.getMessage() for r in caplog.records)
    files = [p for p in lake.root.rglob("*") if p.is_file()]
    assert files and not any(secret.encode() in p.read_bytes() for p in files)


@pytest.mark.spark
def test_a_dropped_or_retyped_source_column_sends_its_changes_to_quarantine_with_the_schema_reason(
    spark, lake, club, setup
):
    from chispa import assert_df_equality

    from ingestion import lake as layout
    from ingestion.bronze.job import ingest
    from ingestion.changes import columns
    from transforms.silver import curate

    catalog, run = setup
    first = run()
    assert ingest(spark, lake, catalog, "members").status == "succeeded"
    assert curate(spark, lake, catalog, "members").status == "succeeded"
    record = columns.load(lake, columns.digest_of(first.files[0].path))  # type: ignore[arg-type]
    assert record is not None and dict(record.kinds) == {"id": "text", "name": "text", "version": "integer"}

    # The source drops `name`: the pull goes on without it, and ingest quarantines the file.
    club.execute("ALTER TABLE members DROP COLUMN name")
    club.execute("UPDATE members SET version = 5 WHERE id = 'M-2'")
    dropped = run()
    assert dropped.rows == 1 and _file_rows(lake, dropped) == [{"id": "M-2", "version": 5, "_change_op": "U"}]
    result = ingest(spark, lake, catalog, "members")
    assert [(r["path"], r["code"], r["reason"]) for r in result.rejected] == [
        (dropped.files[0].path, "schema", "name: dropped at the source: the changes carry no such column")
    ]

    # The source retypes `version` to REAL: its values are no longer integers.
    club.execute("DROP TABLE members")
    club.execute("CREATE TABLE members (id TEXT PRIMARY KEY, name TEXT, version REAL, is_deleted INTEGER)")
    club.execute("INSERT INTO members VALUES ('M-2', 'bob6', 6.5, 0)")
    retyped = run()
    result = ingest(spark, lake, catalog, "members")
    assert [(r["code"], r["reason"]) for r in result.rejected] == [
        ("schema", "version: retyped at the source: it now sends number values, the contract says bigint")
    ]
    # Nothing is lost: each file stays in landing and is copied to quarantine with its reason.
    for pulled in (dropped, retyped):
        path = pulled.files[0].path
        assert lake.exists(f"landing/{path}")
        quarantined = lake.list(layout.quarantine_files("members"))
        [reason] = [o.path for o in quarantined if o.path.endswith(f"{path}.reason.json")]
        assert json.loads(lake.read_bytes(reason))["code"] == "schema"
    assert {e.status for e in Ledger(lake).entries("members") if e.path != first.files[0].path} == {
        "rejected"
    }

    # The table is put back: the next changes flow, so no schema change blocks the dataset.
    club.execute("DROP TABLE members")
    club.execute("CREATE TABLE members (id TEXT PRIMARY KEY, name TEXT, version INTEGER, is_deleted INTEGER)")
    club.execute("INSERT INTO members VALUES ('M-2', 'bob7', 7, 0)")
    run()
    assert ingest(spark, lake, catalog, "members").status == "succeeded"
    assert curate(spark, lake, catalog, "members").status == "succeeded"
    silver = spark.read.format("delta").load(lake.uri(layout.silver_table("members")))
    assert_df_equality(
        silver.select("id", "name", "version").orderBy("id"),
        spark.createDataFrame(
            [("M-1", "ann", 1), ("M-2", "bob7", 7)], "id string, name string, version long"
        ),
        ignore_nullable=True,
    )
