"""The ingest job: queued landing files of one dataset -> one bronze Delta commit, exactly once.

Order of events, and why each crash point is safe:

1. Take the dataset's single-writer lease.
2. Resume the open batch manifest, or write ``batches/<n>`` listing (path, etag, sha256) of the
   queued files *before* writing any data. Crash here -> the next run resumes batch n.
3. Read all files of the batch in one pass; files that cannot be read at all are set aside.
   The sha256 pass of step 2 already decompressed every ``.gz`` file, so a truncated gzip is
   rejected (``bad_gzip``) before Spark sees it. When the batch read still fails, each file is
   read alone: one that fails alone is rejected (``unreadable``), recorded in the manifest, and
   the rest of the batch lands in the same run. A failure no file explains (storage, cluster)
   is transient: the batch is tried ``settings.retry.attempts`` times, then marked ``failed``
   with its reason until an operator runs ``headwater batches retry|abandon``.
4. Append to bronze with Delta's idempotent-write options (``txnAppId`` per dataset,
   ``txnVersion`` = n). Crash after the commit -> the rerun's append of batch n is skipped by
   Delta; we find the version it made by the commit's ``userMetadata``.
5. Quarantine rejected files with reasons, close the ledger entries, commit the manifest.

The run follows the one job lifecycle (``ingestion.core.lifecycle``): a run that finds nothing
queued is recorded as ``skipped``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from ingestion.bronze.content import ContentScan, text_chunks
from ingestion.bronze.lines import LineScan, LongLine, delivered_before, line_bounded, long_lines
from ingestion.bronze.manifest import Manifest, ManifestFile, Manifests
from ingestion.bronze.sniff import is_gzip_name, sniff
from ingestion.contracts import Catalog, Csv, Dataset, JsonArray, JsonLines, Parquet
from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import (
    AlreadyExistsError,
    BatchFailedError,
    FileRejectedError,
    HeadwaterError,
    LeaseHeldError,
    classify,
    describe,
    one_line,
)
from ingestion.core.lake import (
    BATCH_ID,
    CORRUPT_RECORD,
    INGESTED_AT,
    PARSE_ERROR,
    RESCUED_DATA,
    SOURCE_PATH,
    SOURCE_ROW,
    SOURCE_SHA256,
    bronze_table,
    quarantine_files,
)
from ingestion.core.lease import Lease
from ingestion.core.lifecycle import job_run
from ingestion.core.reasons import FileCode, RunCode
from ingestion.core.runs import RunRecord
from ingestion.core.spark.commits import CommitTag, Stamp
from ingestion.core.storage import Storage
from ingestion.core.system import ensure_format
from ingestion.events import Ledger, LedgerEntry

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

Fault = Callable[[str], None]
DELTA_INVALID = set(" ,;{}()\n\t=")


def commit_tag(dataset: str, batch: int) -> CommitTag:
    """Batch ``n``'s bronze commit: ``headwater-bronze-<dataset>:<n>`` (txnAppId per dataset)."""
    return CommitTag("bronze", dataset, batch)


@dataclass
class IngestResult(RunRecord):
    """What one ingest run did: the run's record plus the batch it made."""

    batch: int | None = None
    resumed: bool = False
    bronze_version: int | None = None
    rows: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_rejected: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0  # attempts at the batch in this run


def _norm(uri: str) -> str:
    """Compare file URIs however Spark spells them (file:/x vs file:///x, %20 vs space)."""
    parsed = urlparse(uri)
    return f"{parsed.netloc}:{unquote(parsed.path)}"


def _safe_column(name: str) -> str:
    """Delta (without column mapping) refuses some characters in names: replace them."""
    return "".join("_" if c in DELTA_INVALID else c for c in name)


class IngestJob:
    """Runs ingest for one dataset. ``fault`` is a test seam called at named crash points."""

    def __init__(
        self,
        spark: SparkSession,
        storage: Storage,
        catalog: Catalog,
        *,
        settings: Settings | None = None,
        fault: Fault | None = None,
    ) -> None:
        self.spark = spark
        self.storage = storage
        self.catalog = catalog
        self.settings = settings or get_settings()
        self.ledger = Ledger(storage)
        self.fault = fault or (lambda point: None)

    # --- public ---------------------------------------------------------------------------------
    def run(self, dataset: str, *, lease_wait: float = 0.0, max_files: int | None = None) -> IngestResult:
        """Ingest every queued file of ``dataset`` (resuming an open batch first).

        Raises:
            UnknownDatasetError: no such dataset (nothing recorded).
            LeaseHeldError: another ingest of the dataset is running (nothing recorded).
        """
        ds = self.catalog.get(dataset)
        ensure_format(self.storage)  # refuse a lake written by a newer headwater, before any write
        result = IngestResult(job="ingest", dataset=ds.name)
        lease = Lease(self.storage, ds.name, owner=result.run_id, seconds=self.settings.lease_seconds)
        with job_run(self.spark, self.storage, result, lease=lease, lease_wait=lease_wait) as run:
            manifests = Manifests(self.storage, ds.name)
            manifest = self._open_batch(ds, manifests, result.run_id, max_files)
            if manifest is None:
                run.skip("no files queued")
                return result
            result.batch = manifest.batch
            result.resumed = manifest.run_id != result.run_id
            result.input_from = result.input_to = manifest.batch
            self.fault("after_manifest")
            self._attempt(ds, manifest, manifests, result, lease)
            result.output_version = result.bronze_version
            result.rows_read = result.rows_written = result.rows
            result.details = {
                "batch": manifest.batch,
                "files_ingested": result.files_ingested,
                "files_unchanged": result.files_unchanged,
                "files_rejected": result.files_rejected,
                "rejected_reasons": sorted({r["code"] for r in result.rejected}),
            }
        return result

    # --- steps ----------------------------------------------------------------------------------
    def _open_batch(
        self, ds: Dataset, manifests: Manifests, run_id: str, max_files: int | None
    ) -> Manifest | None:
        latest = manifests.latest()
        if latest is not None and latest.status == "open":
            log.info("resuming open batch %s of %s", latest.batch, ds.name)
            return latest
        if latest is not None and latest.status == "failed":
            # Bronze's idempotent writes need batches in order: an operator decides first.
            raise BatchFailedError(ds.name, latest.batch, latest.error or "unknown")
        queued = self.ledger.queued(ds.name)
        if max_files:
            queued = queued[:max_files]
        if not queued:
            return None
        files: list[ManifestFile] = []
        seen: set[tuple[str, str]] = set()
        for q in queued:
            entry = self.ledger.get(ds.name, q.key)
            if entry is None or entry.status != "pending":
                continue
            files.append(self._describe(ds, entry, seen))
        number = (latest.batch + 1) if latest else 1
        while True:
            manifest = Manifest(dataset=ds.name, batch=number, run_id=run_id, files=files)
            try:
                manifests.create(manifest)
                break
            except AlreadyExistsError:  # a number is never reused, even after a lost manifest
                number += 1
        for f in files:
            entry = self.ledger.get(ds.name, f.key)
            if entry is not None:
                self.ledger.update(entry, status="batched", batch=number, sha256=f.sha256 or None)
        return manifest

    def _describe(self, ds: Dataset, entry: LedgerEntry, seen: set[tuple[str, str]]) -> ManifestFile:
        info = self.storage.info(f"landing/{entry.path}")
        if info is None:
            return ManifestFile(
                key=entry.key,
                path=entry.path,
                etag=entry.etag,
                size=entry.size,
                sha256="",
                disposition="rejected",
                reason="file no longer in landing",
                reason_code=FileCode.MISSING,
            )
        # The hash pass reads every byte anyway: the gzip stream is checked in the same read.
        lines = LineScan(self.settings.max_line_bytes) if line_bounded(ds.format) else None
        scan = ContentScan(gz=is_gzip_name(entry.path), lines=lines)
        sha = self.storage.sha256(f"landing/{entry.path}", observe=scan.feed)
        scan.finish()
        mf = ManifestFile(key=entry.key, path=entry.path, etag=info.etag, size=info.size, sha256=sha)
        mf.long_lines = lines is not None and lines.flagged
        if scan.gzip_error is not None:
            self._reject(mf, scan.gzip_error, FileCode.BAD_GZIP)
        elif (entry.path, sha) in seen or self.ledger.was_ingested(ds.name, entry.path, sha):
            mf.disposition = "unchanged"
            mf.reason = "identical bytes already in bronze for this path"
        seen.add((entry.path, sha))
        return mf

    def _attempt(
        self, ds: Dataset, manifest: Manifest, manifests: Manifests, result: IngestResult, lease: Lease
    ) -> None:
        """Write, then close the batch, each retried on transient failures; at the bound, failed."""
        self._retried(
            ds, manifest, manifests, result, lambda: self._write(ds, manifest, manifests, result), lease
        )
        self.fault("after_commit")
        self._retried(
            ds, manifest, manifests, result, lambda: self._close(ds, manifest, manifests, result), lease
        )

    def _retried(
        self,
        ds: Dataset,
        manifest: Manifest,
        manifests: Manifests,
        result: IngestResult,
        step: Callable[[], None],
        lease: Lease,
    ) -> None:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        retry = self.settings.retry

        def once() -> None:
            result.attempts += 1
            lease.check()
            step()

        retrying = Retrying(
            retry=retry_if_exception(lambda e: classify(e)[1] and not isinstance(e, LeaseHeldError)),
            stop=stop_after_attempt(retry.attempts),
            wait=wait_exponential(multiplier=retry.wait_seconds, max=retry.max_wait_seconds),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "ingest of %s batch %s: attempt %d failed (%s); retrying",
                ds.name,
                manifest.batch,
                state.attempt_number,
                describe(exc) if state.outcome and (exc := state.outcome.exception()) else "?",
            ),
        )
        try:
            retrying(once)
        except LeaseHeldError:
            raise  # another writer owns the dataset now (lease lost); the batch is theirs to finish
        except Exception as err:
            manifest.attempts += result.attempts
            manifest.error = describe(err)
            manifest.status = "failed"
            try:
                manifests.save(manifest)
            except Exception:  # noqa: BLE001 - the store may be what failed; the batch stays open
                log.exception("could not mark batch %s of %s failed", manifest.batch, ds.name)
                raise err from None
            raise BatchFailedError(ds.name, manifest.batch, manifest.error) from err

    def _write(self, ds: Dataset, manifest: Manifest, manifests: Manifests, result: IngestResult) -> None:
        from ingestion.core.spark.commits import find_commit

        found = find_commit(  # a crash after the commit
            self.spark, self.storage, bronze_table(ds.name), commit_tag(ds.name, manifest.batch)
        )
        committed = None if found is None else found.version
        try:
            self._land(ds, manifest, manifests, result, committed)
        except HeadwaterError:
            raise
        except Exception as err:  # noqa: BLE001 - the engine failed: is one file to blame?
            if classify(err)[0] is not RunCode.SPARK or not self._isolate(ds, manifest, err):
                raise  # the store or our own code failed, or no file fails alone: no file to blame
            manifests.save(manifest)  # the rejection is part of the batch's record, before the retry
            self._land(ds, manifest, manifests, result, committed)

    def _isolate(self, ds: Dataset, manifest: Manifest, err: Exception) -> bool:
        """Read each file of a failed batch read alone; reject those that fail alone."""
        log.warning(
            "batch %s of %s failed to read (%s); reading its files one by one",
            manifest.batch,
            ds.name,
            one_line(err),
        )
        found = False
        blamed: list[tuple[ManifestFile, str]] = []
        probed = manifest.by_disposition("ingest")
        for f in probed:
            try:
                self._probe(ds, f)
            except FileRejectedError as rejected:
                self._reject(f, rejected.reason, rejected.code)
                found = True
            except HeadwaterError:
                raise
            except Exception as alone:  # noqa: BLE001 - whatever the engine raises names this file
                if classify(alone)[0] is not RunCode.SPARK:
                    raise  # the store or our own code failed while reading it: not the file's fault
                blamed.append((f, f"the engine cannot read this file: {one_line(alone)}"))
        if blamed and len(blamed) == len(probed) and not self._engine_alive():
            # Every file fails alone and so does a job that reads no file: the engine is down.
            # Blaming the files would quarantine a whole good batch; the retry bound decides.
            log.warning("the engine fails a job that reads no file: no file of the batch is blamed")
            return False
        for f, reason in blamed:
            self._reject(f, reason, FileCode.UNREADABLE)
        return found or bool(blamed)

    def _engine_alive(self) -> bool:
        """Does the engine run a job that reads no file?"""
        try:
            return self.spark.range(1).count() == 1
        except Exception:  # noqa: BLE001 - any failure here means the engine, not a file
            return False

    def _probe(self, ds: Dataset, f: ManifestFile) -> None:
        """Read one file to the end on the engine (the ``noop`` sink evaluates every column)."""
        header = sniff(self.storage, ds, f.path, f.size).header
        raw, _ = self._scan(ds, [(f, header)])
        raw.write.format("noop").mode("overwrite").save()

    def _land(
        self,
        ds: Dataset,
        manifest: Manifest,
        manifests: Manifests,
        result: IngestResult,
        committed: int | None,
    ) -> None:
        from ingestion.core.spark.commits import write_once

        table = bronze_table(ds.name)
        tag = commit_tag(ds.name, manifest.batch)
        todo = manifest.by_disposition("ingest")
        if not todo:
            return
        frame = self._read(ds, manifest, todo)
        changed = [f for f in todo if f.disposition == "rejected"]
        if changed:
            manifests.save(manifest)  # rejections are part of the batch's record
        if frame is None:
            return
        df, rows_by_path, cached = frame
        try:
            for f in todo:
                if f.disposition == "ingest":
                    f.rows = rows_by_path.get(f.path, 0)
            if committed is None and any(f.disposition == "ingest" for f in todo):

                def append(stamp: Stamp) -> None:
                    writer = stamp(df.write.format("delta").mode("append"))
                    if ds.schema_policy == "evolve":
                        writer = writer.option("mergeSchema", "true")
                    writer.save(self.storage.uri(table))

                made = write_once(self.spark, self.storage, table, tag, append)
                committed = None if made is None else made.version
        finally:
            cached.unpersist()
        result.bronze_version = committed

    def _read(
        self, ds: Dataset, manifest: Manifest, todo: list[ManifestFile]
    ) -> tuple[DataFrame, dict[str, int], DataFrame] | None:
        """Sniff, read, apply the schema policy; mark unreadable files rejected in ``todo``."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        from ingestion.bronze import readers

        readable: list[tuple[ManifestFile, tuple[str, ...] | None]] = []
        judge = _SourceColumnsJudge(self.storage, ds)
        for todo_file in todo:
            changed = judge(todo_file.path)
            if changed:
                self._reject(todo_file, changed, FileCode.SCHEMA)
                continue
            try:
                readable.append((todo_file, sniff(self.storage, ds, todo_file.path, todo_file.size).header))
            except FileRejectedError as err:
                self._reject(todo_file, err.reason, err.code)
        long = self._long_lines(ds, readable)
        readable = [(f, h) for f, h in readable if f.disposition == "ingest"]
        if not readable:
            return None
        by_uri = {_norm(self.storage.uri(f"landing/{f.path}")): f for f, _ in readable}
        known = ds.bronze_columns()
        raw, bad = self._scan(ds, readable)
        if bad is not None:
            for row in bad.collect():
                f = by_uri.get(_norm(row[readers.FILE]))
                if f is not None:
                    self._reject(f, row["error"], FileCode.WRONG_FORMAT)

        unknown_expr = F.array_except(F.map_keys(F.col(readers.FIELDS)), F.array(*[F.lit(c) for c in known]))
        raw = raw.withColumn(
            "_unknown", F.when(F.col(readers.FIELDS).isNull(), F.array()).otherwise(unknown_expr)
        )
        raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
        # One aggregation gives, per file: rows, malformed rows, unknown columns.
        stats = (
            raw.groupBy(readers.FILE)
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(F.col(CORRUPT_RECORD).isNotNull().cast("long")).alias("corrupt"),
                F.array_sort(F.array_distinct(F.flatten(F.collect_list("_unknown")))).alias("unknown"),
            )
            .collect()
        )
        file_of_uri: dict[str, ManifestFile] = {}
        rows_by_path: dict[str, int] = {}
        extra: set[str] = set()
        for row in stats:
            f = by_uri.get(_norm(row[readers.FILE]))
            if f is None or f.disposition == "rejected":
                continue
            file_of_uri[row[readers.FILE]] = f
            unknown = list(row["unknown"] or [])
            if row["rows"] == row["corrupt"]:
                self._reject(f, f"no record could be parsed ({row['rows']} malformed)", FileCode.UNPARSEABLE)
            elif unknown and ds.schema_policy == "freeze":
                self._reject(
                    f,
                    f"columns not in the contract (schema policy 'freeze'): {', '.join(unknown)}",
                    FileCode.UNKNOWN_COLUMNS,
                )
            else:
                rows_by_path[f.path] = int(row["rows"])
                extra.update(unknown)
        for f, _ in readable:
            if f.disposition == "ingest" and f.path not in rows_by_path:
                if long.get(f.path):
                    self._reject(f, "every record is longer than max_line_bytes", FileCode.UNPARSEABLE)
                else:
                    self._reject(f, "file holds no records", FileCode.EMPTY)
        for path, found in long.items():
            if path in rows_by_path:
                rows_by_path[path] += len(found)
        keep = {u: f for u, f in file_of_uri.items() if f.disposition == "ingest"}
        if not keep:
            raw.unpersist()
            return None
        csv = isinstance(ds.format, Csv)
        lookup = self.spark.createDataFrame(
            [(u, f.path, f.sha256, delivered_before(long.get(f.path, []), csv=csv)) for u, f in keep.items()],
            f"{readers.FILE} string, {SOURCE_PATH} string, {SOURCE_SHA256} string, _skipped array<long>",
        )
        df = raw.join(F.broadcast(lookup), readers.FILE, "inner")
        # Rows after a skipped long line move down by one per such line before them.
        delivered = F.col(SOURCE_ROW).cast("long")
        position = delivered + F.size(F.filter(F.col("_skipped"), lambda n: n < delivered)).cast("long")
        fields = F.col(readers.FIELDS)
        cols = [fields.getItem(c).alias(c) for c in known]
        if ds.schema_policy == "evolve":
            cols += [fields.getItem(c).alias(_safe_column(c)) for c in sorted(extra)]
        if ds.schema_policy == "rescue":
            cols.append(F.col(readers.RESCUED).alias(RESCUED_DATA))
        ingested_at = datetime.fromtimestamp(time.time(), tz=timezone.utc)
        cols += [
            F.col(CORRUPT_RECORD),
            F.col(PARSE_ERROR),
            F.col(SOURCE_PATH),
            F.col(SOURCE_SHA256),
            position.alias(SOURCE_ROW),
            F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
            F.lit(manifest.batch).cast("long").alias(BATCH_ID),
        ]
        out = df.select(*cols)
        kept = {f.path: f for f in keep.values()}
        too_long = self._long_rows(ds, {p: found for p, found in long.items() if p in kept}, kept)
        if too_long:
            extra_rows = self.spark.createDataFrame(
                too_long,
                f"{CORRUPT_RECORD} string, {PARSE_ERROR} string, {SOURCE_PATH} string, "
                f"{SOURCE_SHA256} string, {SOURCE_ROW} long",
            ).select(
                "*",
                F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
                F.lit(manifest.batch).cast("long").alias(BATCH_ID),
            )
            out = out.unionByName(extra_rows, allowMissingColumns=True)
        # `raw` stays persisted until the write is done; the caller unpersists it.
        return out, rows_by_path, raw

    def _long_lines(
        self, ds: Dataset, readable: list[tuple[ManifestFile, tuple[str, ...] | None]]
    ) -> dict[str, list[LongLine]]:
        """Lines the reader will skip, per flagged file; a file whose CSV header is one is rejected."""
        fmt = ds.format
        csv = isinstance(fmt, Csv)
        out: dict[str, list[LongLine]] = {}
        for f, _ in readable:
            if not f.long_lines or not line_bounded(fmt):
                continue
            found = long_lines(
                text_chunks(self.storage, f"landing/{f.path}"),
                max_line=self.settings.max_line_bytes,
                csv=csv,
                csv_header=csv and fmt.header,  # type: ignore[union-attr]
            )
            header = next((x for x in found if x.header), None)
            if header is not None:
                self._reject(
                    f,
                    f"the CSV header line has {header.size} bytes; max_line_bytes is "
                    f"{self.settings.max_line_bytes}",
                    FileCode.NO_HEADER,
                )
            elif found:
                out[f.path] = found
        return out

    def _long_rows(
        self, ds: Dataset, long: dict[str, list[LongLine]], files: dict[str, ManifestFile]
    ) -> list[tuple[str, str, str, str, int]]:
        """Bronze rows for the skipped records: (raw head, parse error, path, sha256, position)."""
        fmt = ds.format
        csv = isinstance(fmt, Csv)
        encoding = fmt.encoding if isinstance(fmt, Csv) else "utf-8"
        rows = []
        for path, found in long.items():
            records = [x for x in found if not (csv and x.blank)]
            for i, x in enumerate(records, start=1):
                rows.append(
                    (
                        x.head.decode(encoding, errors="replace"),
                        x.message(self.settings.max_line_bytes),
                        path,
                        files[path].sha256,
                        x.records_before + i,
                    )
                )
        return rows

    def _scan(
        self, ds: Dataset, readable: list[tuple[ManifestFile, tuple[str, ...] | None]]
    ) -> tuple[DataFrame, DataFrame | None]:
        """The raw frame of ``readable`` files (and, for JSON arrays, the files that are not)."""
        from ingestion.bronze import readers

        uris = [self.storage.uri(f"landing/{f.path}") for f, _ in readable]
        fmt = ds.format
        known = ds.bronze_columns()
        if isinstance(fmt, Csv):
            headers = [h or () for _, h in readable]
            files = list(zip(uris, headers, strict=True))
            bound = self.settings.max_line_bytes if line_bounded(fmt) else None
            return readers.read_csv(self.spark, known, fmt, files, max_line=bound), None
        if isinstance(fmt, JsonLines):
            return readers.read_json_lines(
                self.spark, uris, known, max_line=self.settings.max_line_bytes
            ), None
        if isinstance(fmt, JsonArray):
            return readers.read_json_array(self.spark, uris, known)
        if isinstance(fmt, Parquet):
            return readers.read_parquet(self.spark, uris, known), None
        raise TypeError(f"unsupported format {fmt!r}")  # pragma: no cover - contracts validate formats

    def _reject(self, f: ManifestFile, reason: str, code: FileCode) -> None:
        log.info("rejecting %s: %s", f.path, code)  # reported in the result, manifest and ledger
        f.disposition = "rejected"
        f.reason = reason
        f.reason_code = code

    def _close(self, ds: Dataset, manifest: Manifest, manifests: Manifests, result: IngestResult) -> None:
        result.rows = result.files_ingested = result.files_unchanged = result.files_rejected = 0
        result.rejected = []  # counted afresh: a retried close must not count twice
        for f in manifest.files:
            entry = self.ledger.get(ds.name, f.key)
            if f.disposition == "rejected":
                self._quarantine(ds, manifest, f)
                result.files_rejected += 1
                result.rejected.append(
                    {"path": f.path, "code": f.reason_code or "", "reason": f.reason or ""}
                )
                status, reason, code = "rejected", f.reason, f.reason_code
            elif f.disposition == "unchanged":
                result.files_unchanged += 1
                status, reason, code = "unchanged", f.reason, None
            else:
                self.ledger.mark_ingested(ds.name, f.path, f.sha256)
                result.files_ingested += 1
                result.rows += f.rows or 0
                status, reason, code = "ingested", None, None
            if entry is not None and entry.status != status:
                self.ledger.update(
                    entry,
                    status=status,
                    batch=manifest.batch,
                    sha256=f.sha256 or None,
                    reason=reason,
                    reason_code=code,
                    attempts=entry.attempts + 1,
                )
        manifest.status = "committed"
        manifest.committed_at = time.time()
        manifest.bronze_version = result.bronze_version
        manifest.rows = result.rows
        manifests.save(manifest)

    def _quarantine(self, ds: Dataset, manifest: Manifest, f: ManifestFile) -> None:
        """Copy the file to quarantine with a reason file; the original stays in landing."""
        base = f"{quarantine_files(ds.name)}/{manifest.batch:08d}/{f.path}"
        if self.storage.exists(f"landing/{f.path}") and not self.storage.exists(base):
            self.storage.copy(f"landing/{f.path}", base)
        reason = {
            "dataset": ds.name,
            "path": f.path,
            "etag": f.etag,
            "sha256": f.sha256,
            "batch": manifest.batch,
            "reason": f.reason,
            "code": f.reason_code,
            "quarantined_at": time.time(),
        }
        self.storage.write_bytes(f"{base}.reason.json", json.dumps(reason, indent=1).encode())


class _SourceColumnsJudge:
    """Why the contract cannot take a change file (a source column dropped or retyped), or None.

    One per batch read: the contract's types are built once, and each columns record (usually one
    per source) is read once.
    """

    def __init__(self, storage: Storage, ds: Dataset) -> None:
        self.storage = storage
        self.ds = ds
        self._contract: dict[str, str] | None = None
        self._verdicts: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        from ingestion.changes import columns

        digest = columns.digest_of(path) if self.ds.cdc is not None else None
        if digest is None:
            return None
        if digest not in self._verdicts:
            self._verdicts[digest] = self._judge(digest)
        return self._verdicts[digest]

    def _judge(self, digest: str) -> str | None:
        from ingestion.changes import columns

        carried = columns.load(self.storage, digest)
        if carried is None:
            return f"its source-columns record {columns.record_path(digest)} is missing"
        if self._contract is None:
            schema = self.ds.model().to_schema()
            self._contract = {n: c.dtype.type.simpleString() for n, c in schema.columns.items()}
        found = columns.problems(self._contract, carried)
        return "; ".join(f"{name}: {why}" for name, why in found) or None


def ingest(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset: str,
    *,
    settings: Settings | None = None,
    lease_wait: float = 0.0,
    fault: Fault | None = None,
) -> IngestResult:
    """Ingest the queued files of ``dataset`` into bronze. See :class:`IngestJob`."""
    job = IngestJob(spark, storage, catalog, settings=settings, fault=fault)
    return job.run(dataset, lease_wait=lease_wait)
