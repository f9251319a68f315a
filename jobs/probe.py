"""Spark entry point: where the code runs, on the driver and on the executors.

Prints, as JSON, the master and the file ``ingestion`` was imported from on the driver and on
the executors (one task per default-parallelism slot).

    spark-submit jobs/launch.py probe --dataset any        # or: python -m jobs.probe --dataset any

Use it to check that a cluster runs the installed wheel, not a checkout. Exit code 0.
"""

from __future__ import annotations

import sys
from typing import Any

from jobs import entry


def _where(_: Any) -> list[tuple[str, str]]:
    """Runs on an executor: the executor's own ``ingestion`` and its process."""
    import os
    import socket

    import ingestion

    return [(str(ingestion.__file__), f"{socket.gethostname()}:{os.getpid()}")]


class Probe:
    """The probe's result."""

    status = "succeeded"
    error = None

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return self.data


def start(dataset: str) -> Probe:
    """Probe the session the job would run on.

    Args:
        dataset: echoed back (every entry point takes one).

    Returns:
        ``master``, ``app_id``, ``driver`` (``ingestion.__file__``), ``executors`` (one entry per
        task: ``ingestion.__file__``, host:pid) and ``executor_ids`` known to the driver.
    """
    import ingestion
    from ingestion.core.spark.session import get_spark

    spark = get_spark()
    sc = spark.sparkContext
    n = max(2, sc.defaultParallelism)
    rows = sc.parallelize(range(n), n).mapPartitions(lambda it: _where(list(it))).collect()
    status = sc._jsc.sc().getExecutorMemoryStatus()  # executor block managers known to the driver
    return Probe(
        {
            "dataset": dataset,
            "master": sc.master,
            "app_id": sc.applicationId,
            "driver": str(ingestion.__file__),
            "executors": [{"ingestion": f, "process": p} for f, p in rows],
            "block_managers": int(status.size()),
        }
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.probe``; returns the exit code."""
    args = entry.parser("jobs.probe", __doc__).parse_args(argv)
    return entry.main("jobs.probe", args, lambda a: start(a.dataset))


if __name__ == "__main__":
    sys.exit(main())
