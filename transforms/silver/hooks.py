"""Per-dataset silver transforms: user code in ``transforms/datasets/<dataset>.py``.

A dataset may ship a module named after it exposing::

    def silver(df: DataFrame) -> DataFrame: ...

It receives the typed batch (contract columns cast to their types, plus lineage and internal
columns) after casting and before validation, so the contract's checks see the transformed
values. It must be pure and row-preserving (filter with a contract rule and ``drop`` instead),
keep the columns it does not own (use ``withColumn``), and keep contract column types; the curate
job verifies the columns and types and reports the transform by name when it breaks them.
The package searched is ``settings.transforms_package``: ``transforms.datasets`` (override with
``HEADWATER_TRANSFORMS_PACKAGE``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

SilverTransform = Callable[["DataFrame"], "DataFrame"]


def find_transform(dataset: str, *, package: str | None = None) -> SilverTransform | None:
    """The dataset's ``silver`` function, or None when it has no transform module.

    Args:
        dataset: the dataset's name (the module's name in the package).
        package: the package searched; by default the settings' ``transforms_package``.
    """
    from ingestion.core.config import get_settings

    package = package or get_settings().transforms_package
    name = f"{package}.{dataset}"
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return None
    fn = getattr(importlib.import_module(name), "silver", None)
    return fn if callable(fn) else None
