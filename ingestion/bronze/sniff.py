"""Look at the first bytes of a landed file before Spark reads it.

Cheap checks that catch files Spark could not read at all (empty, binary garbage, wrong
compression, wrong encoding, a CSV header that shares nothing with the contract) and give the
CSV header, so each file is read by its own column names. Reads at most ``SNIFF_BYTES``.
"""

from __future__ import annotations

import codecs
import csv
import io
import zlib
from dataclasses import dataclass

from ingestion.contracts import Csv, Dataset, JsonArray, JsonLines, Parquet
from ingestion.core.errors import FileRejectedError
from ingestion.core.reasons import FileCode
from ingestion.core.storage import Storage

SNIFF_BYTES = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes told: CSV header names (raw, in file order) when CSV."""

    header: tuple[str, ...] | None = None


def is_gzip_name(path: str) -> bool:
    return path.lower().endswith(".gz")


def _head(storage: Storage, path: str, gz: bool) -> bytes:
    with storage.open_read(f"landing/{path}") as fh:
        raw = fh.read(SNIFF_BYTES)
    if not gz:
        return raw
    try:
        # A decompressor on a prefix: returns what those bytes hold, no need for the tail.
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, SNIFF_BYTES)
    except zlib.error as err:
        raise FileRejectedError(path, f"not valid gzip data ({err})", FileCode.BAD_GZIP) from None


def sniff(storage: Storage, ds: Dataset, path: str, size: int) -> Sniffed:
    """Reject what cannot be read; return the header for CSV files.

    Raises:
        FileRejectedError: with a reason code (empty, bad_gzip, binary, encoding, not_parquet,
            no_header, duplicate_columns, wrong_format, unknown_columns).
    """
    fmt = ds.format
    if size == 0:
        raise FileRejectedError(path, "file is empty (0 bytes)", FileCode.EMPTY)
    gz = is_gzip_name(path)
    with storage.open_read(f"landing/{path}") as fh:
        magic = fh.read(4)
    if gz and magic[:2] != GZIP_MAGIC:
        raise FileRejectedError(path, "named .gz but is not gzip-compressed", FileCode.BAD_GZIP)
    if not gz and magic[:2] == GZIP_MAGIC:
        raise FileRejectedError(
            path, "gzip-compressed content without a .gz name (rename it to *.gz)", FileCode.BAD_GZIP
        )
    if isinstance(fmt, Parquet):
        if magic != b"PAR1":
            raise FileRejectedError(path, "not a Parquet file (no PAR1 magic)", FileCode.NOT_PARQUET)
        return Sniffed()
    head = _head(storage, path, gz)
    if not head.strip():
        raise FileRejectedError(path, "file holds no data (only whitespace)", FileCode.EMPTY)
    if b"\x00" in head:
        raise FileRejectedError(path, "binary content (NUL bytes) in a text format", FileCode.BINARY)
    encoding = fmt.encoding if isinstance(fmt, Csv) else "utf-8"
    try:
        # The prefix may end inside a multi-byte character: decode incrementally, not final.
        text = codecs.getincrementaldecoder(encoding)(errors="strict").decode(head, final=False)
    except UnicodeDecodeError as err:
        raise FileRejectedError(
            path, f"not valid {encoding} text at byte {err.start}", FileCode.ENCODING
        ) from None
    except LookupError:
        raise FileRejectedError(path, f"unknown encoding {encoding!r}", FileCode.ENCODING) from None
    if isinstance(fmt, Csv):
        return Sniffed(header=_csv_header(ds, fmt, path, text))
    if isinstance(fmt, JsonArray) and not text.lstrip("\ufeff \t\r\n").startswith("["):
        raise FileRejectedError(path, "not a JSON array (does not start with '[')", FileCode.WRONG_FORMAT)
    if isinstance(fmt, JsonLines) and text.lstrip("\ufeff \t\r\n").startswith("["):
        raise FileRejectedError(
            path, "a JSON array, but the dataset expects JSON lines", FileCode.WRONG_FORMAT
        )
    return Sniffed()


def _csv_header(ds: Dataset, fmt: Csv, path: str, text: str) -> tuple[str, ...]:
    if not fmt.header:
        # Headerless CSV: the contract's columns, in declared order.
        return tuple(ds.column_names())
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=fmt.delimiter, quotechar=fmt.quote)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as err:
        raise FileRejectedError(path, f"no readable CSV header ({err})", FileCode.NO_HEADER) from None
    if not any(header):
        raise FileRejectedError(path, "CSV header is blank", FileCode.NO_HEADER)
    lowered = [h.lower() for h in header]
    dupes = sorted({h for h in lowered if lowered.count(h) > 1})
    if dupes:
        raise FileRejectedError(
            path, f"CSV header repeats columns: {', '.join(dupes)}", FileCode.DUPLICATE_COLUMNS
        )
    known = {c.lower() for c in ds.bronze_columns()}
    if not known & set(lowered):
        raise FileRejectedError(
            path,
            f"CSV header shares no column with the {ds.name!r} contract "
            f"(found {', '.join(header[:8])}{'...' if len(header) > 8 else ''})",
            FileCode.WRONG_FORMAT,
        )
    return tuple(header)
