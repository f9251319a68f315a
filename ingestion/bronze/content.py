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
    _d: Any = field(default=None, repr=False)
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
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not self.gz:
            if self.lines is not None:
                self.lines.feed(chunk)
            return
        if self.gzip_error is not None:
            return
        data = chunk
        try:
            while data:
                out = self._d.decompress(data, OUT_CHUNK)
                self._out += len(out)
                if self.lines is not None:
                    self.lines.feed(out)
                if self._d.eof:
                    # Concatenated gzip members are valid gzip: go on with the next one.
                    data = self._d.unused_data
                    if data:
                        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = self._d.unconsumed_tail
        except zlib.error as err:
            self.gzip_error = f"corrupt gzip stream after {self._out} decompressed bytes ({err})"

    def finish(self) -> ContentScan:
        """After the last chunk: a stream that did not reach its end is truncated."""
        if self.gzip_error is None and self._d is not None and not self._d.eof:
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
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data, first = first, b""
        while data:
            while data:
                yield d.decompress(data, OUT_CHUNK)
                if d.eof:
                    data = d.unused_data
                    if data:
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = d.unconsumed_tail
            data = fh.read(CHUNK)
        yield d.flush()
