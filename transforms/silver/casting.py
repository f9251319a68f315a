"""Bronze strings -> contract types, with ``try_cast`` semantics.

Bronze keeps every value as the string found in the file. Here each contract column is cast to
its declared type; a value that does not convert becomes null *and* is reported as a ``cast``
error on that row (raw not null, typed null), so nothing turns null silently. Blank strings
(``""``, ``"  "``) count as absent for non-string columns: CSV writes them for missing values.
A decimal with more fractional digits than the declared scale is a cast error too (``try_cast``
alone would round it): silver never holds a value that differs from the file's.

Dates and timestamps honour the contract format's ``date_format``/``timestamp_format``. Under
ANSI mode ``to_date``/``to_timestamp`` raise on bad input, so we use ``try_to_timestamp``
(Spark >= 3.5) and cast its result to a date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyspark.sql.functions as F
import pyspark.sql.types as T

from ingestion.core import lake
from transforms.silver.errors import UnsupportedTypeError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from ingestion.contracts import Dataset
    from transforms.silver.expectations import Plan

ERROR_TYPE = "array<struct<column:string,check:string,value:string>>"

_SIMPLE = (
    T.BooleanType,
    T.ByteType,
    T.ShortType,
    T.IntegerType,
    T.LongType,
    T.FloatType,
    T.DoubleType,
    T.DecimalType,
    T.BinaryType,
)


def quote(name: str) -> str:
    """A column name as a SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class ContractColumn:
    name: str
    dtype: T.DataType


def contract_columns(dataset: Dataset) -> list[ContractColumn]:
    """The contract's columns with their Spark types, in declared order."""
    schema = dataset.model().to_schema()
    return [ContractColumn(name, col.dtype.type) for name, col in schema.columns.items()]


def cast_column(dataset: Dataset, name: str, dtype: T.DataType, *, exact: bool = True) -> Column:
    """The typed value of bronze string column ``name`` (null when it does not convert).

    With ``exact``, a decimal that would be rounded to fit the declared scale is null (so a
    cast error) too; without it (the cast is not checked) it is rounded, as ``try_cast`` does.
    """
    raw = F.col(quote(name))
    fmt = dataset.format
    if isinstance(dtype, T.StringType):
        return raw
    blank = F.trim(raw) == F.lit("")
    if isinstance(dtype, T.DateType):
        typed = (
            F.try_to_timestamp(raw, F.lit(fmt.date_format)).cast("date")
            if fmt.date_format
            else F.expr(f"try_cast({quote(name)} AS DATE)")
        )
    elif isinstance(dtype, T.TimestampType):
        typed = (
            F.try_to_timestamp(raw, F.lit(fmt.timestamp_format))
            if fmt.timestamp_format
            else F.expr(f"try_cast({quote(name)} AS TIMESTAMP)")
        )
    elif type(dtype).__name__ == "TimestampNTZType":
        parsed = (
            F.try_to_timestamp(raw, F.lit(fmt.timestamp_format))
            if fmt.timestamp_format
            else F.expr(f"try_cast({quote(name)} AS TIMESTAMP)")
        )
        typed = parsed.cast(dtype)
    elif isinstance(dtype, _SIMPLE):
        typed = F.expr(f"try_cast({quote(name)} AS {dtype.simpleString()})")
        if exact and isinstance(dtype, T.DecimalType):
            typed = _unless_rounded(name, dtype, typed)
    else:
        raise UnsupportedTypeError(dataset.name, name, dtype.simpleString())
    return F.when(blank, F.lit(None).cast(dtype)).otherwise(typed)


def _unless_rounded(name: str, dtype: T.DecimalType, typed: Column) -> Column:
    """``typed``, or null where ``try_cast`` rounded the text to fit the scale (12.345 -> 12.35).

    Only text with more characters after its point than the scale allows (rare; exponents land
    here too) is parsed once more, at the same integer width with every spare digit as scale:
    a difference means rounding, and a rounded value is a cast error, not a silent change.
    """
    text = F.trim(F.col(quote(name)))
    point = F.instr(text, ".")
    long_fraction = (point > 0) & (F.length(text) - point > F.lit(dtype.scale))
    wide = F.expr(f"try_cast({quote(name)} AS DECIMAL(38, {38 - (dtype.precision - dtype.scale)}))")
    return F.when(~long_fraction | wide.isNull() | (wide == typed), typed)


def cast_failed(name: str, dtype: T.DataType, typed: Column) -> Column | None:
    """True where the raw value was present but did not convert (never null)."""
    if isinstance(dtype, T.StringType):
        return None
    raw = F.col(quote(name))
    return raw.isNotNull() & (F.trim(raw) != F.lit("")) & typed.isNull()


def extra_columns(dataset: Dataset, bronze_columns: list[str]) -> list[str]:
    """Bronze columns silver keeps beside the contract's, per the schema policy."""
    # A CDC dataset's change columns are reserved: always kept, under every policy.
    change = list(lake.CHANGE_COLUMNS) if dataset.cdc is not None else []
    known = set(dataset.column_names()) | set(lake.BRONZE_META_COLUMNS) | set(change)
    if dataset.schema_policy == "evolve":
        return change + [c for c in bronze_columns if c not in known]
    if dataset.schema_policy == "rescue" and lake.RESCUED_DATA in bronze_columns:
        return [*change, lake.RESCUED_DATA]
    return change


RAW = "_raw"  # struct of the contract columns as bronze had them (for quarantine and replay)
CAST_FAIL = "_cast_fail"  # _cast_fail_0, _cast_fail_1...: bit j = castable column j did not cast
BITS = 63


def bit_columns(prefix: str, flags: list[Column]) -> dict[str, Column]:
    """Pack never-null boolean flags into long columns ``<prefix>_<k>``, 63 flags each.

    Bits keep the per-row work codegen-friendly (no arrays, no lambdas) and the cached frame small.
    """
    out: dict[str, Column] = {}
    for k in range(0, max(1, (len(flags) + BITS - 1) // BITS)):
        chunk = flags[k * BITS : (k + 1) * BITS]
        acc = F.lit(0).cast("long")
        for j, flag in enumerate(chunk):
            acc = acc.bitwiseOR(F.when(flag, F.lit(1 << j).cast("long")).otherwise(F.lit(0).cast("long")))
        out[f"{prefix}_{k}"] = acc
    return out


def bit_set(prefix: str, index: int) -> Column:
    """True when flag ``index`` is set in the ``<prefix>_*`` columns (never null)."""
    k, j = divmod(index, BITS)
    return F.col(f"{prefix}_{k}").bitwiseAND(F.lit(1 << j).cast("long")) != F.lit(0).cast("long")


def any_bit_set(prefix: str, indexes: list[int]) -> Column:
    """True when any of flags ``indexes`` is set (one mask test per long column; never null)."""
    hit = F.lit(False)
    for k in sorted({i // BITS for i in indexes}):
        mask = sum(1 << (i % BITS) for i in indexes if i // BITS == k)
        hit = hit | (F.col(f"{prefix}_{k}").bitwiseAND(F.lit(mask).cast("long")) != F.lit(0).cast("long"))
    return hit


def cast_bronze(dataset: Dataset, bronze: DataFrame, plan: Plan | None = None) -> DataFrame:
    """Typed contract columns + kept extras + lineage + parse info (+ cast-failure bits, ``_raw``).

    Contract columns bronze does not have (added to the contract later) come out as typed nulls.
    Only the columns whose cast the plan checks (``plan.cast_actions``; by default the
    contract's plan) get failure bits and exact decimals; ``_raw`` is kept unless the plan is
    empty (nothing can be quarantined).
    """
    if plan is None:
        from transforms.silver.expectations import compile_plan

        plan = compile_plan(dataset)
    have = set(bronze.columns)
    typed_cols: list[Column] = []
    flags: list[Column] = []
    raw_fields: list[Column] = []
    for c in contract_columns(dataset):
        checked = c.name in plan.cast_actions
        if c.name not in have:
            typed_cols.append(F.lit(None).cast(c.dtype).alias(c.name))
            raw_fields.append(F.lit(None).cast("string").alias(c.name))
            if checked:
                flags.append(F.lit(False))
            continue
        typed = cast_column(dataset, c.name, c.dtype, exact=checked)
        typed_cols.append(typed.alias(c.name))
        raw_fields.append(F.col(quote(c.name)).cast("string").alias(c.name))
        failed = cast_failed(c.name, c.dtype, typed) if checked else None
        if failed is not None:
            flags.append(failed)
    passthrough = [
        F.col(quote(c)) for c in extra_columns(dataset, bronze.columns) if c not in lake.CHANGE_COLUMNS
    ]
    if dataset.cdc is not None:
        from transforms.silver.cdc import change_columns

        passthrough = change_columns(bronze.columns) + passthrough
    meta = [
        (F.col(c) if c in have else F.lit(None).cast("string")).alias(c)
        for c in (lake.CORRUPT_RECORD, lake.PARSE_ERROR)
    ]
    lineage = [F.col(c) for c in lake.LINEAGE_COLUMNS]
    tracking = [v.alias(k) for k, v in bit_columns(CAST_FAIL, flags).items()] if flags else []
    if not plan.is_empty():
        tracking.append(F.struct(*raw_fields).alias(RAW))
    return bronze.select(*typed_cols, *passthrough, *lineage, *meta, *tracking)
