"""The event handling core: what to do when a file lands. Called by the Function and the CLI.

It routes the path to its dataset (or rejects it, naming why), records one ledger entry per
(dataset, path, etag) and queues the file for the dataset's next batch. It never reads the
file's bytes and never imports pyspark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ingestion.contracts import Catalog
from ingestion.core.errors import RejectedPathError
from ingestion.events.ledger import UNROUTED, Ledger, LedgerEntry

log = logging.getLogger(__name__)

Outcome = Literal["queued", "duplicate", "rejected"]


@dataclass(frozen=True)
class EventResult:
    outcome: Outcome
    path: str
    dataset: str | None = None
    key: str | None = None
    reason: str | None = None
    reason_code: str | None = None


class EventHandler:
    """Turns "a file landed" into a ledger entry, once."""

    def __init__(self, ledger: Ledger, catalog: Catalog, *, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.clock = clock

    def file_landed(self, path: str, *, etag: str, size: int) -> EventResult:
        """Handle one completed write in the landing zone.

        Args:
            path: landing-relative (``orders/a.csv``) or lake-relative (``landing/orders/a.csv``).
            etag: the object's etag at the event; a new etag is a new version of the file.
            size: bytes.
        """
        try:
            dataset, rel = self.catalog.route(path)
        except RejectedPathError as err:
            log.warning("rejected landing path %r: %s", path, err.reason)
            self._record_unrouted(path, etag, size, err)
            return EventResult("rejected", path, reason=err.reason, reason_code=err.code)
        entry = LedgerEntry(dataset=dataset.name, path=rel, etag=etag, size=size, received_at=self.clock())
        if self.ledger.record(entry):
            log.info("queued %s for dataset %s", rel, dataset.name)
            return EventResult("queued", rel, dataset.name, entry.key)
        log.info("duplicate event for %s (etag %s): already recorded", rel, etag)
        return EventResult("duplicate", rel, dataset.name, entry.key)

    def _record_unrouted(self, path: str, etag: str, size: int, err: RejectedPathError) -> None:
        # Kept so `headwater status` shows files that sit in landing without a dataset
        # (the entry is JSON, so even a hostile name is stored inertly).
        entry = LedgerEntry(
            dataset=UNROUTED,
            path=path,
            etag=etag,
            size=size,
            received_at=self.clock(),
            status="rejected",
            reason=err.reason,
            reason_code=err.code,
        )
        self.ledger.record(entry)
