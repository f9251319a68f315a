"""The run ledger: one row per job run, appended to a Delta table in the system zone.

Every job (ingest, curate, publish, register) records what it read, wrote, quarantined and
dropped, how long it took and how it ended. Counts and rule names only: never row contents.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from ingestion.core.lake import RUNS_TABLE

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from ingestion.core.storage import Storage

RunStatus = Literal["running", "succeeded", "failed", "skipped"]


def new_run_id(job: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{job}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunRecord:
    """What one job run did: the run ledger's row, and the base type of every job's result.

    ``rules`` maps a rule name to the rows it affected. A job with metrics of its own returns a
    subclass (``IngestResult``, ``RegisterResult``); only these fields reach the ledger.
    """

    job: str
    dataset: str
    run_id: str = ""
    status: RunStatus = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    input_from: int | None = None  # bronze version range, batch number, silver version...
    input_to: int | None = None
    output_version: int | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    rows_dropped: int = 0
    rows_warned: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id(self.job)

    def finish(self, status: RunStatus, error: str | None = None) -> RunRecord:
        self.status = status
        self.error = error
        self.finished_at = time.time()
        return self

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (the job's own metrics included)."""
        out = asdict(self)
        out["duration_s"] = self.duration_s
        return out


_SCHEMA = (
    "run_id string, job string, dataset string, status string, started_at timestamp, "
    "finished_at timestamp, duration_s double, input_from long, input_to long, "
    "output_version long, rows_read long, rows_written long, rows_quarantined long, "
    "rows_dropped long, rows_warned long, rules map<string,long>, error string, details string"
)


class RunLedger:
    """Appends run records and reads them back."""

    def __init__(self, spark: SparkSession, storage: Storage) -> None:
        self.spark = spark
        self.uri = storage.uri(RUNS_TABLE)

    def append(self, record: RunRecord) -> None:
        def ts(v: float | None) -> datetime | None:
            return None if v is None else datetime.fromtimestamp(v, tz=timezone.utc)

        row = (
            record.run_id,
            record.job,
            record.dataset,
            record.status,
            ts(record.started_at),
            ts(record.finished_at),
            record.duration_s,
            record.input_from,
            record.input_to,
            record.output_version,
            record.rows_read,
            record.rows_written,
            record.rows_quarantined,
            record.rows_dropped,
            record.rows_warned,
            dict(record.rules),
            record.error,
            json.dumps(record.details, sort_keys=True, default=str),
        )
        from ingestion.core.spark.commits import retry_conflicts

        df = self.spark.createDataFrame([row], _SCHEMA)
        # Every dataset's runs append here, in parallel: the first appends race to create it.
        retry_conflicts(
            lambda: df.write.format("delta").mode("append").option("mergeSchema", "true").save(self.uri),
            what=self.uri,
        )

    def frame(self) -> DataFrame:
        from ingestion.core.spark.delta import is_delta

        if not is_delta(self.spark, self.uri):
            return self.spark.createDataFrame([], _SCHEMA)
        return self.spark.read.format("delta").load(self.uri)

    def latest(
        self, *, dataset: str | None = None, job: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        df = self.frame()
        if dataset:
            df = df.where(df.dataset == dataset)
        if job:
            df = df.where(df.job == job)
        return [r.asDict(recursive=True) for r in df.orderBy(df.started_at.desc()).limit(limit).collect()]


def as_dict(record: RunRecord) -> dict[str, Any]:
    """``record.as_dict()`` (kept for callers of the function)."""
    return record.as_dict()
