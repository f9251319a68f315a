"""The pyodbc change puller, watermark mode: any ODBC database with an updated-at or row version.

One pull reads ``SELECT <columns> FROM <table> WHERE <watermark> >= ? ORDER BY <watermark>,
<key>`` from ``lookback`` behind the stored watermark (a transaction in flight at the last pull
commits later with an older watermark), drops the rows it landed before (by key and watermark,
remembered for the lookback window), and lands the rest as change files
(``landing/<dataset prefix>/<source>/pull-<n>-<hash>.jsonl``) through the same path as the SQL
trigger. Rows whose ``soft_delete_column`` is true are deletes; every other row is an upsert
(``U``); the flag itself is carried by the operation, not as a column. The watermark is stored only after the files are landed: a crash in between pulls the
same rows again, which land under the same names (kept once) or are dropped as seen.

Values: times as ISO text with microseconds (SQL Server's ``datetime2`` holds 100 ns; pyodbc
and Spark hold µs: the rule is truncation, and the key breaks ties), decimals as their text,
bytes (a ``rowversion``) as the big-endian integer.

Identifiers come from the source declaration, validated (``check_source``) and quoted here;
the watermark is a bound parameter. The connection string is read from the app setting the
source names and never appears in a log, an error or the run ledger.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ingestion.changes.columns import SourceColumns, from_description
from ingestion.changes.landing import LandedChanges, encode_rows, land_changes
from ingestion.changes.sources import IDENTIFIER
from ingestion.core import lake
from ingestion.core.errors import ConfigError, HeadwaterError
from ingestion.core.reasons import RunCode

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.changes.sources import SqlSource
    from ingestion.contracts import Catalog
    from ingestion.core.config import Settings
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

ROWS_PER_FILE = 100_000
FETCH = 5_000


class ChangeSourceError(HeadwaterError):
    """The source database refused or failed a pull (the message never holds the connection string).

    Attributes:
        source: the source's name.
        reason: what failed.
    """

    code = RunCode.STORAGE
    transient = True

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"pull {source!r}: {reason}")
        self.source = source
        self.reason = reason


class SourceColumnsError(ChangeSourceError):
    """The source table lost a column the pull cannot work without (its key or watermark).

    Terminal: pulling again fails the same way until the table or the declaration is fixed.
    """

    code = RunCode.CONFIG
    transient = False


def quote_identifier(name: str, *, brackets: bool = False) -> str:
    """``name`` as a quoted SQL identifier, after validating it.

    Args:
        name: the identifier.
        brackets: T-SQL's ``[name]`` instead of ANSI double quotes.

    Raises:
        ValueError: ``name`` is not an identifier (a hostile name never reaches SQL text).
    """
    if not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not an identifier")
    return f"[{name}]" if brackets else f'"{name}"'


def quote_table(table: str, *, brackets: bool = False) -> str:
    """``table`` or ``schema.table``, each part quoted (see :func:`quote_identifier`)."""
    return ".".join(quote_identifier(p, brackets=brackets) for p in table.split("."))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "big")
    return value


def _encode_mark(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"type": "bytes", "value": bytes(value).hex()}
    if isinstance(value, (int, float, str)):
        return {"type": type(value).__name__, "value": value}
    raise ValueError(f"a watermark of type {type(value).__name__} cannot be stored")


def _decode_mark(mark: dict[str, Any]) -> Any:
    kind, value = mark["type"], mark["value"]
    decoders: dict[str, Callable[[Any], Any]] = {
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "decimal": Decimal,
        "bytes": bytes.fromhex,
        "int": int,
        "float": float,
        "str": str,
    }
    return decoders[kind](value)


def _behind(mark: Any, lookback: float) -> Any:
    """``mark`` moved ``lookback`` back (seconds for times, units for numbers)."""
    if not lookback:
        return mark
    if isinstance(mark, datetime):
        return mark - timedelta(seconds=lookback)
    if isinstance(mark, date):
        return mark - timedelta(days=int(lookback // 86400) + (1 if lookback % 86400 else 0))
    if isinstance(mark, bool):
        raise ValueError("a boolean watermark does not order")
    if isinstance(mark, int):
        return mark - int(lookback)
    if isinstance(mark, Decimal):
        return mark - Decimal(str(lookback))
    if isinstance(mark, float):
        return mark - lookback
    if isinstance(mark, (bytes, bytearray)):
        n = max(0, int.from_bytes(mark, "big") - int(lookback))
        return n.to_bytes(len(mark), "big")
    raise ValueError(f"lookback needs a time or number watermark, not {type(mark).__name__}")


@dataclass
class PullState:
    """``system/changes/<source>/state.json``: the stored watermark and what was landed near it."""

    mark: dict[str, Any] | None = None
    seen: list[list[Any]] = field(default_factory=list)  # [key..., json watermark] within lookback
    files: int = 0
    since_snapshot: int = -1  # pulls since the last key snapshot (-1: none yet)

    @staticmethod
    def path(source: str) -> str:
        return f"system/changes/{source}/state.json"

    @classmethod
    def load(cls, storage: Storage, source: str) -> PullState:
        if not storage.exists(cls.path(source)):
            return cls()
        data = json.loads(storage.read_bytes(cls.path(source)))
        return cls(
            mark=data.get("mark"),
            seen=list(data.get("seen", [])),
            files=int(data.get("files", 0)),
            since_snapshot=int(data.get("since_snapshot", -1)),
        )

    def save(self, storage: Storage, source: str) -> None:
        body = {
            "mark": self.mark,
            "seen": self.seen,
            "files": self.files,
            "since_snapshot": self.since_snapshot,
        }
        storage.write_bytes(self.path(source), json.dumps(body, sort_keys=True).encode())


@dataclass
class PullResult:
    """One pull: rows landed, rows dropped as already landed, the files and the new watermark."""

    source: str
    rows: int = 0
    again: int = 0
    files: list[LandedChanges] = field(default_factory=list)
    watermark: Any = None
    full: bool = False  # no stored watermark: the whole table was read
    snapshot: bool = False  # the keys were compared with the table's
    vanished: int = 0  # keys gone from the table, landed as deletes

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "already_landed": self.again,
            "files": [f.path for f in self.files],
            "watermark": _json_value(self.watermark),
            "full": self.full,
            "snapshot": self.snapshot,
            "vanished": self.vanished,
        }


def _keys_path(source: str) -> str:
    return f"system/changes/{source}/keys.json.gz"


def _load_keys(storage: Storage, source: str) -> set[str]:
    import gzip

    path = _keys_path(source)
    if not storage.exists(path):
        return set()
    return set(json.loads(gzip.decompress(storage.read_bytes(path))))


def _save_keys(storage: Storage, source: str, keys: set[str]) -> None:
    import gzip

    storage.write_bytes(_keys_path(source), gzip.compress(json.dumps(sorted(keys)).encode()))


def keys_sql(source: SqlSource) -> str:
    """The key snapshot's SELECT."""
    return f"SELECT {', '.join(quote_identifier(k) for k in source.key)} FROM {quote_table(source.table)}"


def _connect(settings: Settings, source: SqlSource) -> Any:
    import pyodbc

    secret = settings.secret(source.connection_setting)
    if secret is None:
        raise ConfigError(
            f"source {source.name!r}: app setting {source.connection_setting!r} holding its connection "
            "string is not set"
        )
    try:
        return pyodbc.connect(secret.get_secret_value(), autocommit=False, readonly=True)
    except pyodbc.Error as err:
        # Driver messages may echo the DSN: keep only the SQLSTATE class and the driver's words,
        # with every piece of the connection string removed.
        raise ChangeSourceError(
            source.name, f"could not connect: {_scrub(err, secret.get_secret_value())}"
        ) from None


def _scrub(err: BaseException, secret: str) -> str:
    text = " ".join(str(a) for a in getattr(err, "args", ()) or (str(err),))
    for part in {secret, *[p.split("=", 1)[-1] for p in secret.split(";") if "=" in p]}:
        if part and len(part) >= 3:
            text = text.replace(part, "***")
    return text[:500]


@contextmanager
def opened(
    settings: Settings, source: SqlSource, connect: Callable[[Settings, SqlSource], Any]
) -> Iterator[Any]:
    """The source's connection, closed afterwards; a driver error becomes :class:`ChangeSourceError`.

    Transient: nothing was stored, so the next pull reads the same rows.
    """
    conn = connect(settings, source)
    try:
        yield conn
    except HeadwaterError:
        raise
    except Exception as err:
        import pyodbc

        if isinstance(err, pyodbc.Error):
            raise ChangeSourceError(
                source.name, f"the pull failed: {type(err).__name__} {err.args[:1]}"
            ) from None
        raise
    finally:
        conn.close()


def probe_sql(source: SqlSource, *, brackets: bool = False) -> str:
    """A SELECT that returns no row, only the table's columns (``cursor.description``)."""
    return f"SELECT * FROM {quote_table(source.table, brackets=brackets)} WHERE 1 = 0"


def present_columns(
    cursor: Any, source: SqlSource, *, needed: Sequence[str], brackets: bool = False
) -> tuple[str, ...]:
    """The declared ``columns`` the table still has (all of them while none was dropped).

    A declared column the table dropped is left out of the pull instead of failing it, so the
    batch lands without it and ingest quarantines it with the ``schema`` reason.

    Raises:
        SourceColumnsError: the table lost one of ``needed`` (key, watermark).
    """
    cursor.execute(probe_sql(source, brackets=brackets))
    have = {d[0] for d in cursor.description}
    lost = [c for c in needed if c not in have]
    if lost:
        raise SourceColumnsError(
            source.name, f"table {source.table} has no column {', '.join(lost)} any more (key or watermark)"
        )
    return tuple(c for c in source.columns if c in have)


def select_sql(source: SqlSource, *, bounded: bool, columns: Sequence[str] | None = None) -> str:
    """The pull's SELECT; ``bounded``: from a watermark (``?``) on; ``columns``: instead of the declared."""
    assert source.watermark
    chosen = source.columns if columns is None else columns
    cols = ", ".join(quote_identifier(c) for c in chosen) if chosen else "*"
    wm = quote_identifier(source.watermark)
    order = ", ".join([wm, *(quote_identifier(k) for k in source.key)])
    where = f" WHERE {wm} >= ?" if bounded else ""
    return f"SELECT {cols} FROM {quote_table(source.table)}{where} ORDER BY {order}"


def _iter_tuples(cursor: Any) -> Iterator[Sequence[Any]]:
    while True:
        chunk = cursor.fetchmany(FETCH)
        if not chunk:
            return
        yield from chunk


def _rows(cursor: Any) -> Iterator[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    for row in _iter_tuples(cursor):
        yield dict(zip(names, row, strict=True))


def pull(
    storage: Storage,
    catalog: Catalog,
    source: SqlSource,
    *,
    settings: Settings,
    record: Callable[[LandedChanges], Any],
    connect: Callable[[Settings, SqlSource], Any] = _connect,
    clock: Callable[[], float] = time.time,
    snapshot: bool | None = None,
) -> PullResult:
    """Pull the source's changes since its watermark and land them as change files.

    Args:
        storage: the lake.
        catalog: the datasets and sources.
        source: the source (``change_tracking`` goes to :func:`ingestion.changes.tracking.pull_tracked`).
        settings: headwater settings (the connection string comes from the app setting the
            source names).
        record: records each landed file in the ledger (``EventHandler.file_landed``).
        connect: opens the DBAPI connection (pyodbc by default).
        clock: seconds since the epoch.
        snapshot: with ``snapshot_deletes``, compare the keys now (True), not (False), or when
            due (None: the first pull, then every ``snapshot_every``).

    Returns:
        What was pulled.

    Raises:
        ConfigError: the source is not in watermark mode, or its setting is missing.
        ChangeSourceError: the database failed (transient: the next pull reads the same rows).
    """
    if source.mode == "change_tracking":
        from ingestion.changes.tracking import pull_tracked

        return pull_tracked(storage, catalog, source, settings=settings, record=record, connect=connect)
    if not source.watermark:
        raise ConfigError(f"source {source.name!r}: mode watermark needs a watermark column")
    dataset = catalog.get(source.dataset)
    state = PullState.load(storage, source.name)
    mark = _decode_mark(state.mark) if state.mark else None
    seen = {json.dumps(s) for s in state.seen}
    result = PullResult(source.name, watermark=mark, full=mark is None)
    batch: list[dict[str, Any]] = []
    batch_keys: list[tuple[str, bool]] = []  # (key, deleted) of every change pulled
    keys_after: set[str] | None = None
    with opened(settings, source, connect) as conn:
        cursor = conn.cursor()
        needed = [
            *source.key,
            source.watermark,
            *([source.soft_delete_column] if source.soft_delete_column else []),
        ]
        cols = present_columns(cursor, source, needed=needed) if source.columns else None
        if mark is None:
            cursor.execute(select_sql(source, bounded=False, columns=cols))
        else:
            cursor.execute(select_sql(source, bounded=True, columns=cols), _behind(mark, source.lookback))
        skip = [source.soft_delete_column] if source.soft_delete_column else []
        carried = from_description(cursor.description, skip=skip)
        for row in _rows(cursor):
            wm = row[source.watermark]
            ident = json.dumps([*(_json_value(row[k]) for k in source.key), _json_value(wm)], default=str)
            if ident in seen:
                result.again += 1
                continue
            seen.add(ident)
            # The soft-delete flag becomes the operation (and is not a column of the change).
            out = {k: _json_value(v) for k, v in row.items() if k != source.soft_delete_column}
            deleted = bool(row.get(source.soft_delete_column)) if source.soft_delete_column else False
            out[lake.CHANGE_OP] = "D" if deleted else "U"
            batch.append(out)
            batch_keys.append((json.dumps(json.loads(ident)[:-1]), deleted))
            result.rows += 1
            result.watermark = wm if result.watermark is None or wm > result.watermark else result.watermark
            if len(batch) >= ROWS_PER_FILE:
                _land(storage, dataset, source, batch, state, result, record, carried=carried)
                batch = []
        if source.snapshot_deletes:
            live = _load_keys(storage, source.name)
            for key, gone_now in batch_keys:
                if gone_now:
                    live.discard(key)
                else:
                    live.add(key)
            due = state.since_snapshot < 0 or state.since_snapshot + 1 >= source.snapshot_every
            if due if snapshot is None else snapshot:
                cursor.execute(keys_sql(source))
                table_keys = {
                    json.dumps([_json_value(v) for v in r], default=str) for r in _iter_tuples(cursor)
                }
                for gone in sorted(live - table_keys):
                    delete = dict(zip(source.key, json.loads(gone), strict=True))
                    # No watermark of its own: the newest seen orders it after the key's last change.
                    delete[source.watermark] = _json_value(result.watermark)
                    delete[lake.CHANGE_OP] = "D"
                    batch.append(delete)
                    result.vanished += 1
                live = table_keys
                result.snapshot = True
            keys_after = live
        conn.rollback()  # read only: end the transaction
    if batch:
        _land(storage, dataset, source, batch, state, result, record, carried=carried)
    if result.watermark is not None:
        # Remember what was landed within the lookback window: the next pull reads it again.
        low = _behind(result.watermark, source.lookback)
        state.seen = [s for s in (json.loads(x) for x in seen) if _still_recent(s, low)]
        state.mark = _encode_mark(result.watermark)
    if keys_after is not None:
        _save_keys(storage, source.name, keys_after)
        state.since_snapshot = 0 if result.snapshot else state.since_snapshot + 1
    state.save(storage, source.name)  # only now: every file is landed
    log.info(
        "pull %s: %d changes in %d file(s), %d already landed",
        source.name,
        result.rows,
        len(result.files),
        result.again,
    )
    return result


def _still_recent(ident: Sequence[Any], low: Any) -> bool:
    wm = ident[-1]
    try:
        if isinstance(low, datetime):
            return datetime.fromisoformat(str(wm)) >= low
        if isinstance(low, (bytes, bytearray)):
            return int(wm) >= int.from_bytes(low, "big")
        return type(low)(wm) >= low
    except (TypeError, ValueError):
        return True


def _land(
    storage: Storage,
    dataset: Any,
    source: SqlSource,
    rows: list[dict[str, Any]],
    state: PullState,
    result: PullResult,
    record: Callable[[LandedChanges], Any],
    *,
    kind: str = "pull",
    span: str = "",
    carried: SourceColumns | None = None,
) -> None:
    """Land ``rows`` as the next change file (``<kind>-<n>[-<span>]-<hash>.s<digest>.jsonl``), record it.

    ``carried``: the columns the source sent (see :mod:`ingestion.changes.columns`).
    """
    data, _ = encode_rows(rows)
    name = (
        f"{kind}-{state.files:012d}{'-' + span if span else ''}-{hashlib.sha256(data).hexdigest()[:12]}.jsonl"
    )
    landed = land_changes(storage, dataset, source, rows, name=name, columns=carried)
    state.files += 1
    result.files.append(landed)
    try:
        record(landed)
    except Exception:  # noqa: BLE001 - the file is landed: the reconcile sweep records it
        log.exception("pull %s: landed %s; recording it failed", source.name, landed.path)
