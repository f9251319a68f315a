"""Event handling: route a landed file, record it once in the ledger, queue it for a batch."""

from ingestion.events.backfill import backfill
from ingestion.events.handler import EventHandler, EventResult
from ingestion.events.ledger import Ledger, LedgerEntry, QueuedFile, entry_key

__all__ = ["backfill", "EventHandler", "EventResult", "Ledger", "LedgerEntry", "QueuedFile", "entry_key"]
