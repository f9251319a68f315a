"""Publish: silver -> gold, one Delta commit per change, idempotent by silver versions.

Each publish pins every input silver table to its current version, runs the declared transform,
checks the output against the gold contract, and commits only when gold's rows would change:

* ``merge``: MERGE by the gold keys; matched rows are rewritten only when a value differs,
  rows whose key vanished are deleted.
* ``overwrite_partitions``: the partitions whose rows differ (or vanished) are replaced in one
  commit with ``replaceWhere``; untouched partitions keep their files.

An input is a silver table, or another dataset's gold when it names one (see
:mod:`transforms.gold.graph`); each is pinned to its latest version, without waiting for the
others to move. The commit carries ``userMetadata = headwater-gold-<name>:<txn>;inputs=<ds>@<v>,...``
(recorded in the commit index, where trace and register read the input versions back) and
Delta's ``txnAppId``/``txnVersion`` (see :mod:`ingestion.core.spark.commits`). The txnVersion is
gold's publish sequence (:func:`publish_txn`): the last publish commit's txn when the pins are
that commit's pins, else one more. It strictly increases with every change of the pins, a change
of the declared inputs included, and a rerun after a crash between the commit and the run ledger
reuses it, so Delta itself skips the duplicate. (Gold published before the sequence used the sum
of the input versions; the sequence continues above it.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ingestion.core.config import Settings, get_settings
from ingestion.core.lake import gold_table, silver_table
from ingestion.core.lease import Lease
from ingestion.core.lifecycle import JobRun, job_run
from ingestion.core.runs import RunLedger, RunRecord
from ingestion.core.spark.commits import Commit, CommitIndex, CommitTag, Stamp, write_once
from ingestion.core.spark.delta import table_version
from transforms.gold.errors import GoldContractError, MissingSilverError, NoGoldDeclaredError
from transforms.gold.graph import input_tables

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from ingestion.contracts import Catalog, Dataset, Gold
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

JOB = "publish"
GOLD_SCOPE = "gold"  # the lease publish holds; ingest and curate hold their own
RETENTION_SLACK_DAYS = 30


# --- commit tags ---------------------------------------------------------------------------------
def gold_app_id(name: str) -> str:
    return CommitTag.gold(name, {}).app_id


def gold_commit_tag(name: str, inputs: dict[str, int]) -> str:
    return str(CommitTag.gold(name, inputs))


def parse_gold_tag(meta: str | None) -> dict[str, int] | None:
    """The silver versions a gold commit was built from, or None for other commits."""
    tag = CommitTag.parse(meta)
    return tag.input_versions if tag is not None and tag.layer == "gold" else None


@dataclass(frozen=True)
class GoldCommit:
    version: int
    inputs: dict[str, int]
    timestamp: dt.datetime | None


def gold_commits(spark: SparkSession, storage: Storage, name: str) -> list[GoldCommit]:
    """Every publish commit of gold table ``name``, oldest first, from the commit index.

    Commits the index has not recorded yet (a crash before our bookkeeping, a lake written
    before the index) are read from the log since the newest version it knows.
    """
    table = gold_table(name)
    index = CommitIndex(storage, table).sync(spark, storage.uri(table))
    out = []
    for c in index.entries():
        tag = c.tag
        if tag is not None and tag.layer == "gold":
            out.append(GoldCommit(c.version, tag.input_versions, c.timestamp))
    return out


def inputs_at(spark: SparkSession, storage: Storage, name: str, version: int) -> dict[str, int] | None:
    """Silver versions behind gold ``version`` (the newest publish commit at or before it)."""
    table = gold_table(name)
    index = CommitIndex(storage, table).sync(spark, storage.uri(table))
    last = index.last()
    if last is not None and last.version <= version and last.tag is not None:
        return last.tag.input_versions  # the usual question: the current version
    found = [c for c in gold_commits(spark, storage, name) if c.version <= version]
    return found[-1].inputs if found else None


# --- table shape -----------------------------------------------------------------------------------
def gold_table_properties(gold: Gold) -> dict[str, str]:
    """Delta properties every gold table carries.

    No deletion vectors (older Azure ML readers skip them and return deleted rows), no column
    mapping (Azure ML's reader returns physical column names), and log + deleted-file retention
    at least as long as a registered asset version lives, so time travel to it keeps working.
    Retention counts from the commit, a version's life from its registration: the slack covers
    a registration up to RETENTION_SLACK_DAYS after the publish (register warns beyond).
    """
    days = gold.asset_retention_days + RETENTION_SLACK_DAYS
    return {
        "delta.enableDeletionVectors": "false",
        "delta.logRetentionDuration": f"interval {days} days",
        "delta.deletedFileRetentionDuration": f"interval {days} days",
    }


def _nullable(schema: StructType) -> StructType:
    from pyspark.sql.types import StructField, StructType

    # Nullability is the contract's job; a NOT NULL column in Delta would fail writes instead.
    return StructType([StructField(f.name, f.dataType, True) for f in schema.fields])


def ensure_table(spark: SparkSession, uri: str, gold: Gold, schema: StructType) -> None:
    """Create the gold table with its properties, or check an existing one still fits."""
    from delta.tables import DeltaTable

    props = gold_table_properties(gold)
    if not DeltaTable.isDeltaTable(spark, uri):
        # Hadoop spells local paths file:/x; Delta rejects file:///x as a second location.
        location = re.sub(r"^file:///", "file:/", uri)
        builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(_nullable(schema))
        if gold.partition_by:
            builder = builder.partitionedBy(*gold.partition_by)
        for key, value in props.items():
            builder = builder.property(key, value)
        builder.execute()
        return
    detail = DeltaTable.forPath(spark, uri).detail().first()
    assert detail is not None  # detail() is one row per table
    problems = []
    have = {f.name: f.dataType.simpleString() for f in spark.read.format("delta").load(uri).schema}
    want = {f.name: f.dataType.simpleString() for f in schema}
    for name in sorted(set(have) | set(want)):
        if have.get(name) != want.get(name):
            problems.append(f"column {name}: table has {have.get(name)}, output has {want.get(name)}")
    if list(detail["partitionColumns"]) != list(gold.partition_by):
        problems.append(
            f"partitioned by {list(detail['partitionColumns'])}, declared {list(gold.partition_by)}"
        )
    mapping = (detail["properties"] or {}).get("delta.columnMapping.mode", "none")
    if mapping != "none":
        problems.append(f"table uses column mapping ({mapping}), which Azure ML's reader cannot read")
    if problems:
        raise GoldContractError(
            gold.name,
            problems + ["gold's shape changed: publish under a new gold name or drop the table"],
        )
    current = detail["properties"] or {}
    stale = {k: v for k, v in props.items() if current.get(k) != v}
    if stale:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in stale.items())
        spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ({assignments})")


# --- contract --------------------------------------------------------------------------------------
def check_contract(gold: Gold, df: DataFrame) -> list[str]:
    """Problems of ``df`` against the gold contract (empty when it passes). Never row contents.

    Column names and types are compared with the pandera model. The row checks are the ones
    curate runs, compiled by the same code (``transforms.silver.expectations.compile_schema``),
    each with the action ``fail``; they and the keys' nulls are counted in one pass. Checks
    without a Spark builder are run by pandera on the whole output.
    """
    from pyspark.sql import functions as F

    from transforms.silver.expectations import (
        Expectation,
        compile_schema,
        evaluate_uncompiled,
        failure_counts,
    )

    problems: list[str] = []
    model = gold.model()
    expectations: list[Expectation] = []
    if model is not None:
        schema = model.to_schema()
        have = {f.name: f.dataType for f in df.schema.fields}
        extra = [c for c in df.columns if c not in schema.columns]
        if extra:
            problems.append(f"columns not in the gold contract: {', '.join(extra)}")
        broken: set[str] = set()
        for name, col in schema.columns.items():
            want = getattr(col.dtype, "type", None)
            if name not in have:
                problems.append(f"{name}: missing from the output")
            elif want is not None and want != have[name]:
                problems.append(
                    f"{name}: type {have[name].simpleString()}, contract says {want.simpleString()}"
                )
            else:
                continue
            broken.add(name)
        plan = compile_schema(schema, action_for=lambda column, check: "fail")
        # A missing or mistyped column's checks cannot run; the others still count.
        expectations = [e for e in plan.expectations if not broken & set((e.column or "").split(","))]
        if plan.uncompiled and not problems:
            for u in evaluate_uncompiled(df, plan):
                problems.append(
                    f"{u['key']} failed (no Spark builder: checked by pandera on the whole output)"
                )
    missing = [c for c in (*gold.keys, *gold.partition_by) if c not in df.columns]
    if missing:
        problems.append(f"key/partition columns missing from the output: {', '.join(missing)}")
    elif gold.keys:
        null_key = F.greatest(*[F.col(f"`{k}`").isNull() for k in gold.keys], F.lit(False))
        label = "null key (" + ", ".join(gold.keys) + ")"
        expectations.append(Expectation(None, label, "fail", null_key, F.lit(None), label))
        dup = df.groupBy(*gold.keys).count().where(F.col("count") > 1).count()
        if dup:
            problems.append(f"{dup} key value(s) of ({', '.join(gold.keys)}) occur more than once")
    for e, failed in zip(expectations, failure_counts(df, expectations), strict=True):
        if failed:
            label = e.key if e.statistics is None else f"{e.key}({_stats(e.statistics)})"
            problems.append(f"{label} failed on {failed} row(s)")
    return problems


def _stats(stats: Any) -> str:
    return ", ".join(f"{v}" for v in dict(stats or {}).values())


# --- writing ---------------------------------------------------------------------------------------
def sql_literal(value: Any) -> str:
    """A Spark SQL literal for a partition value (for ``replaceWhere``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return repr(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP'{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _partition_predicate(parts: tuple[str, ...], values: list[tuple[Any, ...]]) -> str:
    return " OR ".join(
        "(" + " AND ".join(f"`{p}` <=> {sql_literal(v)}" for p, v in zip(parts, row, strict=True)) + ")"
        for row in values
    )


@dataclass
class WriteOutcome:
    committed: bool
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    partitions: list[dict[str, Any]] | None = None


def _merge(spark: SparkSession, uri: str, gold: Gold, out: DataFrame, stamp: Stamp) -> WriteOutcome:
    from delta.tables import DeltaTable

    current = spark.read.format("delta").load(uri).select(*out.columns)
    changed = out.exceptAll(current).count()
    vanished = current.select(*gold.keys).exceptAll(out.select(*gold.keys)).count()
    if not changed and not vanished:
        return WriteOutcome(committed=False)
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in gold.keys)
    values = [c for c in out.columns if c not in gold.keys]
    differs = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in values) or "FALSE"
    (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(out.alias("s"), on)
        .whenMatchedUpdateAll(condition=differs)
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete()
        .execute()
    )
    return WriteOutcome(committed=True)


def _overwrite_partitions(
    spark: SparkSession, uri: str, gold: Gold, out: DataFrame, stamp: Stamp
) -> WriteOutcome:
    parts = gold.partition_by
    current = spark.read.format("delta").load(uri).select(*out.columns)
    touched = out.exceptAll(current).select(*parts).union(current.exceptAll(out).select(*parts)).distinct()
    values = [tuple(r) for r in touched.collect()]
    if not values:
        return WriteOutcome(committed=False)
    predicate = _partition_predicate(parts, values)
    stamp(
        out.where(predicate).write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    ).save(uri)
    return WriteOutcome(
        committed=True, partitions=[dict(zip(parts, map(str, v), strict=True)) for v in values[:50]]
    )


def _metrics(commit: Commit) -> dict[str, int]:
    m = commit.metrics
    return {
        "inserted": m.get("numTargetRowsInserted", 0)
        if "numTargetRowsInserted" in m
        else m.get("numOutputRows", 0),
        "updated": commit.metric("numTargetRowsUpdated"),
        "deleted": commit.metric("numTargetRowsDeleted", "numDeletedRows"),
    }


# --- the step --------------------------------------------------------------------------------------
def gold_of(catalog: Catalog, name: str) -> tuple[Dataset, Gold]:
    """The dataset and gold declaration for a dataset name or a gold name."""
    for ds in catalog:
        if ds.gold is not None and name in (ds.name, ds.gold.name):
            return ds, ds.gold
    ds = catalog.get(name)  # raises UnknownDatasetError naming the known ones
    raise NoGoldDeclaredError(ds.name)


def silver_versions(
    spark: SparkSession, storage: Storage, gold: Gold, catalog: Catalog | None = None
) -> dict[str, int]:
    """Current version of every input table: silver, or gold for an input naming a gold.

    Args:
        spark: the session.
        storage: the lake.
        gold: the gold declaration.
        catalog: resolves inputs that name another gold; without it every input is silver.

    Returns:
        ``{input name: version}``.

    Raises:
        MissingSilverError: an input table does not exist yet.
    """
    pins = {}
    for name, table in input_tables(catalog, gold).items():
        version = table_version(spark, storage.uri(table))
        if version is None:
            raise MissingSilverError(gold.name, name, table)
        pins[name] = version
    return pins


def publish_txn(spark: SparkSession, storage: Storage, name: str, pins: dict[str, int]) -> int:
    """Gold ``name``'s txnVersion for a publish from ``pins`` (its publish sequence).

    The last publish commit's txn when ``pins`` are its pins (a rerun: Delta skips it), else
    that txn plus one, so the number strictly increases with every change of the pins, whatever
    the versions are (an input removed from the declaration included). The commit index is
    synced from the log first, so a commit made just before a crash is counted. 0 for the first.

    Args:
        spark: the session.
        storage: the lake.
        name: the gold table's name.
        pins: the input versions this publish reads.

    Returns:
        The txnVersion.
    """
    table = gold_table(name)
    last = CommitIndex(storage, table).sync(spark, storage.uri(table)).last()
    if last is None or last.tag is None or last.tag.layer != "gold":
        return 0
    return last.tag.txn if last.tag.input_versions == pins else last.tag.txn + 1


def _last_publish_inputs(ledger: RunLedger, dataset: str) -> dict[str, int] | None:
    for run in ledger.latest(dataset=dataset, job=JOB, limit=5):
        if run["status"] in ("succeeded", "skipped"):
            details = json.loads(run["details"] or "{}")
            return details.get("inputs")
    return None


def publish(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset_name: str,
    *,
    settings: Settings | None = None,
    force: bool = False,
    lease_wait: float = 0.0,
) -> RunRecord:
    """Publish a dataset's gold table from its pinned silver inputs; one run-ledger record.

    Holds the dataset's gold lease for the run (one publish of a gold table at a time).

    Args:
        spark: the session (Delta configured).
        storage: the lake.
        catalog: the project's datasets.
        dataset_name: the dataset (or its gold name).
        settings: the environment recorded with the run; default :func:`get_settings`.
        force: rebuild even when the silver versions are the ones gold was last built from.
        lease_wait: seconds to wait for a running publish of the dataset.

    Returns:
        The run record: ``status`` is ``skipped`` when silver did not move, ``succeeded``
        otherwise; ``output_version`` is gold's Delta version; ``details["changed"]`` says
        whether this run made a commit.

    Raises:
        GoldContractError: the output breaks the gold contract (recorded, nothing committed).
        MissingSilverError: an input silver table does not exist yet (recorded).
        LeaseHeldError: another publish of the dataset is running (nothing recorded).
    """
    settings = settings or get_settings()
    ds, gold = gold_of(catalog, dataset_name)
    record = RunRecord(job=JOB, dataset=ds.name)
    uri = storage.uri(gold_table(gold.name))
    record.details = {"gold": gold.name, "table": uri, "env": settings.env.value}
    lease = Lease(storage, ds.name, scope=GOLD_SCOPE, owner=record.run_id, seconds=settings.lease_seconds)
    with job_run(spark, storage, record, lease=lease, lease_wait=lease_wait) as run:
        _publish(spark, storage, catalog, ds, gold, uri, run, force=force)
    return record


def _publish(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    ds: Dataset,
    gold: Gold,
    uri: str,
    run: JobRun,
    *,
    force: bool,
) -> None:
    record = run.record
    pins = silver_versions(spark, storage, gold, catalog)
    record.details["inputs"] = pins
    record.input_to = sum(pins.values())
    last = inputs_at(spark, storage, gold.name, table_version(spark, uri) or 0)
    if not force and pins in (last, _last_publish_inputs(RunLedger(spark, storage), ds.name)):
        record.output_version = table_version(spark, uri)
        record.details["changed"] = False
        run.skip("silver unchanged since the last publish")
        return

    from ingestion.core.spark.delta import read_version
    from transforms.silver.scd2 import current_rows

    tables = input_tables(catalog, gold)
    frames = {name: read_version(spark, storage.uri(tables[name]), v) for name, v in pins.items()}
    for name in frames:  # an SCD2 silver serves gold its current rows
        if tables[name] == silver_table(name) and _keeps_history(catalog, name):
            frames[name] = current_rows(frames[name])
    out = gold.transform()(spark, frames).cache()  # computed once for checks and write
    try:
        problems = check_contract(gold, out)
        if problems:
            raise GoldContractError(gold.name, problems)
        rows = out.count()
        ensure_table(spark, uri, gold, out.schema)
        tag = CommitTag.gold(gold.name, pins, txn=publish_txn(spark, storage, gold.name, pins))
        record.details["txn"] = tag.txn
        write = _merge if gold.write == "merge" else _overwrite_partitions
        outcome = WriteOutcome(committed=False)
        run.check()

        def commit_once(stamp: Stamp) -> bool:
            nonlocal outcome
            outcome = write(spark, uri, gold, out, stamp)
            return outcome.committed

        commit = write_once(
            spark, storage, gold_table(gold.name), tag, commit_once, merge=gold.write == "merge"
        )
    finally:
        out.unpersist()
    version = commit.version if commit is not None else table_version(spark, uri)
    record.output_version = version
    record.details.update(rows=rows, changed=outcome.committed)
    if outcome.committed and commit is not None:
        metrics = _metrics(commit)
        record.details.update(metrics)
        record.rows_written = metrics["inserted"] + metrics["updated"]
        record.rows_dropped = metrics["deleted"]
        if outcome.partitions is not None:
            record.details["partitions_replaced"] = outcome.partitions
    log.info("gold %s: version %s (changed=%s)", gold.name, version, outcome.committed)


def _keeps_history(catalog: Catalog, name: str) -> bool:
    cdc = catalog.get(name).cdc if name in catalog.names() else None
    return cdc is not None and cdc.mode == "scd2"
