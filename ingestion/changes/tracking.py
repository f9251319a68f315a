"""The change puller, change-tracking mode: SQL Server and Azure SQL.

Inside one ``SNAPSHOT`` transaction: check the stored version against
``CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(<table>))``, read
``CHANGE_TRACKING_CURRENT_VERSION()``, then read ``CHANGETABLE(CHANGES <table>, @last) AS ct LEFT
JOIN <table> AS t ON <key>``: ``SYS_CHANGE_VERSION`` becomes ``_change_seq`` and
``SYS_CHANGE_OPERATION`` (I/U/D) ``_change_op``; a delete carries only its key. Change tracking
returns *net* changes with the row's current values, so history is only as fine as the pull
interval.

When the stored version is older than the minimum valid one (change tracking cleaned up what it
needed), or there is none, the pull is a *full reload*, marked as such in the file name
(``reload-...``): every row as an upsert at the current version, plus a delete for every key
the last snapshot held that the table no longer has.

Before anything, the prerequisites are checked, each with an error naming the one missing:
change tracking on for the database and for the table, ``ALLOW_SNAPSHOT_ISOLATION ON``, and the
``VIEW CHANGE TRACKING`` permission on the table. The version is stored only after the files
are landed. Identifiers are validated and bracket-quoted; values are bound parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ingestion.changes.columns import SourceColumns, from_description
from ingestion.changes.landing import LandedChanges
from ingestion.changes.puller import (
    PullResult,
    PullState,
    _connect,
    _iter_tuples,
    _json_value,
    _land,
    _load_keys,
    _save_keys,
    opened,
    present_columns,
    quote_identifier,
    quote_table,
)
from ingestion.core import lake
from ingestion.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.changes.sources import SqlSource
    from ingestion.contracts import Catalog
    from ingestion.core.config import Settings
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

ROWS_PER_FILE = 100_000


class PrerequisiteError(ConfigError):
    """A change-tracking prerequisite is missing; the message names it and how to turn it on."""

    def __init__(self, source: str, missing: str, fix: str) -> None:
        super().__init__(f"source {source!r}: {missing}; {fix}")
        self.source = source
        self.missing = missing


def bracket(name: str) -> str:
    """``name`` as a T-SQL identifier, after validating it."""
    return quote_identifier(name, brackets=True)


def bracket_table(table: str) -> str:
    return quote_table(table, brackets=True)


def _one(cursor: Any, sql: str, *params: Any) -> Any:
    cursor.execute(sql, *params)
    row = cursor.fetchone()
    return None if row is None else row[0]


def check_prerequisites(cursor: Any, source: SqlSource) -> None:
    """Raise :class:`PrerequisiteError` naming the first missing prerequisite."""
    table = source.table
    if not _one(cursor, "SELECT COUNT(*) FROM sys.change_tracking_databases WHERE database_id = DB_ID()"):
        raise PrerequisiteError(
            source.name,
            "change tracking is off for the database",
            "ALTER DATABASE <db> SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)",
        )
    if not _one(
        cursor, "SELECT COUNT(*) FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(?)", table
    ):
        raise PrerequisiteError(
            source.name,
            f"change tracking is off for table {table}",
            f"ALTER TABLE {bracket_table(table)} ENABLE CHANGE_TRACKING",
        )
    if _one(cursor, "SELECT snapshot_isolation_state FROM sys.databases WHERE database_id = DB_ID()") != 1:
        raise PrerequisiteError(
            source.name,
            "snapshot isolation is not allowed (ALLOW_SNAPSHOT_ISOLATION is OFF)",
            "ALTER DATABASE <db> SET ALLOW_SNAPSHOT_ISOLATION ON",
        )
    if _one(cursor, "SELECT HAS_PERMS_BY_NAME(?, 'OBJECT', 'VIEW CHANGE TRACKING')", table) != 1:
        raise PrerequisiteError(
            source.name,
            f"the login lacks the VIEW CHANGE TRACKING permission on {table}",
            f"GRANT VIEW CHANGE TRACKING ON {bracket_table(table)} TO <user>",
        )


def changes_sql(source: SqlSource, columns: Sequence[str] | None = None) -> str:
    """The CHANGETABLE query: net changes since ``?``, with the rows' current values.

    ``columns``: instead of the declared ones (those the table still has).
    """
    t = bracket_table(source.table)
    chosen = source.columns if columns is None else columns
    cols = ", ".join(f"t.{bracket(c)}" for c in chosen if c not in source.key) if chosen else "t.*"
    keys = ", ".join(f"ct.{bracket(k)}" for k in source.key)
    on = " AND ".join(f"t.{bracket(k)} = ct.{bracket(k)}" for k in source.key)
    return (
        f"SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, {keys}, {cols} "
        f"FROM CHANGETABLE(CHANGES {t}, ?) AS ct LEFT JOIN {t} AS t ON {on} "
        f"ORDER BY ct.SYS_CHANGE_VERSION, {keys}"
    )


def reload_sql(source: SqlSource, columns: Sequence[str] | None = None) -> str:
    chosen = source.columns if columns is None else columns
    cols = ", ".join(bracket(c) for c in chosen) if chosen else "*"
    keys = ", ".join(bracket(k) for k in source.key)
    return f"SELECT {cols} FROM {bracket_table(source.table)} ORDER BY {keys}"


def pull_tracked(
    storage: Storage,
    catalog: Catalog,
    source: SqlSource,
    *,
    settings: Settings,
    record: Callable[[LandedChanges], Any],
    connect: Callable[[Settings, SqlSource], Any] = _connect,
) -> PullResult:
    """Pull the source's net changes since its stored version (a full reload when too old).

    Args:
        storage: the lake.
        catalog: the datasets and sources.
        source: a ``change_tracking`` source.
        settings: headwater settings (the connection string's app setting).
        record: records each landed file in the ledger.
        connect: opens the DBAPI connection (pyodbc by default).

    Returns:
        What was pulled (``full``: a full reload).

    Raises:
        PrerequisiteError: a change-tracking prerequisite is missing (named).
        ChangeSourceError: the database failed (transient: nothing stored).
    """
    dataset = catalog.get(source.dataset)
    state = PullState.load(storage, source.name)
    last = int(state.mark["value"]) if state.mark else None
    result = PullResult(source.name)
    rows: list[dict[str, Any]] = []
    carried: SourceColumns | None = None
    with opened(settings, source, connect) as conn:
        cursor = conn.cursor()
        check_prerequisites(cursor, source)
        conn.commit()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL SNAPSHOT")
        current = int(_one(cursor, "SELECT CHANGE_TRACKING_CURRENT_VERSION()"))
        min_valid = _one(cursor, "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?))", source.table)
        known = _load_keys(storage, source.name)
        cols = present_columns(cursor, source, needed=source.key, brackets=True) if source.columns else None
        if last is None or min_valid is None or last < int(min_valid):
            result.full = True
            cursor.execute(reload_sql(source, cols))
            names = [d[0] for d in cursor.description]
            carried = from_description(cursor.description)
            table_keys: set[str] = set()
            for row in _iter_tuples(cursor):
                item = {n: _json_value(v) for n, v in zip(names, row, strict=True)}
                table_keys.add(json.dumps([item[k] for k in source.key], default=str))
                rows.append({**item, lake.CHANGE_OP: "U", lake.CHANGE_SEQ: current})
            for gone in sorted(known - table_keys):
                rows.append(
                    {
                        **dict(zip(source.key, json.loads(gone), strict=True)),
                        lake.CHANGE_OP: "D",
                        lake.CHANGE_SEQ: current,
                    }
                )
                result.vanished += 1
            known = table_keys
        else:
            cursor.execute(changes_sql(source, cols), last)
            names = [d[0] for d in cursor.description]
            carried = from_description(
                cursor.description, skip=("SYS_CHANGE_VERSION", "SYS_CHANGE_OPERATION")
            )
            for row in _iter_tuples(cursor):
                values = dict(zip(names, row, strict=True))
                op, seq = (
                    str(values.pop("SYS_CHANGE_OPERATION")).strip(),
                    int(values.pop("SYS_CHANGE_VERSION")),
                )
                item = {n: _json_value(v) for n, v in values.items()}
                key = json.dumps([item[k] for k in source.key], default=str)
                if op == "D":
                    item = {k: item[k] for k in source.key}  # only the key survives a delete
                    known.discard(key)
                else:
                    known.add(key)
                rows.append({**item, lake.CHANGE_OP: op, lake.CHANGE_SEQ: seq})
        conn.commit()
    kind = "reload" if result.full else "ct"
    span = f"{last if last is not None else 0}-{current}"
    for start in range(0, len(rows), ROWS_PER_FILE):
        _land(
            storage,
            dataset,
            source,
            rows[start : start + ROWS_PER_FILE],
            state,
            result,
            record,
            kind=kind,
            span=span,
            carried=carried,
        )
    result.rows, result.watermark = len(rows), current
    _save_keys(storage, source.name, known)
    state.mark = {"type": "int", "value": current}  # only now: every file is landed
    state.save(storage, source.name)
    return result
