"""Spark entry point: curate a dataset's new bronze rows into silver (and quarantine).

    spark-submit jobs/curate.py --dataset orders          # or: python -m jobs.curate --dataset orders
    python -m jobs.curate --dataset orders --replay       # re-validate quarantined rows instead

On Databricks/Synapse the cluster's session is used; locally a Delta-enabled one is built.
Exit code 0 when the run succeeded or had nothing to do, 1 when it failed (reason in the output),
2 when it could not start (another curate or replay of the dataset holds its lease, an unknown
dataset...), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingestion.core.config import Settings, get_settings


def run(
    dataset: str, *, settings: Settings | None = None, replay: bool = False, lease_wait: float = 0.0
) -> dict[str, Any]:
    """Curate (or, with ``replay``, replay the quarantine of) ``dataset`` now.

    Args:
        dataset: the dataset's name.
        settings: default :func:`get_settings` (the environment's).
        replay: re-validate the quarantined rows instead of curating new bronze rows.
        lease_wait: seconds to wait for a running curate or replay of the dataset to finish.

    Returns:
        The run's record (JSON-able); ``status`` says how it went.

    Raises:
        HeadwaterError: the run could not start (unknown dataset, lease held...).
    """
    from ingestion.contracts import Catalog
    from ingestion.core.runs import as_dict
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import open_storage
    from transforms.silver import curate
    from transforms.silver import replay as replay_job

    settings = settings or get_settings()
    job = replay_job if replay else curate
    record = job(
        get_spark(settings),
        open_storage(settings),
        Catalog.discover(),
        dataset,
        settings=settings,
        lease_wait=lease_wait,
    )
    return as_dict(record)


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.curate``: parse ``argv``, run, print the result as JSON on stdout.

    Args:
        argv: the command-line arguments; default ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="jobs.curate", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--replay", action="store_true", help="replay the quarantine instead")
    parser.add_argument(
        "--lease-wait",
        type=float,
        default=0.0,
        help="seconds to wait for a running curate or replay of the dataset",
    )
    args = parser.parse_args(argv)
    from ingestion.core.errors import HeadwaterError

    try:
        result = run(args.dataset, replay=args.replay, lease_wait=args.lease_wait)
    except HeadwaterError as err:
        print(f"jobs.curate: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str, sort_keys=True))
    return 0 if result["status"] in ("succeeded", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
