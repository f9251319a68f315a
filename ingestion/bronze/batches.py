"""An operator's decision on a failed batch: retry it, or abandon it into quarantine.

A batch whose failure outlived its retries is ``failed`` and holds up its dataset's later
batches (bronze's idempotent writes need batch numbers in order). ``headwater batches retry``
reopens it, so the next ingest run resumes it; ``headwater batches abandon`` rejects its files
into quarantine with code ``abandoned`` (the originals stay in landing, so nothing vanishes and
``headwater readmit --code abandoned`` can bring them back) and lets the dataset go on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ingestion.bronze.manifest import Manifest, Manifests
from ingestion.core.errors import HeadwaterError
from ingestion.core.lease import Lease
from ingestion.core.reasons import FileCode, RunCode

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import Storage


class BatchStateError(HeadwaterError):
    """The batch is not in a state the operation applies to."""

    code = RunCode.BATCH_FAILED

    def __init__(self, dataset: str, batch: int, problem: str) -> None:
        super().__init__(f"batch {batch} of {dataset!r}: {problem}")
        self.dataset = dataset
        self.batch = batch


def _failed(storage: Storage, dataset: str, batch: int) -> tuple[Manifests, Manifest]:
    manifests = Manifests(storage, dataset)
    if batch not in manifests.numbers():
        raise BatchStateError(dataset, batch, "no such batch (see `headwater status`)")
    manifest = manifests.get(batch)
    if manifest.status != "failed":
        raise BatchStateError(dataset, batch, f"is {manifest.status}, not failed")
    return manifests, manifest


def retry_batch(storage: Storage, dataset: str, batch: int, *, owner: str = "batches-retry") -> Manifest:
    """Reopen a failed batch; the next ingest run of the dataset resumes it.

    Args:
        storage: the lake.
        dataset: the dataset's name.
        batch: the failed batch's number.
        owner: who takes the dataset's lease meanwhile.

    Returns:
        The reopened manifest.

    Raises:
        BatchStateError: no such batch, or it is not failed.
        LeaseHeldError: an ingest run of the dataset is active.
    """
    lease = Lease(storage, dataset, owner=owner, seconds=60).acquire()
    try:
        manifests, manifest = _failed(storage, dataset, batch)
        manifest.status = "open"
        manifests.save(manifest)
        return manifest
    finally:
        lease.release()


def abandon_batch(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset: str,
    batch: int,
    *,
    owner: str = "batches-abandon",
) -> Manifest:
    """Reject a failed batch's files into quarantine as ``abandoned``; later batches go on.

    Args:
        spark: to check that bronze does not hold the batch already.
        storage: the lake.
        catalog: the contracts.
        dataset: the dataset's name.
        batch: the failed batch's number.
        owner: who takes the dataset's lease meanwhile.

    Returns:
        The abandoned manifest.

    Raises:
        BatchStateError: no such batch, not failed, or its rows are in bronze (retry it instead).
        LeaseHeldError: an ingest run of the dataset is active.
    """
    from ingestion.bronze.job import IngestJob, IngestResult, commit_tag
    from ingestion.core.lake import bronze_table
    from ingestion.core.spark.commits import find_commit

    ds = catalog.get(dataset)
    lease = Lease(storage, ds.name, owner=owner, seconds=60).acquire()
    try:
        manifests, manifest = _failed(storage, ds.name, batch)
        found = find_commit(spark, storage, bronze_table(ds.name), commit_tag(ds.name, batch))
        if found is not None:
            raise BatchStateError(
                ds.name,
                batch,
                f"its rows are in bronze (version {found.version}): retry it, do not abandon it",
            )
        job = IngestJob(spark, storage, catalog)
        why = f"batch abandoned by an operator after: {manifest.error or 'unknown failure'}"
        for f in manifest.by_disposition("ingest"):
            job._reject(f, why, FileCode.ABANDONED)
        job._close(ds, manifest, manifests, IngestResult(job="ingest", dataset=ds.name, run_id=owner))
        manifest.status = "abandoned"
        manifest.committed_at = time.time()
        manifests.save(manifest)
        return manifest
    finally:
        lease.release()
