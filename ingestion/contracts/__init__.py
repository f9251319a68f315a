"""Dataset contracts: declared once in ``schemas/``, read by every part of headwater."""

from ingestion.contracts.catalog import Catalog
from ingestion.contracts.cdc import Cdc
from ingestion.contracts.formats import Csv, FileFormat, JsonArray, JsonLines, Parquet
from ingestion.contracts.gold import Gold
from ingestion.contracts.model import (
    Action,
    Dataset,
    DatasetRule,
    DriftThresholds,
    RowRule,
    SchemaPolicy,
)

__all__ = [
    "Action",
    "Catalog",
    "Cdc",
    "Csv",
    "Dataset",
    "DatasetRule",
    "DriftThresholds",
    "FileFormat",
    "Gold",
    "JsonArray",
    "JsonLines",
    "Parquet",
    "RowRule",
    "SchemaPolicy",
]
