"""Checks made in the one pass that already reads every landed file (its sha256).

The ingest job streams each file on the driver to hash it. :class:`ContentScan` is fed the same
chunks and decompresses a ``.gz`` file to its end (``zlib.decompressobj``), so a truncated or
corrupt stream is rejected as ``bad_gzip`` before Spark sees it, at no extra I/O. Memory stays
bounded: decompressed output is taken ``OUT_CHUNK`` bytes at a time and dropped.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

OUT_CHUNK = 1024 * 1024  # decompressed bytes handled at a time
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ContentScan:
    """Fed every chunk of one file; says whether its gzip stream is whole.

    Args:
        gz: the file is named ``.gz``. A file without gzip magic is left to the sniffer, which
            names that mistake more precisely.
    """

    gz: bool
    gzip_error: str | None = None
    _d: Any = field(default=None, repr=False)
    _started: bool = False
    _out: int = 0  # decompressed bytes so far

    def feed(self, chunk: bytes) -> None:
        """One chunk of the file's raw bytes, in order."""
        if not self.gz or self.gzip_error is not None or not chunk:
            return
        if not self._started:
            self._started = True
            if not chunk.startswith(GZIP_MAGIC):
                self.gz = False
                return
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = chunk
        try:
            while data:
                self._out += len(self._d.decompress(data, OUT_CHUNK))
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
