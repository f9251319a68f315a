"""Backfill and reconcile: raise the event for every landing file the ledger has not seen.

The same call serves a first load of existing files and the periodic reconcile for events that
never arrived (a rename into place, a dropped delivery). Files younger than ``min_age`` are left
for the next pass: an ADLS ``CreateFile`` shows a zero-length file before its data is flushed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingestion.contracts import Catalog
from ingestion.core.storage import Storage
from ingestion.events.handler import EventHandler, EventResult
from ingestion.events.ledger import UNROUTED, Ledger, entry_key


def backfill(
    storage: Storage,
    catalog: Catalog,
    *,
    dataset: str | None = None,
    min_age: float = 0.0,
    clock: Callable[[], float] = time.time,
) -> list[EventResult]:
    """Raise ``file_landed`` for unseen landing files; returns what each event did."""
    ledger = Ledger(storage)
    handler = EventHandler(ledger, catalog, clock=clock)
    prefix = "landing"
    if dataset is not None:
        ds = catalog.get(dataset)
        static = ds.landing.split("*")[0].split("{")[0].rsplit("/", 1)[0]
        prefix = f"landing/{static}" if static else "landing"
    results = []
    now = clock()
    for obj in storage.list(prefix):
        rel = obj.path.split("/", 1)[1]
        if now - obj.modified.timestamp() < min_age:
            continue
        if dataset is not None:
            try:
                routed, _ = catalog.route(rel)
            except Exception:
                continue
            if routed.name != dataset:
                continue
        key = entry_key(rel, obj.etag)
        try:
            name = catalog.route(rel)[0].name
        except Exception:
            name = UNROUTED
        if ledger.get(name, key) is not None:
            continue
        results.append(handler.file_landed(rel, etag=obj.etag, size=obj.size))
    return results
