"""Checks made in the one pass that already reads every landed file (its sha256).

The ingest job streams each file on the driver to hash it. :class:`ContentScan` is fed the same
chunks and decompresses a ``.gz`` file to its end (``zlib.decompressobj``), so a truncated or
corrupt stream is rejected as ``bad_gzip`` before Spark sees it, at no extra I/O. Memory stays
bounded: decompressed output is taken ``OUT_CHUNK`` bytes at a time and dropped.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ingestion.bronze.lines import LineScan
from ingestion.core.storage import Storage
from ingestion.core.storage.base import CHUNK

OUT_CHUNK = 1024 * 1024  # decompressed bytes handled at a time
GZIP_MAGIC = b"\x1f\x8b"


class _Inflater:
    """A gzip stream fed in pieces; concatenated gzip members are valid gzip and go on."""

    def __init__(self) -> None:
        self.d: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decompressed output of ``data``, at most ``OUT_CHUNK`` bytes at a time.

        Raises:
            zlib.error: the stream is corrupt.
        """
        while data:
            yield self.d.decompress(data, OUT_CHUNK)
            if self.d.eof:
                data = self.d.unused_data
                if data:
                    self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = self.d.unconsumed_tail


@dataclass
class ContentScan:
    """Fed every chunk of one file; says whether its gzip stream is whole.

    Args:
        gz: the file is named ``.gz``. A file without gzip magic is left to the sniffer, which
            names that mistake more precisely.
        lines: fed the file's text (decompressed for ``.gz``) to flag lines over the bound.
    """

    gz: bool
    lines: LineScan | None = None
    gzip_error: str | None = None
    _inflater: _Inflater | None = field(default=None, repr=False)
    _started: bool = False
    _out: int = 0  # decompressed bytes so far

    def feed(self, chunk: bytes) -> None:
        """One chunk of the file's raw bytes, in order."""
        if not chunk:
            return
        if self.gz and not self._started:
            self._started = True
            if not chunk.startswith(GZIP_MAGIC):
                self.gz = False  # the sniffer rejects it
            else:
                self._inflater = _Inflater()
        if not self.gz:
            if self.lines is not None:
                self.lines.feed(chunk)
            return
        if self.gzip_error is not None:
            return
        assert self._inflater is not None
        try:
            for out in self._inflater.feed(chunk):
                self._out += len(out)
                if self.lines is not None:
                    self.lines.feed(out)
        except zlib.error as err:
            self.gzip_error = f"corrupt gzip stream after {self._out} decompressed bytes ({err})"

    def finish(self) -> ContentScan:
        """After the last chunk: a stream that did not reach its end is truncated."""
        if self.gzip_error is None and self._inflater is not None and not self._inflater.d.eof:
            self.gzip_error = (
                f"truncated gzip stream: it ends after {self._out} decompressed bytes, "
                "before the end of its data"
            )
        return self


def text_chunks(storage: Storage, path: str) -> Iterator[bytes]:
    """The bytes of a landed file as Spark reads them: decompressed when it is gzip.

    Args:
        storage: the lake.
        path: the file, lake-relative.

    Yields:
        Chunks of at most ``CHUNK`` raw or ``OUT_CHUNK`` decompressed bytes.
    """
    with storage.open_read(path) as fh:
        first = fh.read(CHUNK)
        if not first.startswith(GZIP_MAGIC):
            chunk, first = first, b""  # hold one chunk at a time
            while chunk:
                yield chunk
                chunk = fh.read(CHUNK)
            return
        inflater = _Inflater()
        data, first = first, b""
        while data:
            yield from inflater.feed(data)
            data = fh.read(CHUNK)
        yield inflater.d.flush()
