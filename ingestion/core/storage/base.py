"""The one storage interface over the lake.

Paths are lake-relative and start with their zone: ``landing/orders/2026/11/a.csv``,
``system/ledger/...``. Each backend maps a zone to its own place (a sub-folder locally, a
container on ADLS Gen2) and says how Spark reaches it (:meth:`Storage.uri`).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from ingestion.core.config import ZONES
from ingestion.core.errors import StorageError

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What the lake knows of one object."""

    path: str
    size: int
    etag: str
    modified: datetime


def split_zone(path: str) -> tuple[str, str]:
    """``"landing/a/b.csv"`` -> ``("landing", "a/b.csv")``; raises on an unknown zone."""
    zone, _, rest = path.strip("/").partition("/")
    if zone not in ZONES:
        raise StorageError(f"{path!r}: first segment must be one of {', '.join(ZONES)}")
    if any(seg in ("..", ".") for seg in rest.split("/")):
        raise StorageError(f"{path!r}: '..' and '.' segments are not allowed in lake paths")
    return zone, rest


class Storage(abc.ABC):
    """Byte-level access to the lake with the conditional writes exactly-once needs."""

    @abc.abstractmethod
    def info(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when absent."""

    @abc.abstractmethod
    def open_read(self, path: str) -> BinaryIO:
        """A stream over the object's bytes (never the whole object in memory).

        Raises:
            NotFoundError: no object at ``path``.
        """

    @abc.abstractmethod
    def write_bytes(
        self, path: str, data: bytes, *, exclusive: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        """Write an object (whole, atomically: readers never see half of it).

        Args:
            path: lake path of the object.
            data: its new content.
            exclusive: create only if absent (``If-None-Match: *``); else AlreadyExistsError.
            if_match: replace only if the current etag is this; else PreconditionFailedError.

        Returns:
            The written object's info (its new etag).

        Raises:
            AlreadyExistsError: ``exclusive`` and the object exists.
            PreconditionFailedError: ``if_match`` and the object changed or is gone.
        """

    @abc.abstractmethod
    def write_stream(self, path: str, stream: BinaryIO) -> ObjectInfo:
        """Write an object from a stream, chunk by chunk (overwrites)."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below ``prefix`` (recursive), in path order."""

    @abc.abstractmethod
    def delete(self, path: str, *, if_match: str | None = None) -> None:
        """Remove an object; absent is not an error.

        Raises:
            PreconditionFailedError: ``if_match`` and the object changed.
        """

    @abc.abstractmethod
    def uri(self, path: str) -> str:
        """How Spark reaches ``path`` (``file:/...`` or ``abfss://...``)."""

    def delta_rs_options(self) -> dict[str, str] | None:
        """How delta-rs (the second Delta reader) reaches this lake, or None when it cannot.

        Used only to read a table's latest version cheaply (:func:`ingestion.core.spark.delta.
        latest_version`); None makes that read go through Spark.
        """
        return None

    # --- shared conveniences -------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        """Whether an object is at ``path`` (a folder is not an object)."""
        return self.info(path) is not None

    def read_bytes(self, path: str) -> bytes:
        """The whole object in memory: for small system files; stream data with :meth:`open_read`.

        Raises:
            NotFoundError: no object at ``path``.
        """
        with self.open_read(path) as fh:
            return fh.read()

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Stream ``src`` into ``dst`` (overwrites); returns ``dst``'s info."""
        with self.open_read(src) as fh:
            return self.write_stream(dst, fh)

    def sha256(self, path: str, *, observe: Callable[[bytes], None] | None = None) -> str:
        """Content hash, streamed in chunks so memory stays bounded for any size.

        Args:
            path: the object.
            observe: called with every chunk, in order (checks that ride on the same read).

        Returns:
            The hex digest.
        """
        digest = hashlib.sha256()
        with self.open_read(path) as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
                if observe is not None:
                    observe(chunk)
        return digest.hexdigest()
