"""Spark entry point: curate a dataset's new bronze rows into silver (and quarantine).

    spark-submit jobs/curate.py --dataset orders          # or: python -m jobs.curate --dataset orders
    python -m jobs.curate --dataset orders --replay       # re-validate quarantined rows instead

On Databricks/Synapse the cluster's session is used; locally a Delta-enabled one is built.
Prints the run's record as JSON. Exit code 0 when the run succeeded or had nothing to do, 1 when
it failed (reason in the output), 2 when it was refused (another curate or replay of the dataset
holds its lease, an unknown dataset, bad arguments...), with the reason and its code on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs import entry

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings
    from ingestion.core.runs import RunRecord


def start(
    dataset: str, *, settings: Settings | None = None, replay: bool = False, lease_wait: float = 0.0
) -> RunRecord:
    """Curate (or, with ``replay``, replay the quarantine of) ``dataset`` now.

    Args:
        dataset: the dataset's name.
        settings: headwater settings; the process-wide ones by default.
        replay: replay the quarantine instead of curating new bronze rows.
        lease_wait: seconds to wait for a running curate or replay of the dataset.

    Returns:
        The run's record.
    """
    from transforms.silver import curate
    from transforms.silver import replay as replay_job

    settings, spark, storage, catalog = entry.environment(settings)
    job = replay_job if replay else curate
    return job(spark, storage, catalog, dataset, settings=settings, lease_wait=lease_wait)


def run(
    dataset: str, *, settings: Settings | None = None, replay: bool = False, lease_wait: float = 0.0
) -> dict[str, Any]:
    """Curate (or replay) ``dataset`` now; the run's record as JSON-able data."""
    return start(dataset, settings=settings, replay=replay, lease_wait=lease_wait).as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.curate``; returns the exit code."""
    parser = entry.parser("jobs.curate", __doc__, lease_wait="a running curate or replay of the dataset")
    parser.add_argument("--replay", action="store_true", help="replay the quarantine instead")
    args = parser.parse_args(argv)
    return entry.main(
        "jobs.curate", args, lambda a: start(a.dataset, replay=a.replay, lease_wait=a.lease_wait)
    )


if __name__ == "__main__":
    sys.exit(main())
