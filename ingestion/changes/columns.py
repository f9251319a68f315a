"""What columns a change batch carries, and whether the dataset's contract can still take them.

A source table's schema can change under a running pull: a column dropped, or retyped. Added
columns are the schema policy's business (ingest sees them as unknown columns). A dropped or
retyped column is not: its changes would reach silver as nulls or as ``cast`` failures, row by
row, with the cause hidden. So each change file records the columns its batch carried and the
kind of value each holds, *as written to the file* (a ``rowversion`` is written as an integer),
and ingest judges the file against the contract: a file the contract cannot take goes to
quarantine whole, with the ``schema`` reason and the columns named, and can be readmitted once
the contract follows the source.

The record is content-addressed (``system/changes/schemas/<digest>.json``) and the digest is
part of the file name (``<name>.s<digest>.jsonl``), so the rows stay as the source sent them.
It is written before the file: a landed change file always has its record. This module does not
import pyspark: the Functions SQL trigger uses it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingestion.core import lake

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.storage import Storage

# Kinds of value a change file holds for a column (None: the source did not say).
INTEGER, NUMBER, TEXT, JSON_STRING, BOOLEAN, DATE, TIMESTAMP = (
    "integer",
    "number",
    "text",
    "string",  # a JSON string of the SQL trigger's payload: text, a date, a time or base64 bytes
    "boolean",
    "date",
    "timestamp",
)
# For each kind of contract type, the kinds of value that cast to it without loss.
_ACCEPTS: dict[str, frozenset[str]] = {
    "text": frozenset({INTEGER, NUMBER, TEXT, JSON_STRING, BOOLEAN, DATE, TIMESTAMP}),
    "integer": frozenset({INTEGER}),
    "number": frozenset({INTEGER, NUMBER}),
    "boolean": frozenset({BOOLEAN, INTEGER}),  # SQLite and ODBC bit columns arrive as 0/1
    "date": frozenset({DATE, TIMESTAMP, JSON_STRING}),
    "timestamp": frozenset({TIMESTAMP, DATE, JSON_STRING}),
    "binary": frozenset({JSON_STRING}),
}
_SUFFIX = re.compile(r"\.s([0-9a-f]{12})\.jsonl$")


@dataclass(frozen=True)
class SourceColumns:
    """The columns one change batch carried: name -> kind of value (None when unknown)."""

    kinds: Mapping[str, str | None]

    @property
    def digest(self) -> str:
        body = json.dumps(dict(sorted(self.kinds.items())), separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    def file_name(self, name: str) -> str:
        """``name`` (``x.jsonl``) with this record's digest: ``x.s<digest>.jsonl``."""
        return f"{name[: -len('.jsonl')]}.s{self.digest}.jsonl"

    def save(self, storage: Storage) -> None:
        """Write the record (content-addressed: a record already there is the same)."""
        path = record_path(self.digest)
        if not storage.exists(path):
            storage.write_bytes(path, json.dumps({"columns": dict(self.kinds)}, sort_keys=True).encode())


def record_path(digest: str) -> str:
    return f"system/changes/schemas/{digest}.json"


def digest_of(file_name: str) -> str | None:
    """The record digest a change file's name carries, or None (a file landed without one)."""
    found = _SUFFIX.search(file_name)
    return found.group(1) if found else None


def load(storage: Storage, digest: str) -> SourceColumns | None:
    """The record of ``digest``, or None when the lake has none."""
    path = record_path(digest)
    if not storage.exists(path):
        return None
    return SourceColumns(dict(json.loads(storage.read_bytes(path))["columns"]))


def _kind_of_type(code: Any) -> str | None:
    """The kind written for a pyodbc ``type_code`` (see ``puller._json_value``)."""
    if not isinstance(code, type):
        return None
    if issubclass(code, bool):
        return BOOLEAN
    if issubclass(code, (int, bytes, bytearray)):  # bytes (a rowversion) are written as an integer
        return INTEGER
    if issubclass(code, (float, decimal.Decimal)):
        return NUMBER
    if issubclass(code, dt.datetime):
        return TIMESTAMP
    if issubclass(code, dt.date):
        return DATE
    if issubclass(code, (str, uuid.UUID, dt.time)):
        return TEXT
    return None


def from_description(description: Sequence[Sequence[Any]], *, skip: Iterable[str] = ()) -> SourceColumns:
    """The columns of a DB-API cursor's ``description`` (name, type_code, ...), minus ``skip``."""
    leave = set(skip)
    return SourceColumns(
        {d[0]: (_kind_of_type(d[1]) if len(d) > 1 else None) for d in description if d[0] not in leave}
    )


def _kind_of_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return JSON_STRING
    return TEXT  # an object or array: only text can hold it


def from_items(items: Iterable[Mapping[str, Any]]) -> SourceColumns | None:
    """The columns of SQL trigger items that carry a whole row (inserts and updates).

    A column holding integers in one row and decimals in another is a number; any other mix is
    text. None when no item carries a whole row (a batch of deletes, which carry only keys).
    """
    kinds: dict[str, str | None] = {}
    seen = False
    for item in items:
        seen = True
        for name, value in item.items():
            if name in lake.CHANGE_COLUMNS:
                continue
            kind, have = _kind_of_json(value), kinds.get(name)
            if name not in kinds or have is None:
                kinds[name] = kind
            elif kind is not None and kind != have:
                kinds[name] = NUMBER if {kind, have} == {INTEGER, NUMBER} else TEXT
    return SourceColumns(kinds) if seen else None


def contract_kind(spark_type: str) -> str:
    """The kind of a contract column's Spark type (its ``simpleString``)."""
    name = spark_type.split("(")[0]
    if name in ("tinyint", "smallint", "int", "bigint"):
        return "integer"
    if name in ("decimal", "double", "float"):
        return "number"
    if name in ("date", "boolean", "binary"):
        return name
    if name.startswith("timestamp"):
        return "timestamp"
    return "text"


def problems(contract: Mapping[str, str], carried: SourceColumns) -> list[tuple[str, str]]:
    """(column, what changed) for each contract column the batch dropped or carries retyped.

    Args:
        contract: the contract's columns, name -> Spark type (``simpleString``).
        carried: what the batch carried.

    Returns:
        One entry per dropped or retyped column, in contract order; empty when the contract can
        take the batch. A column of unknown kind is not judged.
    """
    found: list[tuple[str, str]] = []
    for name, spark_type in contract.items():
        if name not in carried.kinds:
            found.append((name, "dropped at the source: the changes carry no such column"))
            continue
        kind = carried.kinds[name]
        if kind is not None and kind not in _ACCEPTS[contract_kind(spark_type)]:
            found.append(
                (name, f"retyped at the source: it now sends {kind} values, the contract says {spark_type}")
            )
    return found
