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


# The newest batch number, a hint beside the manifests (not .json: listings of manifests skip it).
LATEST_HINT = "_latest"
LATEST_PROBE = 8  # batches made since the hint that latest() steps over before it lists


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
        """The newest batch's manifest, or None before the first batch.

        Found from the ``_latest`` hint the newest create wrote, confirmed by the next number's
        manifest being absent (numbers are taken in order), so a run does not list every batch
        the dataset ever had. Without a hint (a lake from before it), or far behind, the folder
        is listed once.
        """
        number = self._latest_number()
        return self.get(number) if number is not None else None

    def _latest_number(self) -> int | None:
        hint = self._hint()
        if hint is not None and self.storage.exists(self.path(hint)):
            number = hint
            for _ in range(LATEST_PROBE):
                if not self.storage.exists(self.path(number + 1)):
                    if number != hint:
                        self._set_hint(number)
                    return number
                number += 1
        numbers = self.numbers()
        if numbers:
            self._set_hint(numbers[-1])
        return numbers[-1] if numbers else None

    def _hint(self) -> int | None:
        path = f"{self.dir}/{LATEST_HINT}"
        if not self.storage.exists(path):
            return None
        try:
            return int(self.storage.read_bytes(path).decode().strip())
        except (ValueError, UnicodeDecodeError):  # a damaged hint: list instead
            return None

    def _set_hint(self, number: int) -> None:
        self.storage.write_bytes(f"{self.dir}/{LATEST_HINT}", str(number).encode())

    def all(self) -> list[Manifest]:
        return [self.get(n) for n in self.numbers()]

    def create(self, manifest: Manifest) -> None:
        """Create batch ``n``; AlreadyExistsError if that number was ever used."""
        info = self.storage.write_bytes(self.path(manifest.batch), manifest.to_json(), exclusive=True)
        self._etags[manifest.batch] = info.etag
        self._set_hint(manifest.batch)

    def save(self, manifest: Manifest) -> None:
        """Replace a manifest we read or created (compare-and-swap on its etag)."""
        info = self.storage.write_bytes(
            self.path(manifest.batch), manifest.to_json(), if_match=self._etags.get(manifest.batch)
        )
        self._etags[manifest.batch] = info.etag


__all__ = ["AlreadyExistsError", "Manifest", "ManifestFile", "Manifests"]
