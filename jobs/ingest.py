"""Spark entry point: ingest a dataset's queued landing files into bronze.

    spark-submit jobs/ingest.py --dataset orders        # or: python -m jobs.ingest --dataset orders

On Databricks/Synapse the cluster's session is used; locally a Delta-enabled one is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingestion.core.config import Settings, get_settings


def run(dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0) -> dict[str, Any]:
    """Ingest ``dataset``'s queued landing files into bronze now, as one batch.

    Args:
        dataset: the dataset's name.
        settings: default :func:`get_settings` (the environment's).
        lease_wait: seconds to wait for a running ingest of the dataset to finish.

    Returns:
        The run's summary (JSON-able).

    Raises:
        HeadwaterError: the run could not start (unknown dataset, lease held...).
    """
    from ingestion.bronze.job import ingest
    from ingestion.contracts import Catalog
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import open_storage

    settings = settings or get_settings()
    result = ingest(
        get_spark(settings),
        open_storage(settings),
        Catalog.discover(),
        dataset,
        settings=settings,
        lease_wait=lease_wait,
    )
    return result.as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.ingest``: parse ``argv``, run, print the result as JSON on stdout.

    Args:
        argv: the command-line arguments; default ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="jobs.ingest", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--lease-wait", type=float, default=0.0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dataset, lease_wait=args.lease_wait), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
