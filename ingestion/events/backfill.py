"""Backfill and reconcile: raise the event for every landing file the ledger has not seen.

One sweep serves a first load of existing files (``headwater backfill``), the CLI's ``watch``
and the Function App's reconcile timer for events that never arrived (a rename into place, a
dropped delivery). Files younger than ``min_age`` are left for the next pass: an ADLS
``CreateFile`` shows a zero-length file before its data is flushed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ingestion.contracts import Catalog
from ingestion.core.errors import RejectedPathError
from ingestion.core.storage import ObjectInfo, Storage
from ingestion.events.handler import EventHandler, EventResult
from ingestion.events.ledger import UNROUTED, Ledger, entry_key

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass
class Sweep(Generic[R]):
    """What one sweep of landing saw and did.

    ``outcomes`` counts ``too_young``, ``known``, ``error`` and each handled file's outcome.
    """

    seen: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    results: list[R] = field(default_factory=list)


def sweep(
    storage: Storage,
    catalog: Catalog,
    handle: Callable[[str, ObjectInfo], R],
    *,
    dataset: str | None = None,
    min_age: float = 0.0,
    clock: Callable[[], float] = time.time,
    keep_going: bool = False,
) -> Sweep[R]:
    """List landing and call ``handle`` for each file the ledger has not seen.

    Args:
        storage: the lake.
        catalog: the datasets (routes each path to the ledger it is recorded in).
        handle: ``handle(landing_relative_path, info)`` records one file; its result's
            ``outcome`` is counted.
        dataset: only this dataset's files.
        min_age: leave files younger than this many seconds for the next pass.
        clock: seconds since the epoch.
        keep_going: count a failing file in ``errors`` and go on (the reconcile timer) instead of
            raising.

    Returns:
        The sweep's counts and each handled file's result.

    Raises:
        UnknownDatasetError: ``dataset`` is not in the catalog.
    """
    ledger = Ledger(storage)
    prefix = "landing"
    if dataset is not None:
        ds = catalog.get(dataset)
        static = ds.landing.split("*")[0].split("{")[0].rsplit("/", 1)[0]
        prefix = f"landing/{static}" if static else "landing"
    out: Sweep[R] = Sweep()
    now = clock()
    for obj in storage.list(prefix):
        rel = obj.path.split("/", 1)[1]
        try:
            name = catalog.route(rel)[0].name
        except RejectedPathError:
            name = UNROUTED
        if dataset is not None and name != dataset:
            continue
        out.seen += 1
        try:
            if now - obj.modified.timestamp() < min_age:
                out.outcomes["too_young"] += 1
                continue
            if ledger.has(name, entry_key(rel, obj.etag)):
                out.outcomes["known"] += 1
                continue
            result = handle(rel, obj)
        except Exception as err:
            if not keep_going:
                raise
            out.outcomes["error"] += 1
            out.errors.append({"path": rel, "error": f"{type(err).__name__}: {err}"})
            log.warning("sweep of landing: %s failed: %s", rel, err)
            continue
        out.outcomes[str(getattr(result, "outcome", "handled"))] += 1
        out.results.append(result)
    return out


def backfill(
    storage: Storage,
    catalog: Catalog,
    *,
    dataset: str | None = None,
    min_age: float = 0.0,
    clock: Callable[[], float] = time.time,
) -> list[EventResult]:
    """Raise ``file_landed`` for unseen landing files; returns what each event did.

    Args:
        storage: the lake.
        catalog: the datasets.
        dataset: only this dataset's files.
        min_age: leave files younger than this many seconds for the next pass.
        clock: seconds since the epoch.

    Returns:
        One result per file recorded now.
    """
    handler = EventHandler(Ledger(storage), catalog, clock=clock)
    return sweep(
        storage,
        catalog,
        lambda rel, obj: handler.file_landed(rel, etag=obj.etag, size=obj.size),
        dataset=dataset,
        min_age=min_age,
        clock=clock,
    ).results
