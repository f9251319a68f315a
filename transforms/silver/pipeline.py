"""The shared bronze-shaped rows -> validated, deduplicated frame pipeline (curate and replay).

cast -> optional dataset transform -> pandera schema-only check -> one projection computing the
failure bits and ``_severity`` -> one window ranking each key's rows (kept rows first, then newest
first: rank 1 of a kept row is the key's winner) -> materialize -> one aggregation for every count
and dataset rule. The MERGE source is then a filter on the stored rows: the batch is shuffled
once, before it is stored, and Delta's two passes over the source read it without a shuffle.

Materialized how: a local checkpoint, not ``persist()``. Delta's MERGE reads its source twice and,
seeing a non-Delta leaf (a cached relation), would copy it once more into a checkpoint of its
own; and it refuses to skip that copy for a cached source. Our checkpoint is already what it
needs (fixed rows, read twice the same), so the MERGE runs with ``materializeSource=none`` on
it: the batch is computed once, stored once. A lost checkpoint block (an executor gone) fails
the run; its rerun redoes the same bronze range exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F
from pyspark.sql import Window

from ingestion.core import lake
from ingestion.core.reasons import RunCode
from transforms.silver.casting import RAW, cast_bronze, contract_columns, extra_columns, quote
from transforms.silver.errors import CurateError
from transforms.silver.expectations import (
    ERRORS,
    SEVERITY,
    SEVERITY_OF,
    Plan,
    apply_plan,
    bit_column_names,
    compile_plan,
    count_columns,
    evaluate_uncompiled,
    with_errors,
)
from transforms.silver.hooks import SilverTransform
from transforms.silver.silver import order_columns

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from ingestion.contracts import Dataset

log = logging.getLogger(__name__)

RANK = "_rank"
INTERNAL = (ERRORS, SEVERITY, RANK, RAW, lake.CORRUPT_RECORD, lake.PARSE_ERROR)
KEEP_MAX = SEVERITY_OF["warn"]  # rows at or below this severity go to silver


def pandera_schema_summary(dataset: Dataset, typed: DataFrame) -> dict[str, Any]:
    """Pandera at schema-only depth on the typed frame's schema (no data is read)."""
    from pandera.config import ValidationDepth, config_context

    schema = dataset.model().to_schema()
    # Nullability is a row-level expectation here; pandera would spend a Spark job per column.
    schema = schema.update_columns({c: {"nullable": True} for c in schema.columns})
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        out = schema.validate(typed.limit(0))
    errors = getattr(out.pandera, "errors", None) or {}
    return {
        scope: {reason: [dict(e) for e in items] for reason, items in reasons.items()}
        for scope, reasons in dict(errors).items()
    }


def apply_transform(dataset: Dataset, typed: DataFrame, transform: SilverTransform) -> DataFrame:
    """Run the dataset's transform and check it kept the columns and types we rely on."""
    name = getattr(transform, "__module__", "?") + "." + getattr(transform, "__name__", "silver")
    out = transform(typed)
    if out is None or not hasattr(out, "columns"):
        raise CurateError(dataset.name, f"transform {name} did not return a DataFrame", RunCode.BAD_TRANSFORM)
    lost = [c for c in typed.columns if c not in out.columns]
    if lost:
        raise CurateError(
            dataset.name,
            f"transform {name} dropped columns {lost}; keep the columns it does not own",
            RunCode.BAD_TRANSFORM,
        )
    before = {f.name: f.dataType for f in typed.schema.fields}
    changed = [f.name for f in out.schema.fields if f.name in before and before[f.name] != f.dataType]
    if changed:
        raise CurateError(
            dataset.name, f"transform {name} changed the type of {changed}", RunCode.BAD_TRANSFORM
        )
    return out


@dataclass
class Prepared:
    """A validated batch, materialized, with its counts.

    ``stable``: the frame is a local checkpoint, so a MERGE may read it twice without Delta
    copying it again (see the module docstring). False where checkpoints are unavailable (Spark
    Connect before 4.0): the frame is then cached with ``persist()`` instead.
    """

    frame: DataFrame
    plan: Plan
    contract: list[str]
    extras: list[str]
    counts: dict[str, Any] = field(default_factory=dict)
    rule_counts: dict[str, int] = field(default_factory=dict)
    dataset_rules: list[dict[str, Any]] = field(default_factory=list)
    uncompiled_failed: list[dict[str, Any]] = field(default_factory=list)
    schema_problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    stable: bool = False

    def silver_rows(self) -> DataFrame:
        """One row per key, the newest kept row: what the MERGE gets (ranked in :func:`prepare`)."""
        return _silver_columns(self.frame.where((F.col(RANK) == 1) & (F.col(SEVERITY) <= KEEP_MAX)))

    def kept_changes(self) -> DataFrame:
        """Every row bound for silver, superseded ones too: an SCD2 batch's changes."""
        return _silver_columns(self.frame.where(F.col(SEVERITY) <= KEEP_MAX))

    def rows_at(self, action: str) -> DataFrame:
        """The rows whose action is ``action``, with their ``_errors``."""
        return with_errors(self.frame.where(F.col(SEVERITY) == SEVERITY_OF[action]), self.plan)

    def kept_rows_with_errors(self) -> DataFrame:
        """Every row bound for silver (also superseded ones), with ``_errors`` (maybe empty)."""
        return with_errors(self.frame.where(F.col(SEVERITY) <= KEEP_MAX), self.plan)

    def all_rows_with_errors(self) -> DataFrame:
        return with_errors(self.frame, self.plan)

    def release(self) -> None:
        """Free the materialized rows now rather than at the JVM's next garbage collection."""
        if not self.stable:
            self.frame.unpersist()
            return
        try:  # the checkpoint's blocks belong to the RDD under the frame's LogicalRDD
            self.frame._jdf.queryExecution().analyzed().rdd().unpersist(False)
        except Exception:  # noqa: BLE001 - not classic PySpark: Spark's cleaner frees them later
            log.debug("could not unpersist the checkpointed batch; left to Spark's cleaner")


def prepare(
    dataset: Dataset,
    rows: DataFrame,
    *,
    plan: Plan | None = None,
    transform: SilverTransform | None = None,
    dataset_rules: bool = True,
    schema_check: Callable[[StructType], list[tuple[str, str]]] | None = None,
) -> Prepared:
    """Cast, transform, validate and rank ``rows`` (bronze-shaped); materialize and count them.

    ``plan`` is what to check; by default the contract's (:func:`compile_plan`). An empty plan
    (:meth:`Plan.empty`) runs the same steps and keeps every row.

    ``schema_check`` gets the schema silver would receive and returns breaking problems; when
    there are some, every row keeps its raw values (the whole batch will go to quarantine).

    The validated frame is stored once as a local checkpoint (memory, spilling to disk): the
    counts, the MERGE source and the quarantine rows all read it. (Measured on 1M rows: a
    ``persist()`` made Delta copy the MERGE source once more; staging as a Delta table cost
    more in Parquet writing than it saved.)
    """
    contract = [c.name for c in contract_columns(dataset)]
    extras = extra_columns(dataset, rows.columns)
    plan = compile_plan(dataset) if plan is None else plan
    typed = cast_bronze(dataset, rows, plan)
    if transform is not None:
        typed = apply_transform(dataset, typed, transform)
    summary = pandera_schema_summary(dataset, typed.select(*[quote(c) for c in contract]))
    if summary:
        raise CurateError(
            dataset.name,
            f"typed batch does not match the contract's schema: {summary}",
            RunCode.SCHEMA_MISMATCH,
        )
    df = apply_plan(typed, plan, errors=False)
    problems = schema_check(_silver_columns(df).schema) if schema_check is not None else []
    if RAW in df.columns and not problems:
        # Only rows bound for quarantine need their raw strings: null the rest before the
        # shuffle and the checkpoint, so neither carries them. (A breaking schema change sends
        # the whole batch to quarantine, raw strings and all.)
        df = df.withColumn(RAW, F.when(F.col(SEVERITY) == SEVERITY_OF["quarantine"], F.col(RAW)))
    # One window serves dedupe and key uniqueness: the newest kept row of each key wins.
    order = [F.col(quote(c)).desc_nulls_last() for c in order_columns(dataset)]
    by_key = Window.partitionBy(*[F.col(quote(k)) for k in dataset.primary_key])
    if dataset.cdc is not None and dataset.sequence:
        # A key with a sequence-less change (a key-only delete) ranks its rows by arrival.
        seq = F.col(quote(dataset.sequence))
        unsequenced = F.max(seq.isNull().cast("int")).over(by_key) == 1
        order[0] = F.when(~unsequenced, seq).desc_nulls_last()
    # Rows bound for silver rank before the others, so rank 1 is the newest *kept* row.
    keep_first = F.when(F.col(SEVERITY) <= KEEP_MAX, F.lit(0)).otherwise(F.lit(1))
    df = df.withColumn(RANK, F.row_number().over(by_key.orderBy(keep_first, *order)))
    prepared = Prepared(frame=df, plan=plan, contract=contract, extras=extras, schema_problems=problems)
    started = time.perf_counter()
    df, prepared.stable = _materialize(df)
    prepared.frame = df
    _count(prepared, dataset, dataset_rules=dataset_rules)
    prepared.seconds["validate"] = round(time.perf_counter() - started, 3)
    prepared.uncompiled_failed = evaluate_uncompiled(df, plan)
    return prepared


def _silver_columns(df: DataFrame) -> DataFrame:
    """``df`` without the pipeline's own columns: what silver would receive."""
    return df.drop(*[c for c in (*INTERNAL, *bit_column_names(df)) if c in df.columns])


def _materialize(df: DataFrame) -> tuple[DataFrame, bool]:
    """A lazily stored copy of ``df`` (filled by the first job that reads it), and its kind.

    The flag is True for a checkpoint, False for a cache.
    """
    try:
        return df.localCheckpoint(eager=False), True
    except Exception as err:  # noqa: BLE001 - e.g. Spark Connect 3.5 has no localCheckpoint
        log.info("local checkpoint unavailable (%s); caching the batch instead", type(err).__name__)
        from pyspark import StorageLevel

        return df.persist(StorageLevel.MEMORY_AND_DISK), False


def _count(prepared: Prepared, dataset: Dataset, *, dataset_rules: bool) -> None:
    """Every count and dataset rule, in one aggregation over the materialized frame."""
    sev = F.col(SEVERITY)
    aggs: dict[str, Any] = {
        "rows": F.count(F.lit(1)),
        "warned": F.sum((sev == 1).cast("long")),
        "dropped": F.sum((sev == 2).cast("long")),
        "quarantined": F.sum((sev == 3).cast("long")),
        "failed": F.sum((sev == 4).cast("long")),
        "keepable": F.sum((sev <= KEEP_MAX).cast("long")),
    }
    rule_cols = count_columns(prepared.plan)
    rules = list(dataset.dataset_rules) if dataset_rules else []
    exprs = [v.alias(f"c{i}") for i, v in enumerate(aggs.values())]
    exprs += [v.alias(f"r{i}") for i, v in enumerate(rule_cols.values())]
    exprs += [F.expr(r.expr).alias(f"d{i}") for i, r in enumerate(rules)]
    row = prepared.frame.agg(*exprs).first()
    assert row is not None
    prepared.counts = {k: int(row[f"c{i}"] or 0) for i, k in enumerate(aggs)}
    prepared.rule_counts = {
        k: int(row[f"r{i}"] or 0) for i, k in enumerate(rule_cols) if (row[f"r{i}"] or 0) > 0
    }
    prepared.dataset_rules = [
        {"name": r.name, "expr": r.expr, "action": r.action, "passed": bool(row[f"d{i}"])}
        for i, r in enumerate(rules)
    ]


def fail_reasons(prepared: Prepared) -> list[str]:
    """Why the batch must not be written (the ``fail`` actions that fired), or []."""
    reasons: list[str] = []
    plan = prepared.plan
    if prepared.counts.get("failed"):
        fail_keys = {e.key for e in plan.expectations if e.action == "fail"}
        fail_keys |= {f"{c}.cast" for c, a in plan.cast_actions.items() if a == "fail"}
        if plan.parse_action == "fail":
            fail_keys |= {"_record.parse", "_record.line_too_long"}
        hits = {k: n for k, n in prepared.rule_counts.items() if k in fail_keys}
        reasons.append(
            f"{prepared.counts['failed']} rows failed rules whose action is fail: "
            + ", ".join(f"{k} ({n})" for k, n in sorted(hits.items()))
        )
    for r in prepared.dataset_rules:
        if not r["passed"] and r["action"] == "fail":
            reasons.append(f"dataset rule {r['name']} ({r['expr']}) failed")
    for u in prepared.uncompiled_failed:
        if u["action"] == "fail":
            reasons.append(
                f"check {u['key']} has no Spark builder; pandera found it failing at batch level "
                f"(declared action {u['declared_action']}, which needs rows, so the batch fails)"
            )
    return reasons
