"""Spark entry point: a pipeline run for one dataset, ingest -> curate -> publish -> register.

    spark-submit jobs/pipeline.py --dataset customers    # or: python -m jobs.pipeline --dataset customers

One Spark session for the whole run. Every stage is skipped when it has nothing new; after
curate, every gold reading the dataset (and golds reading those, in dependency order) is
published from the latest version of each input and registered. A failed stage stops only the
stages downstream of it, and the next run resumes there. Prints the run as JSON (each stage's
result under ``stages``). Exit code 0 when the run succeeded or had nothing to do, 1 when a
stage failed, 2 when it was refused (unknown dataset, invalid contract, another run ingesting
the dataset, bad arguments), with the reason and its code on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs import entry

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings
    from transforms.pipeline import PipelineResult


def start(
    dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0, register: bool = True
) -> PipelineResult:
    """Run the pipeline for ``dataset`` now.

    Args:
        dataset: the dataset's name.
        settings: headwater settings; the process-wide ones by default.
        lease_wait: seconds to wait for a running ingest of the dataset (later stages wait
            ``settings.pipeline.lease_wait``).
        register: False stops each gold after publish.

    Returns:
        The run's result.
    """
    from transforms.pipeline import run_pipeline

    settings, spark, storage, catalog = entry.environment(settings)
    return run_pipeline(
        spark, storage, catalog, dataset, settings=settings, lease_wait=lease_wait, register_asset=register
    )


def run(dataset: str, *, settings: Settings | None = None, lease_wait: float = 0.0) -> dict[str, Any]:
    """Run the pipeline for ``dataset`` now; the run's result as JSON-able data."""
    return start(dataset, settings=settings, lease_wait=lease_wait).as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.pipeline``; returns the exit code."""
    parser = entry.parser("jobs.pipeline", __doc__, lease_wait="a running ingest of the dataset")
    parser.add_argument("--no-register", action="store_true", help="Stop each gold after publish.")
    args = parser.parse_args(argv)
    return entry.main(
        "jobs.pipeline", args, lambda a: start(a.dataset, lease_wait=a.lease_wait, register=not a.no_register)
    )


if __name__ == "__main__":
    sys.exit(main())
