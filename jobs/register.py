"""Spark entry point: register a dataset's gold table as the next asset version if it changed.

    spark-submit jobs/register.py --dataset orders       # or: python -m jobs.register --dataset orders

Azure ML when ``HEADWATER_ML__SUBSCRIPTION_ID``/``RESOURCE_GROUP``/``WORKSPACE`` are set (one
workspace per environment), else the local registry in the lake's system area.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingestion.core.config import Settings, get_settings


def run(dataset: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Register ``dataset``'s gold table as the next asset version, if its data changed.

    Args:
        dataset: the dataset (or its gold name).
        settings: default :func:`get_settings` (the environment's).

    Returns:
        The register result (JSON-able).

    Raises:
        HeadwaterError: register failed (recorded in the run ledger first).
    """
    from ingestion.contracts import Catalog
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import open_storage
    from transforms.assets import register

    settings = settings or get_settings()
    result = register(
        get_spark(settings), open_storage(settings), Catalog.discover(), dataset, settings=settings
    )
    return result.as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.register``: parse ``argv``, run, print the result as JSON on stdout.

    Args:
        argv: the command-line arguments; default ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="jobs.register", description=__doc__)
    parser.add_argument("--dataset", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dataset), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
