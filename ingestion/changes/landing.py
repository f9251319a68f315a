"""One path after landing: a batch of row changes becomes one JSON-lines file in landing.

Both ways in (the Functions SQL trigger, the change puller) write here, named by source and
position (version range, or arrival time for the trigger), so the file path takes over: the
ledger records the file once, ingest writes it to bronze exactly once with its lineage, and
curate applies it as CDC. A file is written whole and only if absent: landing the same name
twice (a retried pull of the same range) keeps the first and reports it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingestion.core.errors import AlreadyExistsError

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.changes.columns import SourceColumns
    from ingestion.changes.sources import SqlSource
    from ingestion.contracts import Dataset
    from ingestion.core.storage import Storage

_GLOB = re.compile(r"[*?\[{]")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.jsonl$")


@dataclass(frozen=True)
class LandedChanges:
    """A change file in landing: ``path`` is landing-relative; ``already`` when it was there."""

    path: str
    etag: str
    size: int
    rows: int
    already: bool = False


def source_landing_dir(dataset: Dataset, source: SqlSource) -> str:
    """``<the dataset's landing prefix>/<source>``: where the source's change files go."""
    parts = []
    for part in dataset.landing.split("/"):
        if _GLOB.search(part):
            break
        parts.append(part)
    return "/".join([*parts, source.name])


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[bytes, int]:
    """JSON lines, one change per line (dates and decimals as their text); and the row count."""
    lines = [json.dumps(dict(r), default=str, ensure_ascii=False) for r in rows]
    return ("\n".join(lines) + "\n").encode() if lines else b"", len(lines)


def land_changes(
    storage: Storage,
    dataset: Dataset,
    source: SqlSource,
    rows: Iterable[Mapping[str, Any]],
    *,
    name: str,
    columns: SourceColumns | None = None,
) -> LandedChanges:
    """Write ``rows`` as ``landing/<dir>/<name>``, durably, once.

    Args:
        storage: the lake.
        dataset: the dataset the source feeds.
        source: the source.
        rows: the changes, each with the table's columns and ``_change_op`` (``_change_seq``
            when the source has a change version).
        name: the file name (``<first>-<last>.jsonl``...): a letter or digit first, then
            letters, digits, ``.``, ``_``, ``-``; ending ``.jsonl``.
        columns: the columns the batch carried: recorded first, and named in the file name
            (``<name>.s<digest>.jsonl``), so ingest can judge a dropped or retyped column.

    Returns:
        The landed file (``already``: a file of that name was there; it is kept as it was).

    Raises:
        ValueError: ``name`` is not a valid change file name.
    """
    if not FILE_NAME.match(name):
        raise ValueError(f"change file name {name!r}: letters, digits, '.', '_', '-', ending .jsonl")
    data, count = encode_rows(rows)
    if columns is not None:
        columns.save(storage)  # before the file: a landed file always has its record
        name = columns.file_name(name)
    rel = f"{source_landing_dir(dataset, source)}/{name}"
    try:
        info = storage.write_bytes(f"landing/{rel}", data, exclusive=True)
        return LandedChanges(rel, info.etag, info.size, count)
    except AlreadyExistsError:
        have = storage.info(f"landing/{rel}")
        assert have is not None
        return LandedChanges(rel, have.etag, have.size, count, already=True)
