"""Reading the lake without Spark: its Delta tables through delta-rs, its system area as files.

The Function App (and, later, the dashboard) has no Spark, so this module is its one reader of
the lake: Delta tables (bronze, silver, gold, quarantine, the run ledger) through ``deltalake``
(delta-rs) and ``pyarrow``, both imported only when a table is read (the ``lakeview`` extra);
the event ledger, queue, batch manifests, parked files and the local asset registry through
:class:`~ingestion.core.storage.Storage`. Nothing here imports pyspark, and nothing here
writes to the lake.

* A table's version is the latest commit delta-rs sees; its rows are the sum of the ``add``
  actions' ``numRecords`` statistics, less the rows deletion vectors remove, or, when a file has
  no statistics, a ``count(*)`` scan.
* Scans go through delta-rs's own query engine (DataFusion), which applies deletion vectors; a
  plain pyarrow dataset would count deleted rows (delta-rs refuses it on such tables). pyarrow
  does the counting.
* :meth:`LakeView.summary` is what ``headwater status`` shows, per dataset: ledger files by
  status, pending files against the batching thresholds, parked files, the latest batch, table
  versions and rows, quarantine rows by reason, the latest run of each job and the latest asset
  versions. A section that cannot be read is reported in ``errors``; the others still are.

How delta-rs reaches the lake: :meth:`Storage.delta_rs_options` (no options locally, an Entra ID
token on Azure); for a shared-key account (Azurite, a connection string), the account's key and
blob endpoint, in memory only.
"""

from __future__ import annotations

import importlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import unquote, urlparse

from ingestion.batching import BatchPolicy
from ingestion.bronze.manifest import Manifests
from ingestion.contracts import Catalog
from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import ConfigError, describe
from ingestion.core.lake import (
    REGISTRY_DIR,
    RUNS_TABLE,
    bronze_table,
    gold_table,
    quarantine_rows_table,
    silver_table,
)
from ingestion.core.storage import Storage
from ingestion.events.ledger import Ledger, Status
from ingestion.poison import PoisonBox

if TYPE_CHECKING:  # pragma: no cover
    from deltalake import DeltaTable

# The quarantine table's reasons: array<struct<column, check, value>> (the transforms' own name,
# ``transforms.silver.expectations.ERRORS``; the ingestion side never imports the transforms).
ERRORS_COLUMN = "_errors"
LEDGER_STATUSES: tuple[str, ...] = get_args(Status)
# The run ledger's columns a run summary shows (never ``details``: it can be large).
RUN_COLUMNS = (
    "run_id",
    "job",
    "dataset",
    "status",
    "started_at",
    "finished_at",
    "duration_s",
    "input_from",
    "input_to",
    "output_version",
    "rows_read",
    "rows_written",
    "rows_quarantined",
    "rows_dropped",
    "rows_warned",
    "rules",
    "error",
)
Zone = Literal["bronze", "silver", "quarantine"]


class LakeUnreachableError(ConfigError):
    """delta-rs has no way into this lake (no token, no shared key)."""


# --- what the reader returns ----------------------------------------------------------------------
@dataclass(frozen=True)
class TableInfo:
    """One Delta table at its latest version."""

    path: str  # lake-relative (``silver/orders``)
    version: int
    rows: int
    files: int
    size_bytes: int
    rows_from: Literal["stats", "scan"]  # add-action statistics, or a count(*) scan
    updated_at: str | None  # the latest commit, ISO-8601 UTC
    operation: str | None  # the latest commit's operation (WRITE, MERGE, ...)


@dataclass(frozen=True)
class ReasonCount:
    """Quarantine rows failing one check of one column (``column`` None: a row-level reason)."""

    column: str | None
    check: str
    rows: int


@dataclass(frozen=True)
class QuarantineInfo:
    """A dataset's quarantine table: rows, and why they are there (never their values)."""

    rows: int
    version: int
    by_reason: dict[str, int]  # check -> rows carrying at least one error of that check
    by_column: list[ReasonCount]  # (column, check) -> rows, most first: the CLI's section


@dataclass(frozen=True)
class PendingInfo:
    """A dataset's queued files against its batching thresholds."""

    files: int
    bytes: int
    oldest_age_s: float | None
    due: bool
    reason: str | None  # files, bytes or age: which threshold makes it due
    wait_s: float | None  # until the age threshold makes it due
    max_files: int
    max_bytes: int
    max_age_seconds: float


@dataclass(frozen=True)
class BatchInfo:
    """A dataset's latest batch manifest."""

    batch: int
    status: str
    files: int
    rejected: int
    rows: int | None
    bronze_version: int | None
    created_at: str | None
    committed_at: str | None
    error: str | None


@dataclass(frozen=True)
class RunInfo:
    """One row of the run ledger (counts and rule names; no row contents)."""

    run_id: str
    job: str
    dataset: str
    status: str
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    input_from: int | None
    input_to: int | None
    output_version: int | None
    rows_read: int | None
    rows_written: int | None
    rows_quarantined: int | None
    rows_dropped: int | None
    rows_warned: int | None
    rules: dict[str, int]
    error: str | None


@dataclass(frozen=True)
class AssetInfo:
    """The latest registered version of one asset (the local registry)."""

    asset: str  # name:version
    name: str
    version: int
    dataset: str
    delta_version: int
    drift: str | None
    registered_at: str | None
    archived: bool
    registry: str


@dataclass
class DatasetStatus:
    """Everything the status shows for one dataset; None where a section could not be read."""

    dataset: str
    ledger: dict[str, int] | None = None
    pending: PendingInfo | None = None
    parked: int | None = None
    latest_batch: BatchInfo | None = None
    tables: dict[str, TableInfo | None] = field(default_factory=dict)  # bronze, silver, quarantine
    golds: dict[str, TableInfo | None] = field(default_factory=dict)  # golds it publishes or feeds
    quarantine: QuarantineInfo | None = None
    runs: dict[str, RunInfo] = field(default_factory=dict)  # job -> its latest run
    assets: list[AssetInfo] = field(default_factory=list)


@dataclass(frozen=True)
class SectionError:
    """A section of the summary that could not be read, and why."""

    section: str  # "orders.tables.silver", "runs", ...
    error: str  # "<code>: <one line>"


@dataclass
class StatusSummary:
    """The lake's status: per dataset, plus ledger files no dataset claims."""

    generated_at: str
    environment: str
    datasets: dict[str, DatasetStatus]
    unrouted: dict[str, dict[str, int]] = field(default_factory=dict)  # ledger name -> statuses
    errors: list[SectionError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able data (dicts, lists, strings, numbers, None)."""
        return asdict(self)


# --- the reader ---------------------------------------------------------------------------------------
class LakeView:
    """Reads the lake's tables and bookkeeping without Spark.

    Args:
        storage: the lake.
        catalog: the datasets.
        settings: headwater settings (the batching thresholds, the environment's name).
        clock: seconds since the epoch (pending files' age, ``generated_at``).
    """

    def __init__(
        self,
        storage: Storage,
        catalog: Catalog,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.settings = settings or get_settings()
        self.clock = clock
        self.ledger = Ledger(storage)
        self._options: dict[str, str] | None = None

    # --- Delta tables ------------------------------------------------------------------------------
    def open(self, path: str) -> DeltaTable | None:
        """The delta-rs table at lake ``path``, or None when there is no table there.

        Raises:
            LakeUnreachableError: delta-rs cannot reach this lake.
        """
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        uri = self.storage.uri(path)
        parsed = urlparse(uri)
        target = unquote(parsed.path) if parsed.scheme == "file" else uri
        try:
            return DeltaTable(target, storage_options=self.delta_rs_options() or None)
        except TableNotFoundError:
            return None

    def delta_rs_options(self) -> dict[str, str]:
        """delta-rs's storage options for this lake (computed once per view).

        Raises:
            LakeUnreachableError: the storage offers none and has no shared key either.
        """
        if self._options is None:
            options = self.storage.delta_rs_options()
            if options is None:
                options = _shared_key_options(self.storage)
            if options is None:
                raise LakeUnreachableError(
                    f"delta-rs cannot reach this lake ({type(self.storage).__name__}): it needs an "
                    "Entra ID credential (HEADWATER_LAKE__ACCOUNT) or a shared-key connection string"
                )
            self._options = options
        return self._options

    def table(self, path: str) -> TableInfo | None:
        """Version, rows, files and last commit of the Delta table at ``path``; None when absent."""
        dt = self.open(path)
        if dt is None:
            return None
        pa, pc = _pyarrow()
        actions = pa.table(dt.get_add_actions())
        files = actions.num_rows
        size = int(pc.sum(actions.column("size_bytes")).as_py() or 0) if files else 0
        records = actions.column("num_records")
        rows_from: Literal["stats", "scan"] = "stats"
        if records.null_count == 0:
            rows = int(pc.sum(records).as_py() or 0) if files else 0
            rows -= _deleted_rows(dt)
        else:  # a file without statistics: count
            rows_from = "scan"
            rows = _count(dt)
        history = dt.history(1)
        last = history[0] if history else {}
        stamp = last.get("timestamp")
        return TableInfo(
            path=path,
            version=int(dt.version()),
            rows=rows,
            files=files,
            size_bytes=size,
            rows_from=rows_from,
            updated_at=_iso(stamp / 1000.0) if isinstance(stamp, (int, float)) else None,
            operation=last.get("operation"),
        )

    def quarantine(self, dataset: str) -> QuarantineInfo | None:
        """Rows in ``dataset``'s quarantine table and their reasons; None when it has none yet."""
        dt = self.open(quarantine_rows_table(dataset))
        if dt is None:
            return None
        pa, pc = _pyarrow()
        rows = 0
        by_reason: Counter[str] = Counter()
        by_column: Counter[tuple[str | None, str]] = Counter()
        for batch in _scan(dt, [ERRORS_COLUMN]):
            rows += batch.num_rows
            errors = batch.column(0)
            if batch.num_rows == 0:
                continue
            flat = pc.list_flatten(errors)
            if len(flat) == 0:
                continue
            exploded = pa.table(
                {
                    "row": pc.list_parent_indices(errors),
                    "column": pc.struct_field(flat, "column"),
                    "check": pc.struct_field(flat, "check"),
                }
            )
            for r in exploded.group_by(["column", "check"]).aggregate([("row", "count")]).to_pylist():
                by_column[(r["column"], _check(r["check"]))] += int(r["row_count"])
            for r in exploded.group_by(["check"]).aggregate([("row", "count_distinct")]).to_pylist():
                by_reason[_check(r["check"])] += int(r["row_count_distinct"])
        ordered = sorted(by_column.items(), key=lambda kv: (-kv[1], kv[0][0] or "", kv[0][1]))
        return QuarantineInfo(
            rows=rows,
            version=int(dt.version()),
            by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            by_column=[ReasonCount(column=c, check=k, rows=n) for (c, k), n in ordered],
        )

    def quarantine_reasons(self, dataset: str) -> dict[str, int]:
        """Quarantined rows of ``dataset`` per reason code (a row once per code it carries)."""
        info = self.quarantine(dataset)
        return {} if info is None else dict(info.by_reason)

    def runs(self, datasets: list[str] | None = None) -> dict[str, dict[str, RunInfo]]:
        """The latest run of each job, per dataset, from the run ledger (``system/runs``)."""
        dt = self.open(RUNS_TABLE)
        if dt is None:
            return {}
        have = {f.name for f in dt.schema().fields}
        columns = [c for c in RUN_COLUMNS if c in have]
        wanted = None if datasets is None else set(datasets)
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for batch in _scan(dt, columns):
            for row in batch.to_pylist():
                if wanted is not None and row.get("dataset") not in wanted:
                    continue
                key = (row.get("dataset") or "", row.get("job") or "")
                current = latest.get(key)
                if current is None or _run_order(row) > _run_order(current):
                    latest[key] = row
        out: dict[str, dict[str, RunInfo]] = {}
        for (ds, job), row in sorted(latest.items()):
            out.setdefault(ds, {})[job] = _run_info(row)
        return out

    # --- the system area ---------------------------------------------------------------------------
    def ledger_counts(self, dataset: str) -> dict[str, int]:
        """``dataset``'s ledger entries by status (every status, zeros included)."""
        counts = Counter(str(e.status) for e in self.ledger.entries(dataset))
        return {**dict.fromkeys(LEDGER_STATUSES, 0), **counts}

    def pending(self, dataset: str) -> PendingInfo:
        """Queued files of ``dataset`` against its batching thresholds."""
        policy = BatchPolicy(self.settings.batching)
        d = policy.decide(dataset, self.ledger.queued(dataset), now=self.clock())
        t = policy.thresholds(dataset)
        return PendingInfo(
            files=d.files,
            bytes=d.bytes,
            oldest_age_s=d.oldest_age,
            due=d.due,
            reason=d.reason,
            wait_s=d.wait_seconds,
            max_files=t.max_files,
            max_bytes=t.max_bytes,
            max_age_seconds=t.max_age_seconds,
        )

    def parked(self, dataset: str) -> int:
        """How many file versions of ``dataset`` are parked after repeated failures."""
        return sum(1 for r in PoisonBox(self.storage).parked(dataset) if r.dataset == dataset)

    def latest_batch(self, dataset: str) -> BatchInfo | None:
        """``dataset``'s newest batch manifest (listed: the read never writes the latest hint)."""
        manifests = Manifests(self.storage, dataset)
        numbers = manifests.numbers()
        if not numbers:
            return None
        m = manifests.get(numbers[-1])
        return BatchInfo(
            batch=m.batch,
            status=m.status,
            files=len(m.files),
            rejected=len(m.by_disposition("rejected")),
            rows=m.rows,
            bronze_version=m.bronze_version,
            created_at=_iso(m.created_at),
            committed_at=_iso(m.committed_at),
            error=m.error,
        )

    def assets(self) -> list[AssetInfo]:
        """The latest version of every asset in the local registry (``system/registry``)."""
        newest: dict[str, tuple[int, str]] = {}
        for obj in self.storage.list(REGISTRY_DIR):
            parts = obj.path.split("/")  # system/registry/<name>/<version:06d>/asset.json
            if len(parts) != 5 or parts[4] != "asset.json" or not parts[3].isdigit():
                continue
            version = int(parts[3])
            if parts[2] not in newest or version > newest[parts[2]][0]:
                newest[parts[2]] = (version, obj.path)
        out = []
        for name in sorted(newest):
            data = json.loads(self.storage.read_bytes(newest[name][1]))
            tags = data.get("tags") or {}
            out.append(
                AssetInfo(
                    asset=f"{data['name']}:{data['version']}",
                    name=str(data["name"]),
                    version=int(data["version"]),
                    dataset=str(data.get("dataset", "")),
                    delta_version=int(data["delta_version"]),
                    drift=tags.get("drift_verdict"),
                    registered_at=_iso(data.get("registered_at")),
                    archived=bool(data.get("archived", False)),
                    registry=str(data.get("registry", "local")),
                )
            )
        return out

    # --- the summary ------------------------------------------------------------------------------
    def golds_of(self, dataset: str) -> list[str]:
        """The golds ``dataset`` publishes (its own ``gold=``) or whose inputs name it."""
        return sorted(
            {
                ds.gold.name
                for ds in self.catalog
                if ds.gold is not None and (ds.name == dataset or dataset in ds.gold.inputs)
            }
        )

    def summary(self, dataset: str | None = None) -> StatusSummary:
        """The status of one dataset, or of every dataset of the catalog.

        Raises:
            UnknownDatasetError: ``dataset`` is not in the catalog.
        """
        names = [self.catalog.get(dataset).name] if dataset else self.catalog.names()
        out = StatusSummary(
            generated_at=_iso(self.clock()) or "",
            environment=self.settings.env.value,
            datasets={name: DatasetStatus(name) for name in names},
        )

        def attempt(section: str, read: Callable[..., Any], *args: Any) -> Any:
            try:
                return read(*args)
            except Exception as err:  # noqa: BLE001 - one unreadable section; the rest still shows
                out.errors.append(SectionError(section, describe(err)))
                return None

        tables: dict[str, TableInfo | None] = {}  # a gold fed by two datasets is read once

        def table(section: str, path: str) -> TableInfo | None:
            if path not in tables:
                tables[path] = attempt(section, self.table, path)
            return tables[path]

        for name, st in out.datasets.items():
            st.ledger = attempt(f"{name}.ledger", self.ledger_counts, name)
            st.pending = attempt(f"{name}.pending", self.pending, name)
            st.parked = attempt(f"{name}.parked", self.parked, name)
            st.latest_batch = attempt(f"{name}.latest_batch", self.latest_batch, name)
            zones: dict[Zone, str] = {
                "bronze": bronze_table(name),
                "silver": silver_table(name),
                "quarantine": quarantine_rows_table(name),
            }
            for zone, path in zones.items():
                st.tables[zone] = table(f"{name}.tables.{zone}", path)
            for gold in self.golds_of(name):
                st.golds[gold] = table(f"{name}.golds.{gold}", gold_table(gold))
            if st.tables["quarantine"] is not None:
                st.quarantine = attempt(f"{name}.quarantine", self.quarantine, name)
        runs = attempt("runs", self.runs, names) or {}
        assets = attempt("assets", self.assets) or []
        for name, st in out.datasets.items():
            st.runs = runs.get(name, {})
            st.assets = [a for a in assets if name in (a.dataset, a.name)]
        if dataset is None:
            known = set(names)
            others = attempt("unrouted", lambda: [n for n in self.ledger.datasets() if n not in known])
            for other in others or []:
                counts = attempt(f"{other}.ledger", self.ledger_counts, other)
                if counts is not None:
                    out.unrouted[other] = counts
        return out


# --- helpers -----------------------------------------------------------------------------------------
def _pyarrow() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.compute``, imported on first use (the ``lakeview`` extra)."""
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.compute")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan(dt: DeltaTable, columns: list[str]) -> Iterator[Any]:
    """Record batches of ``columns`` of the table's live rows (deletion vectors applied)."""
    from deltalake import QueryBuilder

    pa, _ = _pyarrow()
    sql = f"SELECT {', '.join(_quote(c) for c in columns)} FROM t"
    reader = QueryBuilder().register("t", dt).execute(sql)
    yield from pa.RecordBatchReader.from_stream(reader)


def _count(dt: DeltaTable) -> int:
    from deltalake import QueryBuilder

    pa, _ = _pyarrow()
    result = pa.table(QueryBuilder().register("t", dt).execute("SELECT count(*) AS n FROM t"))
    return int(result.column("n")[0].as_py())


def _deleted_rows(dt: DeltaTable) -> int:
    """Rows the table's deletion vectors remove (0 without the feature)."""
    features = dt.protocol().reader_features or []
    if "deletionVectors" not in features:
        return 0
    pa, pc = _pyarrow()
    deleted = 0
    for batch in pa.RecordBatchReader.from_stream(dt.deletion_vectors()):
        keep = pc.list_flatten(batch.column("selection_vector"))
        deleted += len(keep) - int(pc.sum(keep).as_py() or 0)
    return deleted


def _shared_key_options(storage: Storage) -> dict[str, str] | None:
    """delta-rs options for a shared-key Blob account (Azurite, a connection string), or None."""
    service = getattr(storage, "service", None)
    credential = getattr(service, "credential", None)
    name = getattr(credential, "account_name", None)
    key = getattr(credential, "account_key", None)
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    options = {"account_name": name, "account_key": key}
    url = str(getattr(service, "url", "") or "")
    parsed = urlparse(url)
    if parsed.hostname and parsed.hostname != f"{name}.blob.core.windows.net":
        # An emulator or another cloud: the blob endpoint itself (path-style for Azurite).
        options["azure_storage_endpoint"] = url.rstrip("/")
        if parsed.scheme == "http":
            options["allow_http"] = "true"
    return options


def _iso(value: Any) -> str | None:
    """Seconds since the epoch or a datetime -> ISO-8601 UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        stamp = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return stamp.astimezone(timezone.utc).isoformat()


def _check(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _run_order(row: dict[str, Any]) -> tuple[float, float, str]:
    def ts(value: Any) -> float:
        return value.timestamp() if isinstance(value, datetime) else float("-inf")

    return ts(row.get("started_at")), ts(row.get("finished_at")), str(row.get("run_id") or "")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _run_info(row: dict[str, Any]) -> RunInfo:
    rules = row.get("rules") or {}
    if not isinstance(rules, dict):  # an Arrow map reads as (key, value) pairs
        rules = dict(rules)
    duration = row.get("duration_s")
    return RunInfo(
        run_id=str(row.get("run_id") or ""),
        job=str(row.get("job") or ""),
        dataset=str(row.get("dataset") or ""),
        status=str(row.get("status") or ""),
        started_at=_iso(row.get("started_at")),
        finished_at=_iso(row.get("finished_at")),
        duration_s=None if duration is None else float(duration),
        input_from=_int(row.get("input_from")),
        input_to=_int(row.get("input_to")),
        output_version=_int(row.get("output_version")),
        rows_read=_int(row.get("rows_read")),
        rows_written=_int(row.get("rows_written")),
        rows_quarantined=_int(row.get("rows_quarantined")),
        rows_dropped=_int(row.get("rows_dropped")),
        rows_warned=_int(row.get("rows_warned")),
        rules={str(k): int(v) for k, v in rules.items() if v is not None},
        error=row.get("error"),
    )


__all__ = [
    "AssetInfo",
    "BatchInfo",
    "DatasetStatus",
    "LakeUnreachableError",
    "LakeView",
    "PendingInfo",
    "QuarantineInfo",
    "ReasonCount",
    "RunInfo",
    "SectionError",
    "StatusSummary",
    "TableInfo",
]
