"""Event handling: route a landed file, record it once in the ledger, queue it for a batch."""

from ingestion.events.backfill import Sweep, backfill, sweep
from ingestion.events.handler import EventHandler, EventResult
from ingestion.events.ledger import Ledger, LedgerEntry, QueuedFile, entry_key
from ingestion.events.readmit import readmit

__all__ = [
    "EventHandler",
    "EventResult",
    "Ledger",
    "LedgerEntry",
    "QueuedFile",
    "Sweep",
    "backfill",
    "entry_key",
    "readmit",
    "sweep",
]
