"""Replay: re-validate quarantined rows after a contract or transform fix; move the passing ones.

Quarantined rows keep their raw bronze strings and lineage, so a replay runs them through the
same pipeline as curate (cast, transform, validate, rank) with the *current* contract. Rows that
now pass are MERGEd into silver under the same "newer wins" rule (a replayed row never rolls a
newer silver row back); rows that now pass or are dropped leave quarantine; rows still failing
stay, with their reasons refreshed. Dataset rules (row count, null rate...) describe an incoming
batch, so they are not evaluated on the quarantine's rows, which are a biased set by construction.

Exactly once: the silver MERGE carries ``txnAppId = headwater-replay-<ds>`` and ``txnVersion =``
the quarantine version read, and the quarantine clean-up is a single MERGE commit. If a replay
dies between the two, the rerun reads the same quarantine version, Delta skips the silver MERGE,
and the clean-up completes. (Even re-applying a row is harmless: it is not newer than itself.)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyspark.sql.functions as F

from ingestion.core import lake
from ingestion.core.lifecycle import JobRun, job_run
from ingestion.core.runs import RunRecord
from ingestion.core.spark.commits import CommitTag, write_once
from ingestion.core.spark.delta import is_delta, table_version
from transforms.silver import quarantine as q
from transforms.silver.apply import write_batch
from transforms.silver.cdc import tombstone_tag
from transforms.silver.expectations import ERRORS, SEVERITY, SEVERITY_OF
from transforms.silver.hooks import SilverTransform, find_transform
from transforms.silver.pipeline import fail_reasons, prepare
from transforms.silver.silver import schema_problems
from transforms.silver.state import writer_lease

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.contracts import Catalog, Dataset
    from ingestion.core.config import Settings
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

_FIND = object()


def replay_tag(dataset: str, quarantine_version: int) -> CommitTag:
    """A replay's two commits (silver MERGE, quarantine clean-up): ``headwater-replay-<ds>:<qv>``."""
    return CommitTag("replay", dataset, quarantine_version)


def replay(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset_name: str,
    *,
    settings: Settings | None = None,
    transform: SilverTransform | None | object = _FIND,
    record_run: bool = True,
    lease_wait: float = 0.0,
) -> RunRecord:
    """Replay the dataset's quarantine once; returns the run record (job ``replay``).

    Holds the dataset's silver writer lease (shared with curate); raises LeaseHeldError when a
    curate or replay of the dataset is running past ``lease_wait`` seconds.
    """
    dataset = catalog.get(dataset_name)
    package = settings.transforms_package if settings is not None else None
    fn = find_transform(dataset.name, package=package) if transform is _FIND else transform
    record = RunRecord(job="replay", dataset=dataset.name)
    lease = writer_lease(storage, dataset.name, owner=record.run_id, settings=settings)
    with job_run(spark, storage, record, lease=lease, lease_wait=lease_wait, enabled=record_run) as run:
        _run(spark, storage, dataset, run, fn)  # type: ignore[arg-type]
    return record


def _run(
    spark: SparkSession,
    storage: Storage,
    dataset: Dataset,
    run: JobRun,
    transform: SilverTransform | None,
) -> None:
    record = run.record
    q_uri = storage.uri(lake.quarantine_rows_table(dataset.name))
    silver_uri = storage.uri(lake.silver_table(dataset.name))
    if not is_delta(spark, q_uri):
        run.skip("quarantine is empty")
        return
    qv = table_version(spark, q_uri)
    assert qv is not None
    record.input_from = record.input_to = qv
    stored = spark.read.format("delta").option("versionAsOf", qv).load(q_uri)
    rows = stored.drop(ERRORS, *[c for c in q.BOOKKEEPING if c in stored.columns])
    prepared = prepare(
        dataset,
        rows,
        transform=transform,
        dataset_rules=False,
        schema_check=lambda schema: schema_problems(spark, silver_uri, schema, dataset),
    )
    try:
        counts = prepared.counts
        record.rows_read = counts["rows"]
        if record.rows_read == 0:
            run.skip("quarantine is empty")
            return
        record.rules = dict(prepared.rule_counts)
        record.rows_dropped = counts["dropped"]
        record.rows_warned = counts["warned"]
        record.rows_quarantined = counts["quarantined"]
        reasons = fail_reasons(prepared)
        problems = prepared.schema_problems
        if problems:
            reasons.append(
                "silver's schema still conflicts: " + "; ".join(f"{c}: {why}" for c, why in problems)
            )
        if reasons:
            record.finish("failed", "; ".join(reasons))
            return
        run.check()
        if counts["keepable"] > 0:
            version, metrics = write_batch(
                spark,
                storage,
                dataset,
                prepared,
                tag=replay_tag(dataset.name, qv),
                tombstone=tombstone_tag(dataset.name, qv, replay=True),
            )
            m = metrics
            written = sum(
                int(m.get(k, 0) or 0)
                for k in ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")
            )
            record.rows_written = written
            record.output_version = version
            record.details["not_newer"] = int(m.get("numSourceRows", 0) or 0) - written
        released = counts["keepable"] + counts["dropped"]
        record.details["released"] = released
        _clean_up(spark, storage, prepared.all_rows_with_errors(), dataset.name, qv)
        log.info(
            "replay %s: %d re-validated, %d moved to silver, %d dropped, %d still quarantined",
            dataset.name,
            record.rows_read,
            record.rows_written,
            record.rows_dropped,
            record.rows_quarantined,
        )
        record.finish("succeeded")
    finally:
        prepared.release()


def _clean_up(spark: SparkSession, storage: Storage, frame: DataFrame, dataset: str, qv: int) -> None:
    """One commit: delete released rows, refresh the reasons of rows still failing."""
    from delta.tables import DeltaTable

    table = lake.quarantine_rows_table(dataset)
    source = frame.select(
        q.quarantine_id().alias("qid"),
        (F.col(SEVERITY) <= SEVERITY_OF["drop"]).alias("released"),
        F.col(ERRORS).alias("errors"),
    ).dropDuplicates(["qid"])
    builder = (
        DeltaTable.forPath(spark, storage.uri(table))
        .alias("t")
        .merge(source.alias("s"), f"t.{q.QUARANTINE_ID} = s.qid")
        .whenMatchedDelete(condition="s.released")
        .whenMatchedUpdate(condition=f"NOT (t.{ERRORS} <=> s.errors)", set={ERRORS: "s.errors"})
    )
    write_once(spark, storage, table, replay_tag(dataset, qv), lambda _stamp: builder.execute(), merge=True)
