"""Expectations compiled from the dataset contract, evaluated row by row in one pass.

The pandera model in ``schemas/`` is the single source of truth. :func:`compile_plan` walks its
schema and turns every check into a Spark boolean column through a registry of builders keyed by
pandera's check name (``str_matches``, ``isin``, ``greater_than_or_equal_to``...), using the
check's ``statistics``. A check without a builder (a custom check, ``unique_values_eq``) is not
skipped: it is listed in :attr:`Plan.uncompiled` and evaluated by pandera itself at batch level
(see :func:`evaluate_uncompiled`); since a batch-level verdict cannot single out rows, its action
is ``warn`` when declared so and ``fail`` otherwise.

Semantics follow pandera's pyspark backend, which filters with ``~condition``: a null value
passes every value check (nullability is its own ``not_nullable`` check); ``str_matches`` is
``rlike`` with a leading ``^`` (anchored at the start, Java regex, as pandera runs it);
``unique`` groups nulls together, like pandera's ``groupBy``.

Each failing check adds ``{column, check, value}`` to the row's ``_errors`` (value is the
offending value as a string; for a row rule, column and value are null), and the row's action
is the most severe of its failed checks' actions: warn < drop < quarantine < fail.

Register a builder for your own check with :func:`register_builder`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyspark.sql.functions as F
from pyspark.sql import Window

from ingestion.core import lake
from ingestion.core.reasons import RowCheck
from transforms.silver.casting import (
    CAST_FAIL,
    ERROR_TYPE,
    RAW,
    any_bit_set,
    bit_columns,
    bit_set,
    quote,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from ingestion.contracts import Action, Dataset

ERRORS = "_errors"
SEVERITY = "_severity"
SEVERITY_OF: dict[str, int] = {"warn": 1, "drop": 2, "quarantine": 3, "fail": 4}
PARSE_COLUMN = "_record"

CheckBuilder = Callable[["Column", Mapping[str, Any]], "Column"]
"""Builds the *passing* condition of a check from the column and the check's statistics.

Null means "pass" (as in pandera); the caller turns it into a never-null failure flag.
"""

_BUILDERS: dict[str, CheckBuilder] = {}


def register_builder(*names: str) -> Callable[[CheckBuilder], CheckBuilder]:
    """Register a Spark builder for pandera check ``names`` (name and aliases)."""

    def deco(fn: CheckBuilder) -> CheckBuilder:
        for n in names:
            _BUILDERS[n] = fn
        return fn

    return deco


def builder_for(name: str) -> CheckBuilder | None:
    return _BUILDERS.get(name)


def registered_checks() -> list[str]:
    return sorted(_BUILDERS)


# --- builders: one per pandera built-in check (pandera/backends/pyspark/builtin_checks.py) --------
@register_builder("equal_to", "eq")
def _eq(c: Column, s: Mapping[str, Any]) -> Column:
    return c == F.lit(s["value"])


@register_builder("not_equal_to", "ne")
def _ne(c: Column, s: Mapping[str, Any]) -> Column:
    return c != F.lit(s["value"])


@register_builder("greater_than", "gt")
def _gt(c: Column, s: Mapping[str, Any]) -> Column:
    return c > F.lit(s["min_value"])


@register_builder("greater_than_or_equal_to", "ge")
def _ge(c: Column, s: Mapping[str, Any]) -> Column:
    return c >= F.lit(s["min_value"])


@register_builder("less_than", "lt")
def _lt(c: Column, s: Mapping[str, Any]) -> Column:
    return c < F.lit(s["max_value"])


@register_builder("less_than_or_equal_to", "le")
def _le(c: Column, s: Mapping[str, Any]) -> Column:
    return c <= F.lit(s["max_value"])


@register_builder("in_range", "between")
def _in_range(c: Column, s: Mapping[str, Any]) -> Column:
    lo, hi = F.lit(s["min_value"]), F.lit(s["max_value"])
    above = c >= lo if s.get("include_min", True) else c > lo
    below = c <= hi if s.get("include_max", True) else c < hi
    return above & below


@register_builder("isin")
def _isin(c: Column, s: Mapping[str, Any]) -> Column:
    return c.isin(list(s["allowed_values"]))


@register_builder("notin")
def _notin(c: Column, s: Mapping[str, Any]) -> Column:
    return ~c.isin(list(s["forbidden_values"]))


def _pattern(p: Any) -> str:
    return p.pattern if hasattr(p, "pattern") else str(p)


@register_builder("str_matches")
def _str_matches(c: Column, s: Mapping[str, Any]) -> Column:
    pattern = _pattern(s["pattern"])
    # pandera anchors at the start only (re.match semantics) by prefixing "^".
    return c.rlike(pattern if pattern.startswith("^") else f"^{pattern}")


@register_builder("str_contains")
def _str_contains(c: Column, s: Mapping[str, Any]) -> Column:
    return c.rlike(_pattern(s["pattern"]))


@register_builder("str_startswith")
def _str_startswith(c: Column, s: Mapping[str, Any]) -> Column:
    return c.startswith(s["string"])


@register_builder("str_endswith")
def _str_endswith(c: Column, s: Mapping[str, Any]) -> Column:
    return c.endswith(s["string"])


@register_builder("str_length")
def _str_length(c: Column, s: Mapping[str, Any]) -> Column:
    n = F.length(c)
    if s.get("exact_value") is not None:
        return n == s["exact_value"]
    lo, hi = s.get("min_value"), s.get("max_value")
    if lo is not None and hi is not None:
        return (n >= lo) & (n <= hi)
    if lo is not None:
        return n >= lo
    if hi is not None:
        return n <= hi
    raise ValueError("str_length needs min_value or max_value")


# --- the plan -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    """One row-level check: ``failed`` is a never-null boolean column.

    ``statistics`` are the pandera check's arguments (None for nullability, uniqueness and row
    rules), so a report can name the check as declared: ``amount.greater_than_or_equal_to(0)``.
    """

    column: str | None
    check: str
    action: Action
    failed: Column
    value: Column
    describe: str
    statistics: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.column}.{self.check}" if self.column else self.check


@dataclass(frozen=True)
class Uncompiled:
    """A contract check with no Spark builder: evaluated by pandera at batch level."""

    column: str | None
    check: str
    describe: str
    declared_action: Action
    pandera_check: Any
    dtype: Any = None

    @property
    def action(self) -> Action:
        return "warn" if self.declared_action == "warn" else "fail"

    @property
    def key(self) -> str:
        return f"{self.column}.{self.check}" if self.column else self.check


@dataclass
class Plan:
    """What the contract asks of each row and of the batch.

    :meth:`empty` checks nothing: curate with it to time the job without validation (the
    benchmarks do); it runs the same pipeline, and every row is kept.
    """

    expectations: list[Expectation] = field(default_factory=list)
    uncompiled: list[Uncompiled] = field(default_factory=list)
    cast_actions: dict[str, Action] = field(default_factory=dict)
    parse_action: Action = "quarantine"

    @classmethod
    def empty(cls) -> Plan:
        """A plan with no checks: values cast as ``try_cast`` does, malformed rows kept."""
        return cls(parse_action="warn")

    def is_empty(self) -> bool:
        """True when no row can fail: no checks, and malformed rows are kept."""
        return not (self.expectations or self.uncompiled or self.cast_actions) and self.parse_action == "warn"


def _failed(passes: Column) -> Column:
    return F.coalesce(~passes, F.lit(False))


ActionFor = Callable[[str | None, str], "Action"]
"""The action of a failed check: ``(column or None for a frame-level check, check name)``."""


def compile_plan(dataset: Dataset) -> Plan:
    """Compile the dataset's pandera model, key and row rules into a :class:`Plan`."""

    def action_for(column: str | None, check: str) -> Action:
        if column is None:
            return dataset.check_actions.get(check, dataset.check_action)
        return dataset.action_for(column, check)

    plan = compile_schema(
        dataset.model().to_schema(), action_for=action_for, keys=dataset.primary_key, cast=True
    )
    plan.parse_action = dataset.check_actions.get(f"{PARSE_COLUMN}.parse", "quarantine")
    for rule in dataset.rules:
        plan.expectations.append(
            Expectation(
                None,
                rule.name,
                rule.action,
                _failed(F.expr(rule.expr)),
                F.lit(None).cast("string"),
                rule.expr,
            )
        )
    if dataset.cdc is not None:
        _for_changes(plan, dataset)
    return plan


def _for_changes(plan: Plan, dataset: Dataset) -> None:
    """Fit the plan to change rows.

    A delete carries only its key, so only key checks apply to it; and every change must name
    its operation (quarantined otherwise, never guessed).
    """
    from dataclasses import replace

    from transforms.silver.cdc import bad_operation, is_delete

    assert dataset.cdc is not None
    keys = set(dataset.primary_key)
    if dataset.cdc.mode == "scd2":
        keys.add(dataset.cdc.sequence_by)  # a history interval needs its change's sequence
    plan.expectations[:] = [
        e if e.column in keys else replace(e, failed=e.failed & ~is_delete()) for e in plan.expectations
    ]
    if dataset.cdc.mode == "scd2" and dataset.cdc.sequence_by == lake.CHANGE_SEQ:
        plan.expectations.append(
            Expectation(
                lake.CHANGE_SEQ,
                RowCheck.NOT_NULLABLE.value,
                "quarantine",
                F.col(lake.CHANGE_SEQ).isNull(),
                F.lit(None).cast("string"),
                "not_nullable",
            )
        )
    plan.expectations.append(
        Expectation(
            lake.CHANGE_OP,
            RowCheck.OPERATION.value,
            "quarantine",
            bad_operation(),
            F.col(lake.CHANGE_OP),
            "operation in (insert, update, delete)",
        )
    )


def compile_schema(
    schema: Any, *, action_for: ActionFor, keys: tuple[str, ...] = (), cast: bool = False
) -> Plan:
    """Compile a pandera schema's column and frame checks into a :class:`Plan`.

    Silver (:func:`compile_plan`) and gold's contract check share this walk.

    Args:
        schema: a ``pandera.pyspark.DataFrameSchema`` (``Model.to_schema()``).
        action_for: the action of each failed check.
        keys: the primary key: never null (a warn on it becomes quarantine), its uniqueness
            left to dedupe.
        cast: the frame's non-string columns were cast from strings (bronze): each gets a
            ``cast`` check, and a value that did not cast is not also reported as null.

    Returns:
        The plan; its ``parse_action`` is the default, and it has no row rules.
    """
    import pyspark.sql.types as T

    plan = Plan()
    key_set = set(keys)
    for name, col in schema.columns.items():
        c = F.col(quote(name))
        as_text = c.cast("string")
        if cast and not isinstance(col.dtype.type, T.StringType):
            plan.cast_actions[name] = action_for(name, "cast")
        if not col.nullable or name in key_set:
            action = action_for(name, "not_nullable")
            if name in key_set and action == "warn":
                action = "quarantine"  # a null key cannot be merged; never keep it
            missing = c.isNull()
            if name in plan.cast_actions:
                # A value that did not cast is reported as ``cast``, not also as a null.
                missing = missing & ~bit_set(CAST_FAIL, list(plan.cast_actions).index(name))
            plan.expectations.append(
                Expectation(name, "not_nullable", action, missing, F.lit(None).cast("string"), "not_nullable")
            )
        for check in col.checks:
            builder = builder_for(check.name)
            action = action_for(name, check.name)
            if builder is None:
                plan.uncompiled.append(
                    Uncompiled(name, check.name, str(check.error or check.name), action, check, col.dtype)
                )
                continue
            plan.expectations.append(
                Expectation(
                    name,
                    check.name,
                    action,
                    _failed(builder(c, check.statistics)),
                    as_text,
                    str(check.error or check.name),
                    dict(check.statistics or {}),
                )
            )
        if getattr(col, "unique", False) and name not in key_set:
            # The key's uniqueness is what dedupe guarantees; other unique columns are checked.
            dup = F.count(F.lit(1)).over(Window.partitionBy(c)) > 1
            plan.expectations.append(
                Expectation(name, "unique", action_for(name, "unique"), dup, as_text, "unique")
            )
    unique = schema.unique
    if unique:
        cols = [unique] if isinstance(unique, str) else list(unique)
        if set(cols) != key_set:
            dup = F.count(F.lit(1)).over(Window.partitionBy(*[F.col(quote(u)) for u in cols])) > 1
            label = ",".join(cols)
            plan.expectations.append(
                Expectation(
                    label,
                    "unique",
                    action_for(label, "unique"),
                    dup,
                    F.concat_ws(",", *[F.col(quote(u)).cast("string") for u in cols]),
                    f"unique({label})",
                )
            )
    for check in getattr(schema, "checks", None) or []:
        plan.uncompiled.append(
            Uncompiled(None, check.name, str(check.error or check.name), action_for(None, check.name), check)
        )
    return plan


def _reason(column: str | None, check: str | Column, value: Column) -> Column:
    return F.struct(
        F.lit(column).cast("string").alias("column"),
        (F.lit(check) if isinstance(check, str) else check).alias("check"),
        value.cast("string").alias("value"),
    )


FAIL = "_fail"  # _fail_0, _fail_1...: bit i = expectation i failed on the row


def apply_plan(df: DataFrame, plan: Plan, *, errors: bool = True) -> DataFrame:
    """Add failure bits, ``_severity`` (0 = clean) and, with ``errors``, ``_errors``.

    Each check is evaluated once per row into a bit; severity, counts and reasons are read from
    the bits. A row malformed in its file (``_corrupt_record`` set) carries only its ``parse``
    reason: its other columns are null because of the parse error, not their own checks.
    """
    corrupt = F.col(lake.CORRUPT_RECORD).isNotNull()
    fail_bits = bit_columns(FAIL, [e.failed for e in plan.expectations])
    df = df.withColumns(
        {k: F.when(corrupt, F.lit(0).cast("long")).otherwise(v) for k, v in fail_bits.items()}
    )
    levels = _severity_levels(CAST_FAIL, list(plan.cast_actions.values()))
    levels += _severity_levels(FAIL, [e.action for e in plan.expectations])
    severity = F.greatest(F.lit(0), F.lit(0), *levels)
    df = df.withColumn(SEVERITY, F.when(corrupt, F.lit(SEVERITY_OF[plan.parse_action])).otherwise(severity))
    return with_errors(df, plan) if errors else df


def _severity_levels(prefix: str, actions: list[Action]) -> list[Column]:
    """Per action, its severity where any flag (bit ``i`` of ``prefix``) with that action is set."""
    by_action: dict[str, list[int]] = {}
    for i, action in enumerate(actions):
        by_action.setdefault(action, []).append(i)
    return [F.when(any_bit_set(prefix, idx), F.lit(SEVERITY_OF[a])) for a, idx in by_action.items()]


def with_errors(df: DataFrame, plan: Plan) -> DataFrame:
    """Add ``_errors`` (array of ``{column, check, value}``) from the failure bits.

    Built only where a bit is set: clean rows get an empty array without evaluating the array.
    """
    corrupt = F.col(lake.CORRUPT_RECORD).isNotNull()
    have_raw = RAW in df.columns
    reasons: list[Column] = []
    for j, name in enumerate(plan.cast_actions):
        raw = F.col(f"{RAW}.{quote(name)}") if have_raw else F.lit(None).cast("string")
        reasons.append(F.when(bit_set(CAST_FAIL, j), _reason(name, "cast", raw)))
    for i, e in enumerate(plan.expectations):
        reasons.append(F.when(bit_set(FAIL, i), _reason(e.column, e.check, e.value)))
    any_bit = F.lit(False)
    for c in df.columns:
        if c.startswith(f"{FAIL}_") or c.startswith(f"{CAST_FAIL}_"):
            any_bit = any_bit | (F.col(c) != 0)
    parse = F.array(_reason(PARSE_COLUMN, _parse_check(), F.col(lake.PARSE_ERROR)))
    listed = F.filter(F.array(*reasons), lambda r: r.isNotNull()) if reasons else F.array()
    return df.withColumn(
        ERRORS,
        F.when(corrupt, parse).when(any_bit, listed).otherwise(F.array()).cast(ERROR_TYPE),
    )


def _too_long() -> Column:
    return F.coalesce(F.col(lake.PARSE_ERROR).startswith(lake.LINE_TOO_LONG), F.lit(False))


def _parse_check() -> Column:
    """A corrupt record's check: ``line_too_long`` for a line bronze could not hold, else ``parse``."""
    return F.when(_too_long(), F.lit(RowCheck.LINE_TOO_LONG.value)).otherwise(F.lit(RowCheck.PARSE.value))


def count_columns(plan: Plan) -> dict[str, Column]:
    """Aggregate columns counting rows per reason key (``column.check``), from the bits."""
    corrupt = F.col(lake.CORRUPT_RECORD).isNotNull()
    out: dict[str, Column] = {
        f"{PARSE_COLUMN}.parse": F.sum((corrupt & ~_too_long()).cast("long")),
        f"{PARSE_COLUMN}.line_too_long": F.sum((corrupt & _too_long()).cast("long")),
    }
    for j, name in enumerate(plan.cast_actions):
        out[f"{name}.cast"] = F.sum(bit_set(CAST_FAIL, j).cast("long"))
    for i, e in enumerate(plan.expectations):
        out[e.key] = F.sum(bit_set(FAIL, i).cast("long"))
    return out


def failure_counts(df: DataFrame, expectations: list[Expectation]) -> list[int]:
    """Rows failing each of ``expectations`` on a typed frame, in one aggregation.

    For frames that are not bronze-shaped (gold's output): no parse or cast bits.
    """
    if not expectations:
        return []
    bits = bit_columns(FAIL, [e.failed for e in expectations])
    sums = [F.sum(bit_set(FAIL, i).cast("long")).alias(f"c{i}") for i in range(len(expectations))]
    row = df.withColumns(bits).agg(*sums).first()
    assert row is not None  # an aggregation without grouping returns one row
    return [int(row[f"c{i}"] or 0) for i in range(len(expectations))]


def bit_column_names(df: DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(f"{FAIL}_") or c.startswith(f"{CAST_FAIL}_")]


def evaluate_uncompiled(df: DataFrame, plan: Plan) -> list[dict[str, Any]]:
    """Run each uncompiled check with pandera on the whole batch; the failed ones, with actions.

    One Spark job per check (pandera's way); only checks without a builder get here.
    """
    if not plan.uncompiled:
        return []
    import pandera.pyspark as pa

    failed: list[dict[str, Any]] = []
    for u in plan.uncompiled:
        if u.column is not None:
            schema = pa.DataFrameSchema(
                {u.column: pa.Column(u.dtype, checks=[u.pandera_check], nullable=True)}
            )
            frame = df.select(quote(u.column))
        else:
            schema = pa.DataFrameSchema(checks=[u.pandera_check])
            frame = df
        out = schema.validate(frame)
        errors = dict(getattr(out.pandera, "errors", None) or {})
        if errors:
            failed.append(
                {
                    "key": u.key,
                    "column": u.column,
                    "check": u.check,
                    "describe": u.describe,
                    "declared_action": u.declared_action,
                    "action": u.action,
                }
            )
    return failed
