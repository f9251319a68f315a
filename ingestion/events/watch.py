"""Watch a local landing folder: the file system's notifications raise the events, runs follow.

For local development, ``headwater watch`` plays the part Event Grid and the Function App play
on Azure. It learns of new files from the operating system (inotify, through ``watchfiles``)
instead of listing landing in a loop, so a small file is queued as soon as its writer is done:

* A notified file is admitted once it has not changed for ``settle`` seconds (a writer may still
  be appending); until then it waits, and is looked at again on the next wake-up.
* An admitted file goes through the same :class:`~ingestion.events.EventHandler` as a blob
  trigger: hostile or unrouted paths are refused there, redeliveries are no-ops.
* Every dataset with queued files is handed to ``runner`` (the CLI passes a whole pipeline run on
  one warm Spark session). A run that meets a held lease is the other run's work: it is reported,
  and the files stay queued for the next round.
* The reconcile sweep (:func:`~ingestion.events.backfill`) stays as the safety net: once at the
  start and every ``sweep_seconds`` after, it raises the event for any file the notifications
  missed (a rename into place from another mount, a file that landed while nothing watched).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestion.contracts import Catalog
from ingestion.core.errors import LeaseHeldError, describe
from ingestion.core.storage import LocalStorage
from ingestion.events.backfill import backfill
from ingestion.events.handler import EventHandler, EventResult
from ingestion.events.ledger import Ledger

log = logging.getLogger(__name__)

Runner = Callable[[str], Any]


@dataclass
class WatchRound:
    """What one wake-up did: the events raised, then the runs started (or why not)."""

    trigger: str  # "notify" or "sweep"
    events: list[EventResult] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # dataset -> why its run did not start


class LandingWatcher:
    """Turns notifications from ``storage``'s landing folder into events and runs.

    Args:
        storage: a local lake (on Azure, Event Grid delivers the events instead).
        catalog: the datasets.
        runner: called with a dataset's name when it has queued files.
        settle: seconds a file must stay unchanged before it is admitted.
        sweep_seconds: seconds between reconcile sweeps of the whole landing zone.
        clock: seconds since the epoch (a test seam).
    """

    def __init__(
        self,
        storage: LocalStorage,
        catalog: Catalog,
        runner: Runner,
        *,
        settle: float = 1.0,
        sweep_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.runner = runner
        self.settle = settle
        self.sweep_seconds = sweep_seconds
        self.clock = clock
        self.landing = storage.root / "landing"
        self.ledger = Ledger(storage)
        self.handler = EventHandler(self.ledger, catalog, clock=clock)
        self._waiting: dict[str, None] = {}  # landing-relative paths notified, not yet admitted

    # --- the loop -------------------------------------------------------------------------------
    def rounds(self, *, stop: threading.Event | None = None) -> Iterator[WatchRound]:
        """Sweep once, then one round per batch of notifications (or due sweep) until ``stop``.

        Yields:
            Each round's events and runs.
        """
        from watchfiles import Change, watch

        self.landing.mkdir(parents=True, exist_ok=True)
        # The start-up sweep runs on the first wake-up, once the notifications are on: a file
        # landing while its runs go (they may take minutes) is notified, not left to the next sweep.
        last_sweep: float | None = None
        # Wake at least every `settle` seconds while files wait, else at the sweep interval.
        tick_ms = int(max(0.05, min(self.settle, self.sweep_seconds)) * 1000)
        for changes in watch(
            self.landing,
            rust_timeout=tick_ms,
            yield_on_timeout=True,
            stop_event=stop,
            debounce=400,
            step=50,
            watch_filter=lambda change, path: change != Change.deleted and _visible(Path(path)),
            raise_interrupt=False,
        ):
            for _, path in changes:
                rel = self._relative(Path(path))
                if rel is not None:
                    self._waiting[rel] = None
            if last_sweep is None or self.clock() - last_sweep >= self.sweep_seconds:
                last_sweep = self.clock()
                yield self.sweep()
            elif self._waiting:
                found = self.admit()
                if found.events:
                    yield found

    def sweep(self) -> WatchRound:
        """The safety net: raise the event for every settled file the ledger has not seen; run."""
        out = WatchRound(
            "sweep", events=backfill(self.storage, self.catalog, min_age=self.settle, clock=self.clock)
        )
        self._run_queued(out)
        return out

    def admit(self) -> WatchRound:
        """Raise the event for each waiting file that has settled; run what is queued."""
        out = WatchRound("notify")
        now = self.clock()
        for rel in list(self._waiting):
            info = self.storage.info(f"landing/{rel}")
            if info is None:  # gone again (a temporary file, a move)
                del self._waiting[rel]
                continue
            if now - info.modified.timestamp() < self.settle:
                continue  # its writer may still be at it
            del self._waiting[rel]
            out.events.append(self.handler.file_landed(rel, etag=info.etag, size=info.size))
        if out.events:
            self._run_queued(out)
        return out

    # --- helpers --------------------------------------------------------------------------------
    def _run_queued(self, out: WatchRound) -> None:
        for name in self.catalog.names():
            if not self.ledger.queued(name):
                continue
            try:
                out.runs.append(self.runner(name))
            except LeaseHeldError as err:  # another run has the dataset: it takes the files
                out.refused[name] = describe(err)
            except Exception as err:  # noqa: BLE001 - one dataset's failure must not stop the watch
                log.exception("watch: the run for %s failed", name)
                out.refused[name] = describe(err)

    def _relative(self, path: Path) -> str | None:
        try:
            rel = path.resolve().relative_to(self.landing.resolve())
        except ValueError:
            return None
        return rel.as_posix() if path.is_file() else None


def _visible(path: Path) -> bool:
    """Not a hidden or temporary file (a writer's ``.tmp-*`` before its rename into place)."""
    return not any(part.startswith(".") for part in path.parts[-1:])


__all__ = ["LandingWatcher", "Runner", "WatchRound"]
