"""The ledger: one entry per (dataset, path, etag), created at most once.

Event Grid delivers at least once; the entry's exclusive create (``If-None-Match: *`` on Azure,
``O_EXCL``-style locally) turns every redelivery into a no-op. Status then moves by
compare-and-swap on the entry's etag, so two writers can never both move it.

Layout in the system zone::

    system/ledger/<dataset>/<key>.json      the entry (status, batch, sha256, reason)
    system/queue/<dataset>/<key>.json       present while the entry waits for a batch
    system/ingested/<dataset>/<path-hash>/<sha256>   content of a path already in bronze
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from ingestion.core.errors import AlreadyExistsError, PreconditionFailedError
from ingestion.core.reasons import Code, FileCode, PathCode
from ingestion.core.storage import Storage

Status = Literal["pending", "batched", "ingested", "unchanged", "rejected"]
UNROUTED = "_unrouted"


def entry_key(path: str, etag: str) -> str:
    return hashlib.sha256(f"{path}\n{etag}".encode()).hexdigest()[:40]


def path_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class LedgerEntry:
    dataset: str
    path: str  # landing-relative
    etag: str
    size: int
    received_at: float
    status: Status = "pending"
    batch: int | None = None
    sha256: str | None = None
    reason: str | None = None
    reason_code: Code | None = None  # a PathCode for unrouted entries, else a FileCode
    attempts: int = 0
    updated_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return entry_key(self.path, self.etag)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LedgerEntry:
        data = json.loads(raw)
        if data.get("reason_code"):
            enum = PathCode if data.get("dataset") == UNROUTED else FileCode
            data["reason_code"] = enum.parse(data["reason_code"])
        return cls(**data)


@dataclass(frozen=True)
class QueuedFile:
    """A queue marker: what the batching policy needs without opening the entry."""

    dataset: str
    key: str
    path: str
    size: int
    received_at: float


class Ledger:
    """Ledger entries and the pending queue, over the lake's system zone."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # --- paths ---------------------------------------------------------------------------------
    @staticmethod
    def _entry_path(dataset: str, key: str) -> str:
        return f"system/ledger/{dataset}/{key}.json"

    @staticmethod
    def _queue_path(dataset: str, key: str) -> str:
        return f"system/queue/{dataset}/{key}.json"

    @staticmethod
    def _ingested_path(dataset: str, path: str, sha256: str) -> str:
        return f"system/ingested/{dataset}/{path_key(path)}/{sha256}"

    # --- entries -------------------------------------------------------------------------------
    def record(self, entry: LedgerEntry) -> bool:
        """Create the entry if absent and queue it. False when it was already recorded."""
        try:
            self.storage.write_bytes(
                self._entry_path(entry.dataset, entry.key), entry.to_json(), exclusive=True
            )
        except AlreadyExistsError:
            # A crash may have come between the entry and its queue marker: re-queue if pending.
            current = self.get(entry.dataset, entry.key)
            if current is not None and current.status == "pending":
                self._enqueue(current)
            return False
        if entry.status == "pending":
            self._enqueue(entry)
        return True

    def _enqueue(self, entry: LedgerEntry) -> None:
        marker = QueuedFile(entry.dataset, entry.key, entry.path, entry.size, entry.received_at)
        try:
            self.storage.write_bytes(
                self._queue_path(entry.dataset, entry.key),
                json.dumps(asdict(marker)).encode(),
                exclusive=True,
            )
        except AlreadyExistsError:
            pass

    def has(self, dataset: str, key: str) -> bool:
        """Whether the ledger holds this file version (one HEAD, no read)."""
        return self.storage.exists(self._entry_path(dataset, key))

    def get(self, dataset: str, key: str) -> LedgerEntry | None:
        path = self._entry_path(dataset, key)
        if not self.storage.exists(path):
            return None
        return LedgerEntry.from_json(self.storage.read_bytes(path))

    def update(self, entry: LedgerEntry, **changes: object) -> LedgerEntry:
        """Move an entry by compare-and-swap; retries on a concurrent change of other fields."""
        path = self._entry_path(entry.dataset, entry.key)
        for _ in range(20):
            info = self.storage.info(path)
            if info is None:
                raise PreconditionFailedError(path)
            current = LedgerEntry.from_json(self.storage.read_bytes(path))
            new = replace(current, **changes, updated_at=time.time())  # type: ignore[arg-type]
            try:
                self.storage.write_bytes(path, new.to_json(), if_match=info.etag)
            except PreconditionFailedError:
                continue
            if new.status != "pending":
                self.storage.delete(self._queue_path(entry.dataset, entry.key))
            else:
                self._enqueue(new)
            return new
        raise PreconditionFailedError(path)

    def entries(self, dataset: str) -> Iterator[LedgerEntry]:
        for obj in self.storage.list(f"system/ledger/{dataset}"):
            if obj.path.endswith(".json"):
                yield LedgerEntry.from_json(self.storage.read_bytes(obj.path))

    def datasets(self) -> list[str]:
        names = {o.path.split("/")[2] for o in self.storage.list("system/ledger")}
        return sorted(names)

    # --- queue ---------------------------------------------------------------------------------
    def queued(self, dataset: str) -> list[QueuedFile]:
        """Files waiting for a batch, oldest first."""
        out = []
        for obj in self.storage.list(f"system/queue/{dataset}"):
            if obj.path.endswith(".json"):
                out.append(QueuedFile(**json.loads(self.storage.read_bytes(obj.path))))
        return sorted(out, key=lambda q: (q.received_at, q.path))

    # --- content already in bronze ---------------------------------------------------------------
    def mark_ingested(self, dataset: str, path: str, sha256: str) -> None:
        try:
            self.storage.write_bytes(self._ingested_path(dataset, path, sha256), b"", exclusive=True)
        except AlreadyExistsError:
            pass

    def was_ingested(self, dataset: str, path: str, sha256: str) -> bool:
        return self.storage.exists(self._ingested_path(dataset, path, sha256))
