"""The curate job: bronze -> silver for one dataset, exactly once per bronze version range.

1. Range: bronze versions ``(W, E]`` after the watermark ``W`` (or the pending range a crashed
   run left, redone as is). ``E`` is the idempotency token of every write of the run.
2. Prepare (see :mod:`transforms.silver.pipeline`): cast, transform, validate, materialize,
   count in one aggregation.
3. Decide before writing: a ``fail`` rule, dataset rule or uncompiled check that fired means no
   write at all; the run is recorded as failed with the reasons and the watermark stays.
4. Schema policy: a breaking change (type change; new column under ``freeze``) sends the whole
   batch to quarantine with a ``schema`` reason instead of touching silver.
5. MERGE the newest kept row per key into silver (txn ``headwater-silver-<ds>``/``E``), then
   append quarantined rows (txn ``headwater-quarantine-<ds>``/``E``), then advance the watermark.
6. Append the run to the run ledger. Logs carry counts and rule names only, never values.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import pyspark.sql.functions as F

from ingestion.core import lake, telemetry
from ingestion.core.lifecycle import JobRun, job_run
from ingestion.core.runs import RunRecord
from ingestion.core.spark.commits import CommitIndex
from ingestion.core.spark.delta import latest_version
from ingestion.core.system import ensure_format
from transforms.silver import quarantine as q
from transforms.silver import state as st
from transforms.silver.apply import write_batch
from transforms.silver.casting import RAW
from transforms.silver.cdc import tombstone_tag
from transforms.silver.expectations import ERRORS, Plan, count_columns
from transforms.silver.hooks import SilverTransform, find_transform
from transforms.silver.pipeline import Prepared, fail_reasons, prepare
from transforms.silver.silver import (
    SCHEMA_CHECK,
    append,
    schema_problems,
    silver_tag,
)
from transforms.silver.source import bronze_range, read_range

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog, Dataset
    from ingestion.core.config import Settings
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

_FIND = object()  # sentinel: look the transform up in transforms/datasets


def curate(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset_name: str,
    *,
    settings: Settings | None = None,
    plan: Plan | None = None,
    transform: SilverTransform | None | object = _FIND,
    record_run: bool = True,
    lease_wait: float = 0.0,
) -> RunRecord:
    """Curate the bronze rows not yet curated into silver (and quarantine); one run.

    Holds the dataset's silver writer lease (shared with replay) for the whole run.

    Args:
        spark: the session (Delta configured).
        storage: the lake.
        catalog: the project's datasets.
        dataset_name: the dataset to curate.
        settings: the lease duration (``lease_seconds``); defaults apply without it.
        plan: the checks to run; by default compiled from the contract. ``Plan.empty()``
            checks nothing (the benchmarks time the job without validation with it).
        transform: the dataset's silver transform; by default found in ``transforms.datasets``.
        record_run: append the run to the run ledger (system/runs).
        lease_wait: seconds to wait for a running curate or replay of the dataset to finish.

    Returns:
        The run record: ``succeeded``, ``skipped`` (nothing new) or ``failed`` (with ``error``).

    Raises:
        LeaseHeldError: another curate or replay of the dataset holds the lease (no run recorded).
    """
    dataset = catalog.get(dataset_name)
    ensure_format(storage)  # refuse a lake written by a newer headwater, before any write
    package = settings.transforms_package if settings is not None else None
    fn = find_transform(dataset.name, package=package) if transform is _FIND else transform
    record = RunRecord(job="curate", dataset=dataset.name)
    lease = st.writer_lease(storage, dataset.name, owner=record.run_id, settings=settings)
    with job_run(spark, storage, record, lease=lease, lease_wait=lease_wait, enabled=record_run) as run:
        _run(spark, storage, dataset, run, plan=plan, transform=fn)  # type: ignore[arg-type]
    return record


def _run(
    spark: SparkSession,
    storage: Storage,
    dataset: Dataset,
    run: JobRun,
    *,
    plan: Plan | None,
    transform: SilverTransform | None,
) -> None:
    record = run.record
    bronze_uri = storage.uri(lake.bronze_table(dataset.name))
    state = st.load(storage, dataset.name)
    if state.pending:
        after, upto = int(state.pending["after"]), int(state.pending["upto"])
        record.details["resumed"] = state.pending.get("run_id")
    else:
        # Bronze's commit index knows every commit of ours without loading a snapshot. When it
        # shows nothing new, only the log can show a commit made behind headwater's back, and
        # such a commit must fail this run now rather than wait for the next ingest.
        latest = CommitIndex(storage, lake.bronze_table(dataset.name)).latest(spark)
        if latest is not None and latest <= state.bronze_version:
            latest = latest_version(spark, storage, lake.bronze_table(dataset.name))  # it exists
        if latest is None:
            run.skip("no bronze table yet")
            return
        after, upto = state.bronze_version, latest
    record.input_from, record.input_to = after + 1, upto
    if upto <= after:
        run.skip(f"bronze has nothing after version {after}")
        return
    rng = bronze_range(spark, dataset.name, bronze_uri, after=after, upto=upto)
    record.details["batches"] = list(rng.batches)
    if not rng.batches:
        # Only non-data commits (OPTIMIZE, properties...): nothing to curate, move past them.
        state.bronze_version, state.pending = upto, None
        st.save(storage, state)
        run.skip(f"bronze versions {after + 1}..{upto} added no rows")
        return
    if not state.pending:
        state.pending = {"after": after, "upto": upto, "run_id": record.run_id}
        st.save(storage, state)

    silver_uri = storage.uri(lake.silver_table(dataset.name))
    prepared = prepare(
        dataset,
        read_range(spark, bronze_uri, rng),
        plan=plan,
        transform=transform,
        schema_check=lambda schema: schema_problems(spark, silver_uri, schema, dataset),
    )
    try:
        run.check()  # the heartbeat lost the lease while we validated: write nothing
        _write(spark, storage, dataset, record, prepared, rng.rows, state)
    finally:
        prepared.release()


def _write(
    spark: SparkSession,
    storage: Storage,
    dataset: Dataset,
    record: RunRecord,
    prepared: Prepared,
    bronze_rows: int,
    state: st.CurateState,
) -> None:
    upto = int(state.pending["upto"])  # type: ignore[index]
    counts = prepared.counts
    record.rows_read = counts["rows"]
    record.rules = dict(prepared.rule_counts)
    record.rows_warned = counts.get("warned", 0)
    record.rows_dropped = counts.get("dropped", 0)
    record.details.update(
        dataset_rules=prepared.dataset_rules,
        uncompiled_checks=[u.key for u in prepared.plan.uncompiled],
        uncompiled_failed=prepared.uncompiled_failed,
        validation=not prepared.plan.is_empty(),
    )
    if not prepared.plan.is_empty():
        # Every row check evaluated on the batch (the keys of record.rules), those no row failed too.
        telemetry.record_expectations(
            dataset.name,
            rows=counts["rows"],
            failed={key: prepared.rule_counts.get(key, 0) for key in count_columns(prepared.plan)},
        )
    if bronze_rows > counts["rows"]:
        record.rules["transform.filtered"] = bronze_rows - counts["rows"]
    for r in prepared.dataset_rules:
        if not r["passed"]:
            record.rules[f"dataset.{r['name']}"] = 1
    for u in prepared.uncompiled_failed:
        record.rules[u["key"]] = record.rules.get(u["key"], 0) + 1

    reasons = fail_reasons(prepared)
    if reasons:
        # Decided before any write: nothing committed, the watermark stays where it was.
        state.pending = None
        st.save(storage, state)
        log.warning("curate %s: failed before writing: %s", dataset.name, "; ".join(reasons))
        record.finish("failed", "; ".join(reasons))
        return

    problems = prepared.schema_problems
    if problems and RAW not in prepared.frame.columns:
        # An empty plan keeps no raw values to quarantine the batch with: refuse, write nothing.
        state.pending = None
        st.save(storage, state)
        record.finish("failed", "breaking schema change: " + "; ".join(f"{c}: {why}" for c, why in problems))
        return
    quarantined = prepared.rows_at("quarantine")
    if problems:
        # A breaking schema change: the whole batch goes to quarantine, silver is not touched.
        reasons_col = F.array(
            *[
                F.struct(
                    F.lit(c).alias("column"), F.lit(SCHEMA_CHECK).alias("check"), F.lit(why).alias("value")
                )
                for c, why in problems
            ]
        )
        blocked = prepared.kept_rows_with_errors().withColumn(ERRORS, F.concat(F.col(ERRORS), reasons_col))
        quarantined = quarantined.unionByName(blocked)
        blocked_rows = (
            counts.get("rows", 0)
            - counts.get("dropped", 0)
            - counts.get("quarantined", 0)
            - counts.get("failed", 0)
        )
        record.rules.update({f"{c}.{SCHEMA_CHECK}": blocked_rows for c, _ in problems})
        record.details["schema_problems"] = [{"column": c, "reason": why} for c, why in problems]
        log.warning(
            "curate %s: breaking schema change on %s; batch sent to quarantine",
            dataset.name,
            ", ".join(c for c, _ in problems),
        )
        record.rows_quarantined = counts.get("quarantined", 0) + blocked_rows
    else:
        record.rows_quarantined = counts.get("quarantined", 0)

    if not problems and counts["keepable"] > 0:
        started = time.perf_counter()
        version, metrics = write_batch(
            spark,
            storage,
            dataset,
            prepared,
            tag=silver_tag(dataset.name, upto),
            tombstone=tombstone_tag(dataset.name, upto),
        )
        prepared.seconds["merge"] = round(time.perf_counter() - started, 3)
        record.details.update(
            {k: metrics.pop(k) for k in ("tombstones", "tombstones_expired") if k in metrics}
        )
        inserted = int(metrics.get("numTargetRowsInserted", 0) or 0)
        updated = int(metrics.get("numTargetRowsUpdated", 0) or 0)
        deleted = int(metrics.get("numTargetRowsDeleted", 0) or 0)
        record.rows_written = inserted + updated + deleted
        record.output_version = version
        record.details.update(inserted=inserted, updated=updated, deleted=deleted)
        if dataset.cdc is None or dataset.cdc.mode != "scd2":  # SCD2 writes back whole histories
            kept = int(metrics.get("numSourceRows", 0) or 0)  # one row per key after dedupe
            record.details["not_newer"] = kept - inserted - updated - deleted
            record.details["superseded"] = counts["keepable"] - kept

    # MERGE first, then the append: each is idempotent by its own (txnAppId, E), so a crash
    # between them is completed by the rerun. (Running them on two threads measured no faster:
    # both keep every core busy.)
    if record.rows_quarantined > 0:
        rows = q.to_quarantine_rows(
            quarantined,
            contract=prepared.contract,
            extras=prepared.extras,
            run_id=record.run_id,
            bronze_version=upto,
        )
        # Quarantine is a small share of a batch: one file per million rows, not one per task.
        rows = rows.coalesce(max(1, -(-record.rows_quarantined // 1_000_000)))
        started = time.perf_counter()
        record.details["quarantine_version"] = append(
            spark,
            storage,
            lake.quarantine_rows_table(dataset.name),
            rows,
            tag=q.quarantine_tag(dataset.name, upto),
        )
        prepared.seconds["quarantine"] = round(time.perf_counter() - started, 3)

    record.details["seconds"] = prepared.seconds
    state.bronze_version = upto
    state.pending = None
    st.save(storage, state)
    log.info(
        "curate %s: read %d, written %d, quarantined %d, dropped %d; rules %s",
        dataset.name,
        record.rows_read,
        record.rows_written,
        record.rows_quarantined,
        record.rows_dropped,
        sorted(record.rules),
    )
    record.finish("succeeded")


__all__ = ["curate"]
