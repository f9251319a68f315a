"""Spark entry point: register a dataset's gold table as the next asset version if it changed.

    spark-submit jobs/register.py --dataset orders       # or: python -m jobs.register --dataset orders

Azure ML when ``HEADWATER_ML__SUBSCRIPTION_ID``/``RESOURCE_GROUP``/``WORKSPACE`` are set (one
workspace per environment), else the local registry in the lake's system area. Prints the run as
JSON. Exit code 0 when a version was registered or gold was unchanged, 1 when the run failed,
2 when refused (unknown dataset, another register running, bad arguments).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs import entry

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings
    from transforms.assets import RegisterResult


def start(dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0) -> RegisterResult:
    """Register ``dataset``'s gold.

    Args:
        dataset: the dataset (or its gold name).
        settings: headwater settings; the process-wide ones by default.
        lease_wait: seconds to wait for a running register of the dataset.

    Returns:
        The run's result (``status``, ``outcome``, ``asset``, ``drift``...).
    """
    from transforms.assets import register

    settings, spark, storage, catalog = entry.environment(settings)
    return register(spark, storage, catalog, dataset, settings=settings, lease_wait=lease_wait)


def run(dataset: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Register ``dataset``'s gold; the run's result as JSON-able data."""
    return start(dataset, settings=settings).as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.register``; returns the exit code."""
    args = entry.parser("jobs.register", __doc__, lease_wait="a running register of the dataset").parse_args(
        argv
    )
    return entry.main("jobs.register", args, lambda a: start(a.dataset, lease_wait=a.lease_wait))


if __name__ == "__main__":
    sys.exit(main())
