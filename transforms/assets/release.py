"""Publish, then register: the end of a pipeline run, as one engine call.

``python -m jobs.publish`` and ``headwater run publish`` both call :func:`publish_and_register`:
gold is published from silver, and (unless told not to) the register step then makes a new
asset version when gold's data changed. Each step is its own run in the run ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transforms.assets.register import RegisterResult, register
from transforms.gold.publish import publish

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.config import Settings
    from ingestion.core.runs import RunRecord
    from ingestion.core.storage import Storage


@dataclass
class Release:
    """The publish run and, when it ran, the register run after it."""

    publish: RunRecord
    register: RegisterResult | None = None

    @property
    def runs(self) -> list[RunRecord]:
        """The runs made, in order."""
        return [r for r in (self.publish, self.register) if r is not None]

    @property
    def status(self) -> str:
        """``failed`` if a run failed, else ``succeeded`` if one did something, else ``skipped``."""
        statuses = {r.status for r in self.runs}
        if "failed" in statuses:
            return "failed"
        return "succeeded" if "succeeded" in statuses else "skipped"

    @property
    def error(self) -> str | None:
        """The first failed run's error."""
        return next((r.error for r in self.runs if r.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        """``{"status", "publish", "register"?}`` as JSON-able data."""
        out: dict[str, Any] = {"status": self.status, "publish": self.publish.as_dict()}
        if self.register is not None:
            out["register"] = self.register.as_dict()
        return out


def publish_and_register(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset: str,
    *,
    settings: Settings | None = None,
    register_asset: bool = True,
    force: bool = False,
    lease_wait: float = 0.0,
) -> Release:
    """Publish ``dataset``'s gold, then register it as the next asset version if it changed.

    Args:
        spark: the Spark session.
        storage: the lake.
        catalog: the datasets.
        dataset: the dataset (or its gold name).
        settings: headwater settings (the process-wide ones by default).
        register_asset: False stops after publish.
        force: rebuild gold even if silver is unchanged.
        lease_wait: seconds each step waits for a running publish or register.

    Returns:
        Both runs; register is left out when ``register_asset`` is False or publish failed.

    Raises:
        GoldContractError, MissingSilverError, GoldNotPublishedError, LoadCheckError: the step's
            run is recorded as failed first.
        LeaseHeldError: another publish or register of the dataset is running.
    """
    published = publish(
        spark, storage, catalog, dataset, settings=settings, force=force, lease_wait=lease_wait
    )
    release = Release(published)
    if register_asset and published.status != "failed":
        release.register = register(
            spark, storage, catalog, dataset, settings=settings, lease_wait=lease_wait
        )
    return release
