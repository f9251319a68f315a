"""The dataset contract: what one file in ``schemas/`` declares.

Everything here is importable without pyspark. The columns are a pandera model built lazily by
``columns()`` (pandera's pyspark API imports pyspark), so only the Spark side ever builds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ingestion.contracts.cdc import Cdc
from ingestion.contracts.formats import Csv, FileFormat

if TYPE_CHECKING:  # pragma: no cover
    import pandera.pyspark as pa

SchemaPolicy = Literal["evolve", "freeze", "rescue"]
Action = Literal["warn", "drop", "quarantine", "fail"]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class RowRule:
    """A named row rule that is not a column check, as a Spark SQL boolean expression.

    Example: ``RowRule(name="shipped_after_ordered", expr="ship_date >= order_date")``.
    A row fails when the expression is false; null counts as passing, as in pandera.
    """

    name: str
    expr: str
    action: Action = "quarantine"


@dataclass(frozen=True, kw_only=True)
class DatasetRule:
    """A rule over the whole batch, as a Spark SQL aggregate boolean expression.

    Example: ``DatasetRule(name="null_rate", expr="avg(cast(email is null as int)) < 0.05")``.
    """

    name: str
    expr: str
    action: Literal["warn", "fail"] = "fail"


@dataclass(frozen=True, kw_only=True)
class DriftThresholds:
    """PSI levels at which a column's drift is reported as ``warn`` and ``drift``."""

    warn: float = 0.1
    drift: float = 0.25


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One dataset's contract.

    Args:
        name: lower-case identifier; names the tables in every zone.
        landing: glob under the landing zone (``orders/**/*.csv``) routing files to this dataset.
        format: how the files are read (Csv, JsonLines, JsonArray, Parquet).
        columns: builds the pandera ``DataFrameModel`` (types, nullability, checks); lazy.
        primary_key: columns identifying a row; silver keeps one row per key.
        order_by: column deciding "latest wins"; None means ingestion order.
        partition_by: silver/gold partition columns.
        schema_policy: what to do with columns the contract does not know.
        check_action: action for failed column checks (pandera checks, casts, nullability).
        check_actions: per-check overrides, keyed ``"column.check"`` or ``"column"``.
        rules: named row rules beyond column checks.
        dataset_rules: batch-level rules (row count, null rates).
        gold: the dataset's gold declaration (see ``transforms.gold``), if it publishes one.
        cdc: how row changes from a SQL source are applied (see :class:`Cdc`); None for files
            of whole rows.
        drift: thresholds for drift between registered versions.
        description: one line for people.
    """

    name: str
    landing: str
    format: FileFormat = field(default_factory=Csv)
    columns: Callable[[], type[pa.DataFrameModel]]
    primary_key: tuple[str, ...]
    order_by: str | None = None
    partition_by: tuple[str, ...] = ()
    schema_policy: SchemaPolicy = "evolve"
    check_action: Action = "quarantine"
    check_actions: Mapping[str, Action] = field(default_factory=dict)
    rules: tuple[RowRule, ...] = ()
    dataset_rules: tuple[DatasetRule, ...] = ()
    gold: Any = None
    cdc: Cdc | None = None
    drift: DriftThresholds = field(default_factory=DriftThresholds)
    description: str = ""

    @property
    def sequence(self) -> str | None:
        """What orders one key's rows: the CDC ``sequence_by``, else ``order_by``."""
        return self.cdc.sequence_by if self.cdc is not None else self.order_by

    def model(self) -> type[pa.DataFrameModel]:
        """The pandera model (imports pyspark)."""
        return self.columns()

    def column_names(self) -> list[str]:
        """Contract columns in declared order (builds the model)."""
        return list(self.model().to_schema().columns)

    def bronze_columns(self) -> list[str]:
        """What bronze reads as columns: the contract's, plus the change columns under ``cdc``."""
        from ingestion.core.lake import CHANGE_COLUMNS

        return self.column_names() + (list(CHANGE_COLUMNS) if self.cdc is not None else [])

    def action_for(self, column: str, check: str) -> Action:
        """The action for a failed ``check`` on ``column``: ``column.check``, then ``column``, then the default."""
        return self.check_actions.get(f"{column}.{check}", self.check_actions.get(column, self.check_action))
