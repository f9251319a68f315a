"""A dataset's gold declaration: how silver becomes a curated table and a versioned asset.

Plain data, importable without pyspark. The transform is a callable or a dotted path
(``"transforms.gold.features:customer_features"``) resolved only on the Spark side.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ingestion.core.errors import ContractError

if TYPE_CHECKING:  # pragma: no cover
    import pandera.pyspark as pa
    from pyspark.sql import DataFrame, SparkSession

GoldWrite = Literal["overwrite_partitions", "merge"]
AssetType = Literal["mltable", "uri_folder"]
GoldBuild = str | Callable[..., "DataFrame"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DOTTED_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True, kw_only=True)
class Gold:
    """The gold output a dataset publishes.

    Args:
        name: gold table (``gold/<name>``) and asset name.
        build: ``(spark, silver: dict[str, DataFrame]) -> DataFrame``, or ``"module:function"``.
        inputs: silver datasets the transform reads (each pinned to one version per publish).
        write: ``"merge"`` (row-level by ``keys``) or ``"overwrite_partitions"`` (replace
            only the partitions whose rows changed).
        keys: columns identifying a gold row; required for ``merge``, excluded from drift.
        partition_by: gold partition columns; required for ``overwrite_partitions``.
        columns: builds the pandera model the output must satisfy before any commit; lazy.
        asset_type: ``"mltable"`` for tables, ``"uri_folder"`` for data that is not a table.
        asset_retention_days: how long a registered asset version stays live; the table's
            log and deleted-file retention are set to at least this, so pinned versions load.
        drift_exclude: columns left out of drift (e.g. an as-of date that moves every build).
        description: one line for people (also the asset description).
    """

    name: str
    build: GoldBuild
    inputs: tuple[str, ...]
    write: GoldWrite = "merge"
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    columns: Callable[[], type[pa.DataFrameModel]] | None = None
    asset_type: AssetType = "mltable"
    asset_retention_days: int = 90
    drift_exclude: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not _NAME_RE.match(self.name):
            problems.append(f"gold name {self.name!r} must match {_NAME_RE.pattern}")
        if not self.inputs:
            problems.append("gold.inputs must name at least one silver dataset")
        if self.write not in ("overwrite_partitions", "merge"):
            problems.append(f"gold.write {self.write!r} is not 'merge' or 'overwrite_partitions'")
        if self.write == "merge" and not self.keys:
            problems.append("gold.write='merge' needs gold.keys")
        if self.write == "overwrite_partitions" and not self.partition_by:
            problems.append("gold.write='overwrite_partitions' needs gold.partition_by")
        if self.asset_type not in ("mltable", "uri_folder"):
            problems.append(f"gold.asset_type {self.asset_type!r} is not 'mltable' or 'uri_folder'")
        if self.asset_retention_days < 1:
            problems.append("gold.asset_retention_days must be at least 1")
        if isinstance(self.build, str) and not _DOTTED_RE.match(self.build):
            problems.append(f"gold.build {self.build!r} is not 'package.module:function'")
        elif not isinstance(self.build, str) and not callable(self.build):
            problems.append("gold.build must be a callable or 'package.module:function'")
        if problems:
            raise ContractError(f"gold {self.name}", problems)

    def transform(self) -> Callable[[SparkSession, dict[str, DataFrame]], DataFrame]:
        """The build function (imports its module when given as a dotted path)."""
        if not isinstance(self.build, str):
            return self.build
        module_name, _, attr = self.build.partition(":")
        try:
            fn: Any = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ContractError(f"gold {self.name}", [f"gold.build {self.build!r}: {err}"]) from None
        if not callable(fn):
            raise ContractError(f"gold {self.name}", [f"gold.build {self.build!r} is not callable"])
        return fn

    def model(self) -> type[pa.DataFrameModel] | None:
        """The gold contract's pandera model, or None when undeclared (imports pyspark)."""
        return self.columns() if self.columns is not None else None
