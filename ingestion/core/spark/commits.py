"""Exactly-once Delta commits: the one module every writer and reader of our commits uses.

* :class:`CommitTag` is the ``userMetadata`` each of our commits carries, and the
  ``txnAppId``/``txnVersion`` pair Delta uses to skip a write it has already committed.
* :func:`idempotent_write` stamps one write: writer options for append/overwrite, session
  settings only for MERGE (which has no writer), always restored to their previous values.
* :class:`CommitIndex` is our own record of which table version each batch, range or publish
  made: ``system/commits/<table>/<version>.json``. Lineage, trace and gold inputs read it,
  never commitInfo: commit JSONs are deleted after ``logRetentionDuration`` and checkpoints
  keep no commitInfo.
* :func:`retry_conflicts` retries a write that lost a race with another writer of the same
  table (a retryable Delta conflict, recognised by its exception class on Delta 3.2 and 4.x),
  with exponential backoff through tenacity; any other error propagates at once.
* :func:`recent_commits` is the one reader of the Delta log. It reads ``history(n)`` with n the
  number of commits since the version we recorded (plus a little slack), so a run costs the same
  on a young and an aged table. It finds a commit made after a crash between the Delta commit
  and our bookkeeping, and commits our index has not recorded yet (lakes written before it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ingestion.core.config import RetrySettings
from ingestion.core.spark.delta import table_version

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrameWriter, SparkSession

    from ingestion.core.storage import Storage

TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
COMMITS_DIR = "system/commits"
SLACK = 3  # extra history rows per look: commits racing our table_version read

LAYERS = ("bronze", "silver", "quarantine", "replay", "gold", "tombstones")
_TAG_RE = re.compile(
    r"^headwater-(?P<layer>bronze|silver|quarantine|replay|gold|tombstones)-(?P<name>[^:;]+)"
    r":(?P<txn>\d+)(?:;inputs=(?P<inputs>[^;]*))?$"
)

Stamp = Callable[["DataFrameWriter"], "DataFrameWriter"]
T = TypeVar("T")
log = logging.getLogger(__name__)

# Delta's optimistic-concurrency conflicts that a fresh attempt resolves: the other writer's
# commit is in the log now, and a retry plans against it (for our idempotent writes, a retry
# after a same-token ConcurrentTransaction is skipped as already committed). Delta 3.2 and 4.x
# raise them as io.delta.exceptions.<Name> (subclasses of org.apache.spark.sql.delta.<Name>).
RETRYABLE_CONFLICTS = frozenset(
    {
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
        "ConcurrentWriteException",
        "MetadataChangedException",  # e.g. two first writes racing to create the table
        "ProtocolChangedException",
    }
)
# Delta 4's error classes carry the same conflicts as ``[DELTA_CONCURRENT_APPEND...]``.
_CONFLICT_ERROR_CLASS = re.compile(
    r"^\[DELTA_(CONCURRENT_(APPEND|DELETE_READ|DELETE_DELETE|TRANSACTION|WRITE)|METADATA_CHANGED|PROTOCOL_CHANGED)\b"
)
CONFLICT_RETRY = RetrySettings(attempts=5, wait_seconds=0.5, max_wait_seconds=8.0)


# --- tags ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommitTag:
    """What one of our commits is: ``headwater-<layer>-<name>:<txn>[;inputs=<ds>@<v>,...]``.

    ``txn`` is the bronze batch, the bronze end version of a curate range, the quarantine
    version of a replay, or for gold its publish sequence (``transforms.gold.publish.publish_txn``:
    one more with every change of the pins; lakes published before it hold the sum of the input
    versions). ``inputs`` (gold only) pins each input table to its version.
    """

    layer: str
    name: str
    txn: int
    inputs: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"commit tag layer {self.layer!r}: must be one of {', '.join(LAYERS)}")
        if self.txn < 0:
            raise ValueError(f"commit tag txn {self.txn}: must be >= 0")
        if (self.inputs is not None) != (self.layer == "gold"):
            raise ValueError("commit tag inputs: given exactly for gold commits")

    @classmethod
    def gold(cls, name: str, inputs: Mapping[str, int], *, txn: int | None = None) -> CommitTag:
        """The tag of a publish built from ``inputs`` (input table -> version).

        Args:
            name: the gold table.
            inputs: the pins.
            txn: the publish sequence number; without it the sum of the versions (the scheme
                of lakes published before the sequence).

        Returns:
            The tag.
        """
        pins = tuple(sorted((ds, int(v)) for ds, v in inputs.items()))
        return cls("gold", name, sum(v for _, v in pins) if txn is None else txn, pins)

    @property
    def app_id(self) -> str:
        """Delta's ``txnAppId``: one per layer and table."""
        return f"headwater-{self.layer}-{self.name}"

    @property
    def input_versions(self) -> dict[str, int]:
        """Gold's silver pins as a dict (empty for other layers)."""
        return dict(self.inputs or ())

    def __str__(self) -> str:
        text = f"{self.app_id}:{self.txn}"
        if self.inputs is not None:
            text += ";inputs=" + ",".join(f"{ds}@{v}" for ds, v in self.inputs)
        return text

    @classmethod
    def parse(cls, text: str | None) -> CommitTag | None:
        """The tag in a commit's ``userMetadata``, or None for a commit that is not ours."""
        m = _TAG_RE.match(text or "")
        if not m:
            return None
        layer, raw = m.group("layer"), m.group("inputs")
        if (raw is not None) != (layer == "gold"):
            return None
        inputs = None
        if raw is not None:
            pins = []
            for pin in filter(None, raw.split(",")):
                ds, _, v = pin.partition("@")
                if not v.isdigit():
                    return None
                pins.append((ds, int(v)))
            inputs = tuple(sorted(pins))
        return cls(layer, m.group("name"), int(m.group("txn")), inputs)

    def options(self) -> dict[str, str]:
        """Delta's writer options for this commit."""
        return {"txnAppId": self.app_id, "txnVersion": str(self.txn), "userMetadata": str(self)}


# --- conflicts ------------------------------------------------------------------------------------
def _java_classes(exc: BaseException) -> Iterator[str]:
    """The simple class names of the JVM exception behind ``exc`` and of its causes."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    for _ in range(20):
        if java is None:
            return
        try:
            yield str(java.getClass().getName()).rsplit(".", 1)[-1]
            java = java.getCause()
        except Exception:  # noqa: BLE001 - the JVM may be gone: nothing more to learn
            return


def conflict_name(exc: BaseException) -> str | None:
    """The retryable Delta conflict ``exc`` is, or None when it is any other error.

    Recognised by class name: of the JVM exception behind a py4j/pyspark error (and its causes),
    of the Python exception itself (delta-spark's ``delta.exceptions`` classes), or Delta 4's
    error class at the start of the message. Never by free text inside the message.

    Args:
        exc: the error a write raised.

    Returns:
        The conflict's class name (``ConcurrentAppendException``...), or None.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for name in (*(c.__name__ for c in type(current).__mro__), *_java_classes(current)):
            if name in RETRYABLE_CONFLICTS:
                return name
        m = _CONFLICT_ERROR_CLASS.match(str(current).lstrip())
        if m:
            return m.group(0)[1:]
        current = current.__cause__ or current.__context__
    return None


def retry_conflicts(
    write: Callable[[], T],
    *,
    what: str,
    retry: RetrySettings | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``write``; rerun it with backoff while it loses to a concurrent Delta writer.

    Args:
        write: one whole attempt (it re-plans against the table each time it runs).
        what: the table or write, for the log.
        retry: attempts and backoff (default :data:`CONFLICT_RETRY`).
        sleep: tenacity's sleep (tests pass a recorder).

    Returns:
        What ``write`` returned.

    Raises:
        Exception: the last conflict after the attempts, or at once any error that is not a
            retryable conflict.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

    bound = retry or CONFLICT_RETRY

    def _log(state: Any) -> None:
        err = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s: Delta conflict %s (attempt %d of %d); retrying",
            what,
            conflict_name(err) if err else "?",
            state.attempt_number,
            bound.attempts,
        )

    extra: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    retrying = Retrying(
        stop=stop_after_attempt(bound.attempts),
        # Jitter: parallel runs that collided once should not collide again in lockstep.
        wait=wait_exponential(multiplier=bound.wait_seconds, max=bound.max_wait_seconds)
        + wait_random(0, bound.wait_seconds),
        retry=retry_if_exception(lambda e: conflict_name(e) is not None),
        before_sleep=_log,
        reraise=True,
        **extra,
    )
    return retrying(write)


# --- settings --------------------------------------------------------------------------------------
# Session settings are shared by every thread of the process. A MERGE's txn settings set by one
# thread must not stamp another thread's MERGE (pipeline runs of two datasets in one worker), so
# blocks that set them run one at a time per process.
_SESSION_CONF_LOCK = threading.RLock()


@contextmanager
def session_conf(spark: SparkSession, conf: Mapping[str, str | None]) -> Iterator[None]:
    """Set Spark session settings for one block, then put back exactly what was there.

    Blocks that set anything hold a process-wide lock: the settings are the session's, shared by
    every thread, and a second thread's block would otherwise see (and commit with) the first's.

    Args:
        spark: the session.
        conf: setting -> value; None unsets it for the block.

    Yields:
        Nothing; on exit (an exception included) every setting has its previous value again, and
        one that was unset is unset again.
    """
    if not conf:
        yield
        return
    with _SESSION_CONF_LOCK:
        previous = {k: spark.conf.get(k, None) for k in conf}
        try:
            _put_conf(spark, conf)
            yield
        finally:
            _put_conf(spark, previous)


def _put_conf(spark: SparkSession, conf: Mapping[str, str | None]) -> None:
    """Set each key; a None value unsets it."""
    for k, v in conf.items():
        if v is None:
            spark.conf.unset(k)
        else:
            spark.conf.set(k, v)


@contextmanager
def idempotent_write(
    spark: SparkSession, tag: CommitTag, *, merge: bool = False, conf: Mapping[str, str] | None = None
) -> Iterator[Stamp]:
    """Make the write(s) in the block commit at most once per ``(tag.app_id, tag.txn)``.

    Delta skips a write whose (txnAppId, txnVersion) it has already committed, which makes a
    rerun after a crash a no-op. For append/overwrite the token and the tag are writer options
    (scoped to that write alone); a MERGE has no writer, so for it they are session settings,
    restored when the block ends.

    Args:
        spark: the session.
        tag: the commit's tag.
        merge: the block runs a MERGE (session settings) instead of a DataFrameWriter.
        conf: further session settings for the block (schema auto-merge...), restored likewise.

    Yields:
        A function that adds the writer options to a ``DataFrameWriter`` (for MERGE it returns
        the writer unchanged).
    """
    settings: dict[str, str | None] = dict(conf or {})
    if merge:
        settings.update(
            {TXN_APP_ID_CONF: tag.app_id, TXN_VERSION_CONF: str(tag.txn), USER_METADATA_CONF: str(tag)}
        )

    def stamp(writer: DataFrameWriter) -> DataFrameWriter:
        return writer if merge else writer.options(**tag.options())

    with session_conf(spark, settings):
        yield stamp


# --- the log ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Commit:
    """One commit of a Delta table as we need it: version, operation, tag and metrics."""

    version: int
    operation: str | None
    user_metadata: str | None
    metrics: dict[str, int]
    timestamp: datetime | None

    @property
    def tag(self) -> CommitTag | None:
        return CommitTag.parse(self.user_metadata)

    def metric(self, *names: str) -> int:
        """The sum of the named operation metrics (0 for those missing)."""
        return sum(self.metrics.get(n, 0) for n in names)

    def to_json(self) -> bytes:
        ts = None if self.timestamp is None else self.timestamp.timestamp()
        return json.dumps(
            {
                "version": self.version,
                "operation": self.operation,
                "tag": self.user_metadata,
                "metrics": self.metrics,
                "timestamp": ts,
                "recorded_at": time.time(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Commit:
        data = json.loads(raw)
        ts = data.get("timestamp")
        return cls(
            int(data["version"]),
            data.get("operation"),
            data.get("tag"),
            {k: int(v) for k, v in (data.get("metrics") or {}).items()},
            None if ts is None else datetime.fromtimestamp(ts),
        )


def commit_metrics(raw: Mapping[str, Any] | None) -> dict[str, int]:
    """Delta's ``operationMetrics`` (a map of strings) as integers; non-numbers are left out."""
    out = {}
    for k, v in dict(raw or {}).items():
        try:
            out[k] = int(v)
        except (TypeError, ValueError):
            continue
    return out


def _history(spark: SparkSession, uri: str, n: int) -> list[Any]:
    """The ``n`` newest rows of the table's history: the only place the Delta log is read."""
    from delta.tables import DeltaTable

    return (
        DeltaTable.forPath(spark, uri)
        .history(n)
        .select("version", "timestamp", "operation", "userMetadata", "operationMetrics")
        .collect()
    )


def recent_commits(
    spark: SparkSession, uri: str, *, after: int | None, upto: int | None = None
) -> list[Commit]:
    """The table's commits with ``after < version (<= upto)``, oldest first, from ``history(n)``.

    Args:
        spark: the session.
        uri: the Delta table.
        after: the newest version we already know about (None: we know none, read it all; only
            for tables our bookkeeping has never seen).
        upto: leave out later versions.

    Returns:
        The commits still in the log (older ones may have been cleaned up by Delta).
    """
    latest = table_version(spark, uri)
    start = -1 if after is None else after
    if latest is None or latest <= start:
        return []
    rows = _history(spark, uri, latest - start + SLACK)
    out = [
        Commit(
            int(r["version"]),
            r["operation"],
            r["userMetadata"],
            commit_metrics(r["operationMetrics"]),
            r["timestamp"],
        )
        for r in rows
        if int(r["version"]) > start and (upto is None or int(r["version"]) <= upto)
    ]
    return sorted(out, key=lambda c: c.version)


# --- our index -------------------------------------------------------------------------------------
class CommitIndex:
    """``system/commits/<table>/``: one JSON per table version one of our commits made.

    ``HEAD.json`` holds the newest recorded version and how far the log was scanned, so a look
    in the log starts there (it is a hint: the entries are the record).
    """

    def __init__(self, storage: Storage, table: str) -> None:
        from ingestion.core.system import ensure_format

        ensure_format(storage)
        self.storage = storage
        self.table = table
        self.dir = f"{COMMITS_DIR}/{table}"

    def _path(self, version: int) -> str:
        return f"{self.dir}/{version:020d}.json"

    def _head(self) -> dict[str, int]:
        path = f"{self.dir}/HEAD.json"
        if not self.storage.exists(path):
            return {"last": -1, "scanned": -1}
        data = json.loads(self.storage.read_bytes(path))
        return {"last": int(data.get("last", -1)), "scanned": int(data.get("scanned", -1))}

    def _set_head(self, *, last: int = -1, scanned: int = -1) -> None:
        head = self._head()
        new = {"last": max(head["last"], last), "scanned": max(head["scanned"], scanned)}
        if new != head:
            self.storage.write_bytes(f"{self.dir}/HEAD.json", json.dumps(new, sort_keys=True).encode())

    def known(self) -> int:
        """The newest version we know about (recorded or scanned); -1 for none."""
        head = self._head()
        return max(head["last"], head["scanned"])

    def record(self, commit: Commit) -> None:
        """Record one of our commits (idempotent: the same version always holds the same commit)."""
        if not self.storage.exists(self._path(commit.version)):
            self.storage.write_bytes(self._path(commit.version), commit.to_json())
        self._set_head(last=commit.version)

    def get(self, version: int) -> Commit | None:
        path = self._path(version)
        return Commit.from_json(self.storage.read_bytes(path)) if self.storage.exists(path) else None

    def last(self) -> Commit | None:
        """Our newest recorded commit of the table."""
        head = self._head()
        return self.get(head["last"]) if head["last"] >= 0 else None

    def entries(self) -> list[Commit]:
        """Every recorded commit, oldest first."""
        out = []
        for obj in self.storage.list(self.dir):
            name = obj.path.rsplit("/", 1)[1]
            if name.endswith(".json") and name[:-5].isdigit():
                out.append(Commit.from_json(self.storage.read_bytes(obj.path)))
        return sorted(out, key=lambda c: c.version)

    def latest(self, spark: SparkSession) -> int | None:
        """The newest version our bookkeeping knows, without loading a snapshot; Delta's when none.

        Every commit of ours is recorded here (a crash before the record is recovered by the
        rerun's :func:`find_commit`), and a look in the log (:meth:`sync`) moves it past commits
        of others; so a run with nothing to do costs the same however old the table. Commits
        not yet recorded are seen once they are: delayed, never lost.

        Args:
            spark: the session (used only when the index knows no version).

        Returns:
            The version, or None when there is no table.
        """
        known = self.known()
        return known if known >= 0 else table_version(spark, self.storage.uri(self.table))

    def sync(self, spark: SparkSession, uri: str) -> CommitIndex:
        """Record our commits the index does not have yet, from the log since what it knows."""
        known = self.known()
        found = recent_commits(spark, uri, after=known if known >= 0 else None)
        for c in found:
            if c.tag is not None:
                self.record(c)
        if found:
            self._set_head(scanned=found[-1].version)
        return self


def find_commit(
    spark: SparkSession, storage: Storage, table: str, tag: CommitTag, *, deep: bool = False
) -> Commit | None:
    """The newest commit of ``table`` carrying ``tag`` (recorded in the index when found), or None.

    Looks in the log only since the newest version the index knows (bounded), then at the
    index's newest entry; after a crash between the Delta commit and our bookkeeping, this is
    how the rerun learns which version it made.

    Args:
        spark: the session.
        storage: the lake.
        table: the table's lake path (``silver/orders``).
        tag: the tag to find.
        deep: also search older index entries (a write Delta skipped as already committed,
            when other commits of ours came after it).
    """
    index = CommitIndex(storage, table)
    text = str(tag)
    newer = [
        c for c in recent_commits(spark, storage.uri(table), after=index.known()) if c.user_metadata == text
    ]
    if newer:
        index.record(newer[-1])
        return newer[-1]
    last = index.last()
    if last is not None and last.user_metadata == text:
        return last
    if deep:
        older = [c for c in index.entries() if c.user_metadata == text]
        return older[-1] if older else None
    return None


def write_once(
    spark: SparkSession,
    storage: Storage,
    table: str,
    tag: CommitTag,
    write: Callable[[Stamp], object],
    *,
    merge: bool = False,
    conf: Mapping[str, str] | None = None,
    retry: RetrySettings | None = None,
) -> Commit | None:
    """Run ``write`` under :func:`idempotent_write`; return (and record) the commit carrying ``tag``.

    A write that loses a race with another writer of the table (a retryable Delta conflict) is
    run again with backoff (:func:`retry_conflicts`); a rerun of a write the other writer already
    committed under the same token is skipped by Delta. Any other error propagates at once.

    Args:
        spark: the session.
        storage: the lake.
        table: the table's lake path.
        tag: the commit's tag.
        write: does the write with the stamp it is given; returns False when it decided there
            was nothing to commit.
        merge: ``write`` runs a MERGE (see :func:`idempotent_write`).
        conf: further session settings for the write.
        retry: attempts and backoff on conflicts (default :data:`CONFLICT_RETRY`).

    Returns:
        The commit carrying ``tag``: the one just made or, when Delta skipped the write as a
        rerun, the one the first attempt made. None when ``write`` returned False.
    """

    def attempt() -> object:
        with idempotent_write(spark, tag, merge=merge, conf=conf) as stamp:
            return write(stamp)

    wrote = retry_conflicts(attempt, what=f"{table} ({tag})", retry=retry)
    if wrote is False:
        return None
    return find_commit(spark, storage, table, tag, deep=True)


__all__ = [
    "CONFLICT_RETRY",
    "RETRYABLE_CONFLICTS",
    "Commit",
    "CommitIndex",
    "CommitTag",
    "commit_metrics",
    "conflict_name",
    "find_commit",
    "idempotent_write",
    "recent_commits",
    "retry_conflicts",
    "session_conf",
    "write_once",
]
