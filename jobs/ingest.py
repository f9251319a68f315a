"""Spark entry point: ingest a dataset's queued landing files into bronze.

    spark-submit jobs/ingest.py --dataset orders        # or: python -m jobs.ingest --dataset orders

On Databricks/Synapse the cluster's session is used; locally a Delta-enabled one is built.
Prints the run's result as JSON. Exit code 0 when the run succeeded or found nothing queued,
1 when it failed, 2 when it was refused (unknown dataset, another ingest of the dataset running,
bad arguments), with the reason and its code on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs import entry

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.bronze.job import IngestResult
    from ingestion.core.config import Settings


def start(dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0) -> IngestResult:
    """Ingest ``dataset`` now.

    Args:
        dataset: the dataset's name.
        settings: headwater settings; the process-wide ones by default.
        lease_wait: seconds to wait for a running ingest of the dataset.

    Returns:
        The run's result (``status``, ``batch``, ``rows``, ``files_*``...).
    """
    from ingestion.bronze.job import ingest

    settings, spark, storage, catalog = entry.environment(settings)
    return ingest(spark, storage, catalog, dataset, settings=settings, lease_wait=lease_wait)


def run(dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0) -> dict[str, Any]:
    """Ingest ``dataset`` now; returns the run's result as JSON-able data (see :func:`start`)."""
    return start(dataset, settings=settings, lease_wait=lease_wait).as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.ingest``; returns the exit code."""
    args = entry.parser("jobs.ingest", __doc__, lease_wait="a running ingest of the dataset").parse_args(argv)
    return entry.main("jobs.ingest", args, lambda a: start(a.dataset, lease_wait=a.lease_wait))


if __name__ == "__main__":
    sys.exit(main())
