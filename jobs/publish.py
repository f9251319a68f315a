"""Spark entry point: publish a dataset's gold table from silver, then register the asset.

    spark-submit jobs/publish.py --dataset orders        # or: python -m jobs.publish --dataset orders

A pipeline run ends here: gold is published, and when it changed, a new asset version is
registered (``--no-register`` to stop after publish). On Databricks/Synapse the cluster's session
is used; locally a Delta-enabled one is built. Prints both runs as JSON. Exit code 0 when they
succeeded or had nothing to do, 1 when one failed, 2 when refused (unknown dataset, no gold
declared, another publish or register running, bad arguments), with the reason on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs import entry

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings
    from transforms.assets import Release


def start(
    dataset: str,
    *,
    settings: Settings | None = None,
    register: bool = True,
    force: bool = False,
    lease_wait: float = 0.0,
) -> Release:
    """Publish ``dataset``'s gold (and register it).

    Args:
        dataset: the dataset (or its gold name).
        settings: headwater settings; the process-wide ones by default.
        register: False stops after publish.
        force: rebuild even if silver is unchanged.
        lease_wait: seconds to wait for a running publish or register of the dataset.

    Returns:
        The publish run and the register run after it.
    """
    from transforms.assets import publish_and_register

    settings, spark, storage, catalog = entry.environment(settings)
    return publish_and_register(
        spark,
        storage,
        catalog,
        dataset,
        settings=settings,
        register_asset=register,
        force=force,
        lease_wait=lease_wait,
    )


def run(
    dataset: str, *, settings: Settings | None = None, register: bool = True, force: bool = False
) -> dict[str, Any]:
    """Publish ``dataset``'s gold (and register it); ``{"status", "publish", "register"}``."""
    return start(dataset, settings=settings, register=register, force=force).as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.publish``; returns the exit code."""
    parser = entry.parser("jobs.publish", __doc__, lease_wait="a running publish or register of the dataset")
    parser.add_argument("--no-register", action="store_true", help="Publish only.")
    parser.add_argument("--force", action="store_true", help="Rebuild even if silver is unchanged.")
    args = parser.parse_args(argv)
    return entry.main(
        "jobs.publish",
        args,
        lambda a: start(a.dataset, register=not a.no_register, force=a.force, lease_wait=a.lease_wait),
    )


if __name__ == "__main__":
    sys.exit(main())
