"""The system area's format version: ``system/FORMAT.json`` = ``{"format": N}``.

Format history:

* 0: no marker. Lakes written before the commit index: ledger, manifests (with
  ``bronze_version``), curate state, run ledger and registry, and the tags in commitInfo.
* 1: adds ``system/commits/<table>/`` (see :mod:`ingestion.core.spark.commits`).

A lake of an older format is migrated in place (0 -> 1: the bronze commit index is rebuilt from
the manifests; silver, quarantine and gold indexes fill from the log, read once, on first use).
A lake of a newer format is refused: this code would misread it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from ingestion.core.errors import AlreadyExistsError, HeadwaterError
from ingestion.core.lake import batches_dir
from ingestion.core.storage import Storage

log = logging.getLogger(__name__)

FORMAT_PATH = "system/FORMAT.json"
CURRENT_FORMAT = 1
# What a lake of format 0 may hold (any of them present means "written by older code").
_V0_AREAS = ("system/ledger", "system/queue", "system/ingested", "system/batches", "system/curate")
_checked: set[str] = set()  # lakes this process has checked (one read per lake, not per call)


class LakeFormatError(HeadwaterError):
    """The lake's system area has a format this code cannot read."""

    def __init__(self, path: str, found: object, expected: int) -> None:
        super().__init__(
            f"{path}: the lake's system area has format {found!r}, this headwater reads format "
            f"{expected} (and migrates older ones); upgrade headwater to use this lake"
        )
        self.found = found
        self.expected = expected


def read_format(storage: Storage) -> int | None:
    """The lake's recorded format, or None when it has no marker.

    Raises:
        LakeFormatError: the marker is not a format number.
    """
    if not storage.exists(FORMAT_PATH):
        return None
    try:
        value = json.loads(storage.read_bytes(FORMAT_PATH))["format"]
    except (ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LakeFormatError(FORMAT_PATH, value, CURRENT_FORMAT)
    return value


def ensure_format(storage: Storage) -> int:
    """Check the lake's format before any read or write of the system area.

    A fresh lake gets the current marker; an older one is migrated and then marked; a newer one
    is refused.

    Args:
        storage: the lake.

    Returns:
        The format found before any migration (0 for a lake without marker).

    Raises:
        LakeFormatError: the lake was written by a newer headwater, or its marker is unreadable.
    """
    key = storage.uri(FORMAT_PATH)
    if key in _checked:
        return CURRENT_FORMAT
    found = read_format(storage)
    if found is None:
        found = 0 if any(next(iter(storage.list(a)), None) for a in _V0_AREAS) else CURRENT_FORMAT
    if found > CURRENT_FORMAT:
        raise LakeFormatError(FORMAT_PATH, found, CURRENT_FORMAT)
    if found < 1:
        migrated = _migrate_0_to_1(storage)
        log.info("lake format 0 -> 1: %d bronze commits indexed from manifests", migrated)
    if read_format(storage) != CURRENT_FORMAT:
        data = json.dumps({"format": CURRENT_FORMAT, "written_at": time.time()}).encode()
        try:
            storage.write_bytes(FORMAT_PATH, data, exclusive=found == CURRENT_FORMAT)
        except AlreadyExistsError:  # another process marked it first: check what it wrote
            if read_format(storage) != CURRENT_FORMAT:
                raise LakeFormatError(FORMAT_PATH, read_format(storage), CURRENT_FORMAT) from None
    _checked.add(key)
    return found


def _migrate_0_to_1(storage: Storage) -> int:
    """Index each committed batch's bronze version from its manifest (the record bronze had)."""
    from ingestion.core.spark.commits import COMMITS_DIR, Commit, CommitTag

    count = 0
    root = batches_dir("")  # "system/batches/"
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for obj in storage.list(root.rstrip("/")):
        if obj.path.endswith(".json"):
            data = json.loads(storage.read_bytes(obj.path))
            if data.get("status") == "committed" and data.get("bronze_version") is not None:
                by_dataset.setdefault(str(data["dataset"]), []).append(data)
    for dataset, manifests in by_dataset.items():
        table_dir = f"{COMMITS_DIR}/bronze/{dataset}"
        last = -1
        for m in manifests:
            version = int(m["bronze_version"])
            tag = CommitTag("bronze", dataset, int(m["batch"]))
            at = m.get("committed_at")
            when = None if at is None else datetime.fromtimestamp(float(at))
            commit = Commit(version, "WRITE", str(tag), {"numOutputRows": int(m.get("rows") or 0)}, when)
            path = f"{table_dir}/{version:020d}.json"
            if not storage.exists(path):
                storage.write_bytes(path, commit.to_json())
            last = max(last, version)
            count += 1
        # Only "last": the log after it (and any untagged commits) is still read once on first use.
        storage.write_bytes(f"{table_dir}/HEAD.json", json.dumps({"last": last, "scanned": -1}).encode())
    return count


__all__ = ["CURRENT_FORMAT", "FORMAT_PATH", "LakeFormatError", "ensure_format", "read_format"]
