"""Peak memory of the landing handler for a 200 MB blob against a 20 MB one (Azurite).

The handler binds the blob as a ``BlobClient`` and reads properties only, so its Python
allocations must not grow with the blob. When content is hashed (the ingest job's
``Storage.sha256``), it streams in chunks: bounded by the chunk size, not the blob's.
Figures are printed (``-s``) and recorded in functions/README.md.
"""

from __future__ import annotations

import gc
import hashlib
import io
import threading
import tracemalloc
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from ingestion.core.storage.azure_blob import GET_RANGE
from ingestion.core.storage.base import CHUNK

pytestmark = pytest.mark.azurite

MB = 1024 * 1024
LINE = b"O-0001,C-001,paid,12.50,1,2026-11-01,2026-11-02,2026-11-01T10:00:00\n"


# What the worker hands a function's `context` parameter: the host's trace of the invocation.
INVOCATION = SimpleNamespace(
    trace_context=SimpleNamespace(
        Traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate=""
    )
)


class _Pattern(io.RawIOBase):
    """``size`` bytes of CSV lines, generated as read (never the whole body in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = LINE * (CHUNK // len(LINE) + 1)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left, len(self.block))
        b[:n] = self.block[:n]
        self.left -= n
        return n


def _expected_sha256(size: int) -> str:
    digest, stream = hashlib.sha256(), _Pattern(size)
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _measure(fn: Callable[[], Any]) -> tuple[Any, int, int]:
    """(result, tracemalloc peak bytes, peak RSS growth bytes) of one call."""
    proc = psutil.Process()
    gc.collect()
    base = proc.memory_info().rss
    peak_rss = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak_rss[0] = max(peak_rss[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stop.set()
        sampler.join()
    peak_rss[0] = max(peak_rss[0], proc.memory_info().rss)
    return result, peak, peak_rss[0] - base


def test_handler_memory_is_bounded_for_a_200_mb_blob(runtime, azurite_storage, bind_blob, function):
    sizes = {"20MB": 20 * MB, "200MB": 200 * MB}
    landing_blob = function("landing_blob")
    figures: dict[str, dict[str, float]] = {}
    for label, size in sizes.items():
        name = f"orders/big-{label}.csv"
        # Writing it streams too: blocks of CHUNK bytes staged one at a time.
        info, put_peak, _ = _measure(partial(azurite_storage.write_stream, f"landing/{name}", _Pattern(size)))
        assert info.size == size
        blob = bind_blob(name)
        _, handler_peak, handler_rss = _measure(partial(landing_blob, blob, INVOCATION))
        digest, hash_peak, hash_rss = _measure(partial(azurite_storage.sha256, f"landing/{name}"))
        assert digest == _expected_sha256(sizes[label])
        figures[label] = {
            "upload_peak_mb": put_peak / MB,
            "handler_peak_mb": handler_peak / MB,
            "handler_rss_mb": handler_rss / MB,
            "hash_peak_mb": hash_peak / MB,
            "hash_rss_mb": hash_rss / MB,
        }

    print("\nlanding handler memory (tracemalloc peak / RSS growth):")
    for label, f in figures.items():
        print(
            f"  {label:>6}: handler {f['handler_peak_mb']:.2f} MB / {f['handler_rss_mb']:.1f} MB;"
            f" streamed sha256 {f['hash_peak_mb']:.2f} MB / {f['hash_rss_mb']:.1f} MB;"
            f" streamed upload {f['upload_peak_mb']:.2f} MB"
        )

    small, big = figures["20MB"], figures["200MB"]
    # All queued once, with their real sizes.
    assert sorted((e.path, e.size) for e in runtime.ledger.entries("orders")) == [
        ("orders/big-200MB.csv", 200 * MB),
        ("orders/big-20MB.csv", 20 * MB),
    ]
    # The handler reads no content: well under a megabyte whatever the blob's size.
    assert big["handler_peak_mb"] < 1.0
    assert big["handler_peak_mb"] < small["handler_peak_mb"] * 1.5 + 0.25
    # Hashing streams: bounded by the read size and the range size, the same for 20 MB and 200 MB.
    assert big["hash_peak_mb"] < (2 * CHUNK + 16 * GET_RANGE) / MB
    assert big["hash_peak_mb"] < small["hash_peak_mb"] * 1.2 + 1.0
    # So does writing: a few blocks, not the blob.
    assert big["upload_peak_mb"] < 6 * CHUNK / MB
    assert big["upload_peak_mb"] < small["upload_peak_mb"] * 1.2 + 1.0
