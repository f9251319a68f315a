"""The commit protocol: tags, idempotent writes, restored settings, bounded log reads, format."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ingestion.core.spark import commits
from ingestion.core.spark.commits import (
    CommitIndex,
    CommitTag,
    find_commit,
    idempotent_write,
    session_conf,
    write_once,
)

ROOT = Path(__file__).resolve().parents[4]


# --- tags ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stored", "tag"),
    [
        # as today's code stamps them (bronze job, curate, quarantine, replay, publish)
        ("headwater-bronze-orders:3", CommitTag("bronze", "orders", 3)),
        ("headwater-silver-orders:12", CommitTag("silver", "orders", 12)),
        ("headwater-quarantine-orders:12", CommitTag("quarantine", "orders", 12)),
        ("headwater-replay-ev_rescue:4", CommitTag("replay", "ev_rescue", 4)),
        (
            "headwater-gold-customer_features:7;inputs=customers@3,orders@4",
            CommitTag("gold", "customer_features", 7, (("customers", 3), ("orders", 4))),
        ),
        ("headwater-gold-empty:0;inputs=", CommitTag("gold", "empty", 0, ())),
    ],
)
def test_tag_parses_the_strings_stored_today_and_formats_them_back(stored, tag):
    assert CommitTag.parse(stored) == tag
    assert str(tag) == stored
    assert CommitTag.parse(str(tag)) == tag


def test_gold_tag_sorts_its_pins_and_sums_them_into_its_txn():
    tag = CommitTag.gold("customer_features", {"orders": 4, "customers": 3})
    assert str(tag) == "headwater-gold-customer_features:7;inputs=customers@3,orders@4"
    assert tag.app_id == "headwater-gold-customer_features"
    assert tag.input_versions == {"customers": 3, "orders": 4}
    assert tag.options() == {
        "txnAppId": "headwater-gold-customer_features",
        "txnVersion": "7",
        "userMetadata": "headwater-gold-customer_features:7;inputs=customers@3,orders@4",
    }


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "t:1",
        "headwater-bronze-orders",
        "headwater-bronze-orders:x",
        "headwater-platinum-orders:1",
        "headwater-gold-features:1",  # a gold commit always names its inputs
        "headwater-silver-orders:1;inputs=a@1",  # only gold commits do
        "headwater-gold-features:1;inputs=a@x",
        "prefix headwater-bronze-orders:1",
    ],
)
def test_strings_that_are_not_our_tags_parse_to_none(text):
    assert CommitTag.parse(text) is None


def test_a_malformed_tag_cannot_be_built():
    with pytest.raises(ValueError, match="layer"):
        CommitTag("platinum", "orders", 1)
    with pytest.raises(ValueError, match="inputs"):
        CommitTag("gold", "features", 1)
    with pytest.raises(ValueError, match="txn"):
        CommitTag("bronze", "orders", -1)


# --- no unbounded log reads ------------------------------------------------------------------------
def test_no_unlimited_history_outside_the_commit_module():
    offenders = []
    for folder in ("ingestion", "transforms", "jobs", "functions", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "ingestion/core/spark/commits.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "history"
                    and not node.args
                    and not node.keywords
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_scan_would_see_an_unlimited_history():
    tree = ast.parse("DeltaTable.forPath(spark, uri).history().collect()")
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "history"
    ]
    assert len(calls) == 1 and not calls[0].args


# --- settings --------------------------------------------------------------------------------------
KEY_SET = "spark.headwater.test.already"
KEY_UNSET = "spark.headwater.test.unset"


@pytest.mark.spark
@pytest.mark.floor
def test_session_conf_restores_previous_values_also_after_an_exception(spark):
    spark.conf.set(KEY_SET, "before")
    spark.conf.unset(KEY_UNSET)
    try:
        with session_conf(spark, {KEY_SET: "inside", KEY_UNSET: "inside"}):
            assert spark.conf.get(KEY_SET) == "inside"
            assert spark.conf.get(KEY_UNSET) == "inside"
        assert spark.conf.get(KEY_SET) == "before"
        assert spark.conf.get(KEY_UNSET, None) is None

        with pytest.raises(RuntimeError, match="boom"), session_conf(spark, {KEY_SET: "x", KEY_UNSET: "y"}):
            raise RuntimeError("boom")
        assert spark.conf.get(KEY_SET) == "before"
        assert spark.conf.get(KEY_UNSET, None) is None
    finally:
        spark.conf.unset(KEY_SET)


@pytest.mark.spark
def test_merge_write_restores_the_txn_settings_that_were_there(spark):
    tag = CommitTag("silver", "orders", 5)
    spark.conf.set(commits.TXN_APP_ID_CONF, "outer-app")
    spark.conf.set(commits.TXN_VERSION_CONF, "41")
    spark.conf.unset(commits.USER_METADATA_CONF)
    try:
        with pytest.raises(RuntimeError), idempotent_write(spark, tag, merge=True, conf={KEY_UNSET: "on"}):
            assert spark.conf.get(commits.TXN_APP_ID_CONF) == "headwater-silver-orders"
            assert spark.conf.get(commits.TXN_VERSION_CONF) == "5"
            assert spark.conf.get(commits.USER_METADATA_CONF) == "headwater-silver-orders:5"
            assert spark.conf.get(KEY_UNSET) == "on"
            raise RuntimeError("merge failed")
        assert spark.conf.get(commits.TXN_APP_ID_CONF) == "outer-app"
        assert spark.conf.get(commits.TXN_VERSION_CONF) == "41"
        assert spark.conf.get(commits.USER_METADATA_CONF, None) is None
        assert spark.conf.get(KEY_UNSET, None) is None
    finally:
        spark.conf.unset(commits.TXN_APP_ID_CONF)
        spark.conf.unset(commits.TXN_VERSION_CONF)


@pytest.mark.spark
@pytest.mark.floor
def test_append_uses_writer_options_and_leaves_the_session_alone(spark, lake):
    table = "bronze/opts"
    tag = CommitTag("bronze", "opts", 1)
    with idempotent_write(spark, tag) as stamp:
        assert spark.conf.get(commits.TXN_APP_ID_CONF, None) is None
        assert spark.conf.get(commits.USER_METADATA_CONF, None) is None
        stamp(spark.range(2).write.format("delta").mode("append")).save(lake.uri(table))
    found = find_commit(spark, lake, table, tag)
    assert found is not None and (found.version, found.operation) == (0, "WRITE")
    assert found.user_metadata == "headwater-bronze-opts:1" and found.metric("numOutputRows") == 2


# --- exactly once ----------------------------------------------------------------------------------
def _append(spark, lake, table: str, rows: int):  # noqa: ANN202
    def write(stamp):  # noqa: ANN001, ANN202
        stamp(spark.range(rows).write.format("delta").mode("append")).save(lake.uri(table))

    return write


@pytest.mark.spark
@pytest.mark.floor
def test_rerun_after_a_crash_before_bookkeeping_finds_its_commit_and_writes_nothing_twice(spark, lake):
    from ingestion.core.spark.delta import table_version

    table = "silver/crash"
    uri = lake.uri(table)
    first = write_once(spark, lake, table, CommitTag("silver", "crash", 1), _append(spark, lake, table, 3))
    assert first is not None and first.version == 0
    # The crash: Delta commits batch 2, the process dies before our index records it.
    tag = CommitTag("silver", "crash", 2)
    with idempotent_write(spark, tag) as stamp:
        _append(spark, lake, table, 5)(stamp)
    index = CommitIndex(lake, table)
    assert index.get(1) is None and index.last().version == 0

    found = find_commit(spark, lake, table, tag)  # the rerun looks before writing
    assert found is not None and found.version == 1 and found.metric("numOutputRows") == 5
    again = write_once(spark, lake, table, tag, _append(spark, lake, table, 5))  # and if it writes anyway
    assert again is not None and again.version == 1
    assert table_version(spark, uri) == 1
    assert spark.read.format("delta").load(uri).count() == 8
    assert [c.version for c in index.entries()] == [0, 1]
    assert index.get(1).user_metadata == "headwater-silver-crash:2"


@pytest.mark.spark
def test_a_skipped_rerun_finds_its_commit_behind_later_ones(spark, lake):
    table = "silver/behind"
    tag = CommitTag("silver", "behind", 1)
    write_once(spark, lake, table, tag, _append(spark, lake, table, 1))
    write_once(spark, lake, table, CommitTag("replay", "behind", 0), _append(spark, lake, table, 1))
    again = write_once(spark, lake, table, tag, _append(spark, lake, table, 1))
    assert again is not None and again.version == 0
    assert spark.read.format("delta").load(lake.uri(table)).count() == 2


# --- bounded log reads -----------------------------------------------------------------------------
@pytest.mark.spark
def test_history_rows_read_do_not_grow_with_table_age(spark, lake, monkeypatch):
    read: list[int] = []
    real = commits._history

    def counting(spark_, uri, n):  # noqa: ANN001, ANN202
        rows = real(spark_, uri, n)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(commits, "_history", counting)

    def rows_for_one_more_commit(table: str, prior: int) -> int:
        for i in range(prior):
            write_once(spark, lake, table, CommitTag("bronze", table[7:], i), _append(spark, lake, table, 1))
        read.clear()
        write_once(spark, lake, table, CommitTag("bronze", table[7:], prior), _append(spark, lake, table, 1))
        find_commit(spark, lake, table, CommitTag("bronze", table[7:], prior))
        return sum(read)

    young = rows_for_one_more_commit("bronze/young", 6)  # more commits than one look reads
    aged = rows_for_one_more_commit("bronze/aged", 30)
    assert aged == young
    assert aged <= 2 * (commits.SLACK + 1)


@pytest.mark.spark
def test_index_fills_from_the_log_for_commits_it_never_recorded(spark, lake):
    table = "silver/legacy"
    uri = lake.uri(table)
    for bronze_end in (3, 7):  # written the way older code did: a tag in commitInfo only
        with session_conf(spark, {commits.USER_METADATA_CONF: f"headwater-silver-legacy:{bronze_end}"}):
            spark.range(1).write.format("delta").mode("append").save(uri)
    spark.range(1).write.format("delta").mode("append").save(uri)  # not ours: no tag
    index = CommitIndex(lake, table).sync(spark, uri)
    assert [(c.version, str(c.tag)) for c in index.entries()] == [
        (0, "headwater-silver-legacy:3"),
        (1, "headwater-silver-legacy:7"),
    ]
    assert index.known() == 2


@pytest.mark.spark
@pytest.mark.floor
def test_latest_version_comes_from_the_index_without_a_snapshot(spark, lake, monkeypatch):
    from ingestion.core.spark.delta import table_version

    table = "bronze/latest"
    index = CommitIndex(lake, table)
    assert index.latest(spark) is None  # no table yet: Delta says so
    for i in range(3):
        write_once(spark, lake, table, CommitTag("bronze", "latest", i), _append(spark, lake, table, 1))
    asked: list[str] = []
    monkeypatch.setattr(commits, "table_version", lambda s, uri: asked.append(uri) or table_version(s, uri))
    assert index.latest(spark) == 2 and asked == []  # from the index: no snapshot loaded

    spark.range(1).write.format("delta").mode("append").save(lake.uri(table))  # not ours
    assert index.latest(spark) == 2  # not seen until the index looks in the log
    assert index.sync(spark, lake.uri(table)).latest(spark) == 3


# --- the system area's format ----------------------------------------------------------------------
def _forget(lake) -> None:  # noqa: ANN001
    from ingestion.core import system

    system._checked.discard(lake.uri(system.FORMAT_PATH))


def test_a_fresh_lake_gets_the_current_format(lake):
    from ingestion.core import system

    _forget(lake)
    assert system.ensure_format(lake) == system.CURRENT_FORMAT
    assert json.loads(lake.read_bytes("system/FORMAT.json"))["format"] == system.CURRENT_FORMAT


def test_a_lake_from_a_newer_headwater_is_refused(lake):
    from ingestion.core import system

    _forget(lake)
    lake.write_bytes("system/FORMAT.json", json.dumps({"format": 99}).encode())
    with pytest.raises(system.LakeFormatError, match=r"format 99, this headwater reads format 1"):
        system.ensure_format(lake)
    lake.write_bytes("system/FORMAT.json", b'{"format": "one"}')
    with pytest.raises(system.LakeFormatError, match="format 'one'"):
        system.ensure_format(lake)


@pytest.mark.spark
@pytest.mark.floor
def test_an_old_lake_without_marker_is_migrated_and_then_works(spark, lake, catalog, land):
    """A lake as today's code leaves it: manifests and tags, no marker, no commit index."""
    import shutil

    from ingestion.bronze.job import ingest
    from ingestion.core import system
    from transforms.assets.lineage import layer_commits
    from transforms.silver.curate import curate

    header = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    land("orders/a.csv", header + b"O-0001,C-001,new,10.50,1,2026-01-01,,2026-01-01T10:00:00\n")
    assert ingest(spark, lake, catalog, "orders").bronze_version == 0
    land("orders/b.csv", header + b"O-0002,C-002,paid,7.25,3,2026-01-02,2026-01-04,2026-01-02T09:30:00\n")
    assert ingest(spark, lake, catalog, "orders").bronze_version == 1
    # Make it a format-0 lake: no marker, no index (what the code before this module wrote).
    (Path(lake.root) / "system/FORMAT.json").unlink()
    shutil.rmtree(Path(lake.root) / "system/commits")
    _forget(lake)

    assert system.ensure_format(lake) == 0
    assert system.read_format(lake) == system.CURRENT_FORMAT
    index = CommitIndex(lake, "bronze/orders")
    assert [(c.version, str(c.tag), c.metric("numOutputRows")) for c in index.entries()] == [
        (0, "headwater-bronze-orders:1", 1),
        (1, "headwater-bronze-orders:2", 1),
    ]
    assert [(c.version, c.value) for c in layer_commits(spark, lake, "orders", "bronze")] == [(0, 1), (1, 2)]
    run = curate(spark, lake, catalog, "orders", record_run=False, transform=None)
    assert run.status == "succeeded" and run.rows_written == 2
    assert [(c.version, c.value) for c in layer_commits(spark, lake, "orders", "silver")] == [
        (run.output_version, 1)
    ]


def test_session_settings_blocks_of_two_threads_never_overlap(spark):
    """A MERGE's txn settings are the session's: another thread's block waits for the first."""
    import threading

    key = "spark.headwater.test.owner"
    inside = threading.Event()
    release = threading.Event()
    seen = []

    def first() -> None:
        with session_conf(spark, {key: "first"}):
            inside.set()
            release.wait(10)
            seen.append(("first", spark.conf.get(key)))

    def second() -> None:
        with session_conf(spark, {key: "second"}):
            seen.append(("second", spark.conf.get(key)))

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.5)
    assert b.is_alive() and seen == []  # waiting for the first block
    release.set()
    a.join(10)
    b.join(10)
    assert seen == [("first", "first"), ("second", "second")]
    assert spark.conf.get(key, None) is None


# --- the latest version, cheaply -------------------------------------------------------------------
@pytest.mark.spark
def test_latest_version_sees_every_commit_through_delta_rs_or_spark(spark, lake, monkeypatch):
    from ingestion.core.spark import delta

    uri = lake.uri("bronze/t")
    spark.range(2).write.format("delta").save(uri)
    spark.range(1).write.format("delta").mode("append").save(uri)  # a commit made by anyone
    asked: list[str] = []
    real = delta.head_version
    monkeypatch.setattr(delta, "head_version", lambda s, u: asked.append(u) or real(s, u))
    assert delta.latest_version(spark, lake, "bronze/t") == 1 and asked == []  # delta-rs read it
    monkeypatch.setattr(type(lake), "delta_rs_options", lambda self: None)
    assert delta.latest_version(spark, lake, "bronze/t") == 1 and asked == [uri]  # Spark did
