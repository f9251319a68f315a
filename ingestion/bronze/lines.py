r"""Bounded lines: records longer than ``max_line_bytes`` become rows with code ``line_too_long``.

Spark reads CSV and JSON lines through Hadoop's line reader. Given
``mapreduce.input.linerecordreader.line.maxlength`` it keeps at most that many bytes of a line in
memory and *skips* a line whose bytes, with its line break, reach the bound (a leading UTF-8 BOM
not counted), on Spark 3.5 and 4.x alike. Skipping silently would lose the record and shift every
later row's position, so:

1. :class:`LineScan` rides on the sha256 pass (fed the file's text bytes, decompressed for
   ``.gz``) and flags, at C speed, a file that *may* hold such a line: a run of bytes without a
   line break long enough.
2. For a flagged file only, :func:`long_lines` reads it once more, splitting lines exactly as
   Hadoop does (``\n``, ``\r\n`` and a lone ``\r`` end a line), and lists each long line with
   its position and its first :data:`HEAD_BYTES` bytes. Memory stays bounded by the chunk size.
3. The ingest job puts the skipped records back as bronze rows whose ``_parse_error`` starts with
   :data:`LINE_TOO_LONG` (silver quarantines them under that check) and corrects the
   ``_source_row`` of the rows Spark did deliver (:func:`delivered_before`).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingestion.contracts import Csv, FileFormat, JsonLines
from ingestion.core.lake import LINE_TOO_LONG

MAX_LINE_OPTION = "mapreduce.input.linerecordreader.line.maxlength"
HEAD_BYTES = 1024  # of a long line, kept as its quarantined raw record
BOM = b"\xef\xbb\xbf"
_BREAK = re.compile(rb"\r\n|\r|\n")
# What Scala's String.trim drops (bytes up to the space): CSV skips lines of only these.
_NONBLANK = re.compile(rb"[^\x00-\x20]")


def line_bounded(fmt: FileFormat) -> bool:
    """Is ``fmt`` read line by line, in an encoding whose line breaks are the ASCII bytes?

    Multi-line CSV and JSON arrays are parsed as whole streams, not lines; UTF-16/32 text has no
    single-byte line breaks for the line reader to find.
    """
    if isinstance(fmt, JsonLines):
        return True
    if isinstance(fmt, Csv) and not fmt.multiline:
        try:
            name = codecs.lookup(fmt.encoding).name
        except LookupError:
            return False
        return "\r\n".encode(name) == b"\r\n" and not name.startswith(("utf-16", "utf-32"))
    return False


class LineScan:
    """First pass: may this text hold a line of ``max_line`` bytes or more? Fed every chunk."""

    def __init__(self, max_line: int) -> None:
        # A line reaches the bound with at most 2 bytes of line break: flag runs this long.
        self._limit = max(1, max_line - 2)
        self._inner = re.compile(rb"[^\r\n]{%d}" % self._limit)
        self._run = 0  # bytes since the last line break
        self.flagged = False

    def feed(self, data: bytes) -> None:
        """The next bytes of the text, in order."""
        if self.flagged or not data:
            return
        last = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if last < 0:
            self._run += len(data)
        else:
            first = min(i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0)
            if self._run + first >= self._limit or (
                len(data) > self._limit and self._inner.search(data, first, last) is not None
            ):
                self.flagged = True
            self._run = len(data) - last - 1
        if self._run >= self._limit:
            self.flagged = True


@dataclass(frozen=True)
class LongLine:
    """One line the line reader skips."""

    line: int  # 1-based, every line counted
    size: int  # bytes with its line break (a leading BOM not counted)
    blank: bool  # only whitespace: CSV does not count it as a record
    head: bytes  # its first HEAD_BYTES bytes
    records_before: int  # records the reader delivers before it (see delivered_before)
    header: bool = False  # it is the CSV's header line: the file cannot be read as declared

    def message(self, max_line: int) -> str:
        """The row's ``_parse_error``."""
        return (
            f"{LINE_TOO_LONG}line {self.line} has {self.size} bytes with its line break; "
            f"max_line_bytes is {max_line} (its first {min(HEAD_BYTES, self.size)} bytes are kept)"
        )


def long_lines(chunks: Iterable[bytes], *, max_line: int, csv_header: bool, csv: bool) -> list[LongLine]:
    """Second pass over a flagged file's text: every line the reader skips, in file order.

    Args:
        chunks: the file's text bytes (decompressed), in order.
        max_line: the bound, in bytes with the line break.
        csv: count records as CSV does (whitespace-only lines are no records), else every line.
        csv_header: the CSV's first record is its header (not a record).

    Returns:
        The long lines, with the number of records the reader delivers before each.
    """
    found: list[LongLine] = []
    line = 0
    delivered = 0  # records delivered so far (long lines are not delivered)
    header_pending = csv and csv_header
    size = 0
    head = b""
    blank = True
    pending_cr = False  # the previous chunk ended in \r: a \n now belongs to that break
    first = True

    def end(breaks: int) -> None:
        nonlocal line, delivered, size, head, blank, header_pending, first
        line += 1
        total = size + breaks - (len(BOM) if first and head.startswith(BOM) else 0)
        first = False
        record = not (csv and blank)
        if total >= max_line:
            is_header = record and header_pending
            found.append(LongLine(line, total, blank, head, delivered, header=is_header))
            if is_header:
                header_pending = False  # the caller refuses the file
        elif record:
            if header_pending:
                header_pending = False
            else:
                delivered += 1
        size, head, blank = 0, b"", True

    def text(chunk: bytes, start: int, stop: int) -> None:
        # Indices, not slices: a line may fill whole chunks, and copies would double the memory.
        nonlocal size, head, blank
        if stop <= start:
            return
        size += stop - start
        if len(head) < HEAD_BYTES:
            head += chunk[start : min(stop, start + HEAD_BYTES - len(head))]
        if blank and _NONBLANK.search(chunk, start, stop) is not None:
            blank = False

    m: re.Match[bytes] | None = None
    for chunk in chunks:
        if not chunk:
            continue
        pos = 0
        if pending_cr:
            pending_cr = False
            if chunk.startswith(b"\n"):
                size += 1  # the \r already counted; \r\n is one break of 2 bytes
                pos = 1
            end(0)
        for m in _BREAK.finditer(chunk, pos):
            text(chunk, pos, m.start())
            pos = m.end()
            if m.group() == b"\r" and pos == len(chunk):
                size += 1
                pending_cr = True  # a \n may follow in the next chunk
                break
            end(len(m.group()))
        else:
            text(chunk, pos, len(chunk))
        m = None  # a match holds its chunk: let it go before the next one is read
    if pending_cr:
        end(0)
    elif size:
        end(0)  # the last line, without a break
    return found


def delivered_before(found: list[LongLine], *, csv: bool) -> list[int]:
    """Per long record, how many records the reader delivers before it, for row positions.

    A delivered record ``k`` (1-based, in delivery order) sits at position
    ``k + #{n in delivered_before(...) : n < k}`` once the long lines are counted again.
    """
    return [f.records_before for f in found if not (csv and f.blank) and not f.header]


__all__ = [
    "HEAD_BYTES",
    "LINE_TOO_LONG",
    "MAX_LINE_OPTION",
    "LineScan",
    "LongLine",
    "delivered_before",
    "line_bounded",
    "long_lines",
]
