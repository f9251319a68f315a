"""Spark entry point: publish a dataset's gold table from silver, then register the asset.

    spark-submit jobs/publish.py --dataset orders        # or: python -m jobs.publish --dataset orders

A pipeline run ends here: gold is published, and when it changed, a new asset version is
registered (``--no-register`` to stop after publish). On Databricks/Synapse the cluster's session
is used; locally a Delta-enabled one is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingestion.core.config import Settings, get_settings


def run(
    dataset: str, *, settings: Settings | None = None, register: bool = True, force: bool = False
) -> dict[str, Any]:
    """Publish ``dataset``'s gold table, then register it as the next asset version.

    Args:
        dataset: the dataset (or its gold name).
        settings: default :func:`get_settings` (the environment's).
        register: also register the asset (when gold's data changed, a new version).
        force: rebuild gold even when its silver inputs did not move.

    Returns:
        ``{"publish": record, "register": result}`` (JSON-able; no ``register`` without it).

    Raises:
        HeadwaterError: publish or register failed (recorded in the run ledger first).
    """
    from ingestion.contracts import Catalog
    from ingestion.core.runs import as_dict
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import open_storage
    from transforms.gold import publish

    settings = settings or get_settings()
    spark, storage, catalog = get_spark(settings), open_storage(settings), Catalog.discover()
    record = publish(spark, storage, catalog, dataset, settings=settings, force=force)
    out: dict[str, Any] = {"publish": as_dict(record)}
    if register:
        from transforms.assets import register as register_asset

        out["register"] = register_asset(spark, storage, catalog, dataset, settings=settings).as_dict()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.publish``: parse ``argv``, run, print the result as JSON on stdout.

    Args:
        argv: the command-line arguments; default ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="jobs.publish", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--no-register", action="store_true", help="Publish only.")
    parser.add_argument("--force", action="store_true", help="Rebuild even if silver is unchanged.")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dataset, register=not args.no_register, force=args.force), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
