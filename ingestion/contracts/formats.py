"""File formats a dataset's landing files come in, with their read options.

Plain data, importable without pyspark: the Function side routes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Compression = Literal["auto", "none", "gzip"]


@dataclass(frozen=True, kw_only=True)
class Csv:
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
    compression: Compression = "auto"
    kind: Literal["parquet"] = field(default="parquet", init=False)
    timestamp_format: None = field(default=None, init=False)
    date_format: None = field(default=None, init=False)


FileFormat = Union[Csv, JsonLines, JsonArray, Parquet]
