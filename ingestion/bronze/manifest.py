"""Batch manifests: which files batch ``n`` of a dataset holds, written before any data.

``system/batches/<dataset>/<n:08d>.json`` is created exclusively, so a batch number is never
reused for other files; a crash leaves it ``open`` and the next run resumes exactly it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from ingestion.core.errors import AlreadyExistsError
from ingestion.core.lake import batches_dir
from ingestion.core.reasons import FileCode
from ingestion.core.storage import Storage

Disposition = Literal["ingest", "unchanged", "rejected"]


@dataclass
class ManifestFile:
    key: str  # ledger entry key
    path: str  # landing-relative
    etag: str
    size: int
    sha256: str
    disposition: Disposition = "ingest"
    reason: str | None = None
    reason_code: FileCode | None = None
    rows: int | None = None
    # The sha256 pass saw a run of bytes without a line break near max_line_bytes: the read
    # looks for lines the reader skips (ingestion.bronze.lines).
    long_lines: bool = False


@dataclass
class Manifest:
    dataset: str
    batch: int
    run_id: str
    files: list[ManifestFile]
    # open -> committed; open -> failed (retries spent) -> open again (`batches retry`) or
    # abandoned (`batches abandon`: its files rejected into quarantine as ``abandoned``).
    status: Literal["open", "committed", "failed", "abandoned"] = "open"
    created_at: float = field(default_factory=time.time)
    committed_at: float | None = None
    bronze_version: int | None = None
    rows: int | None = None
    attempts: int = 0  # failed attempts at this batch (transient failures), across runs
    error: str | None = None  # the last failure: "<code>: <one line>"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        files = []
        for f in data["files"]:
            if f.get("reason_code"):
                f["reason_code"] = FileCode.parse(f["reason_code"])
            files.append(ManifestFile(**f))
        data["files"] = files
        return cls(**data)

    def by_disposition(self, disposition: Disposition) -> list[ManifestFile]:
        return [f for f in self.files if f.disposition == disposition]


class Manifests:
    """Reads and writes one dataset's batch manifests."""

    def __init__(self, storage: Storage, dataset: str) -> None:
        self.storage = storage
        self.dataset = dataset
        self.dir = batches_dir(dataset)
        self._etags: dict[int, str] = {}

    def path(self, batch: int) -> str:
        return f"{self.dir}/{batch:08d}.json"

    def numbers(self) -> list[int]:
        return sorted(
            int(o.path.rsplit("/", 1)[1][:-5])
            for o in self.storage.list(self.dir)
            if o.path.endswith(".json")
        )

    def get(self, batch: int) -> Manifest:
        path = self.path(batch)
        info = self.storage.info(path)
        raw = self.storage.read_bytes(path)
        if info is not None:
            self._etags[batch] = info.etag
        return Manifest.from_json(raw)

    def latest(self) -> Manifest | None:
        nums = self.numbers()
        return self.get(nums[-1]) if nums else None

    def all(self) -> list[Manifest]:
        return [self.get(n) for n in self.numbers()]

    def create(self, manifest: Manifest) -> None:
        """Create batch ``n``; AlreadyExistsError if that number was ever used."""
        info = self.storage.write_bytes(self.path(manifest.batch), manifest.to_json(), exclusive=True)
        self._etags[manifest.batch] = info.etag

    def save(self, manifest: Manifest) -> None:
        """Replace a manifest we read or created (compare-and-swap on its etag)."""
        info = self.storage.write_bytes(
            self.path(manifest.batch), manifest.to_json(), if_match=self._etags.get(manifest.batch)
        )
        self._etags[manifest.batch] = info.etag


__all__ = ["AlreadyExistsError", "Manifest", "ManifestFile", "Manifests"]
