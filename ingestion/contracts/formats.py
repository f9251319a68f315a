"""File formats a dataset's landing files come in, with their read options.

Plain data, importable without pyspark: the Function side routes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Compression = Literal["auto", "none", "gzip"]


@dataclass(frozen=True, kw_only=True)
class Csv:
    """Delimited text, read with Spark's CSV reader; every value lands in bronze as a string.

    Args:
        delimiter: field separator.
        quote: quote character.
        escape: escape character inside quoted values (CSV's convention: a doubled quote).
        header: the first line names the columns (matched to the contract by name).
        multiline: quoted values may span lines (files are then read whole, not split).
        encoding: the files' text encoding.
        timestamp_format: Spark datetime pattern for timestamp columns; None: ISO 8601.
        date_format: Spark datetime pattern for date columns; None: ISO 8601.
        compression: ``auto`` decides by the file name (``.gz``).
    """

    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    header: bool = True
    multiline: bool = False  # quoted values may span lines (files are then read whole)
    encoding: str = "UTF-8"
    timestamp_format: str | None = None
    date_format: str | None = None
    compression: Compression = "auto"
    kind: Literal["csv"] = field(default="csv", init=False)


@dataclass(frozen=True, kw_only=True)
class JsonLines:
    """One JSON object per line; JSON is UTF-8 by definition (RFC 8259)."""

    timestamp_format: str | None = None
    date_format: str | None = None
    compression: Compression = "auto"
    kind: Literal["jsonl"] = field(default="jsonl", init=False)


@dataclass(frozen=True, kw_only=True)
class JsonArray:
    """One JSON array of objects per file (UTF-8)."""

    timestamp_format: str | None = None
    date_format: str | None = None
    compression: Compression = "auto"
    kind: Literal["json"] = field(default="json", init=False)


@dataclass(frozen=True, kw_only=True)
class Parquet:
    """Parquet files; their own types are read, then kept as strings in bronze like any format."""

    compression: Compression = "auto"
    kind: Literal["parquet"] = field(default="parquet", init=False)
    timestamp_format: None = field(default=None, init=False)
    date_format: None = field(default=None, init=False)


FileFormat = Csv | JsonLines | JsonArray | Parquet
