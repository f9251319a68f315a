"""Which storage events mean "a file is complete in landing", and where it is. Pure; no I/O.

ADLS Gen2 raises ``BlobCreated`` for a ``CreateFile`` (length 0, before any data is written)
and again when the writer flushes with ``close=true``. Only completed writes count:
``FlushWithClose`` (DFS API), ``PutBlob`` and ``PutBlockList`` (Blob API). The Event Grid
subscription filters on ``data.api`` already (see functions/README.md); this module checks again,
because a subscription without the filter must not turn into half-written files being ingested.

A file renamed into place raises only ``BlobRenamed`` (and a directory ``DirectoryRenamed``):
those count too, at their destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from ingestion.core.reasons import EventCode

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_RENAMED = "Microsoft.Storage.BlobRenamed"
DIRECTORY_RENAMED = "Microsoft.Storage.DirectoryRenamed"
COMPLETED_WRITE_APIS = frozenset({"FlushWithClose", "PutBlob", "PutBlockList"})

_SUBJECT_PREFIX = "/blobServices/default/containers/"


@dataclass(frozen=True)
class Landed:
    """A completed file (or a directory of them) at ``container``/``name``."""

    kind: Literal["file", "directory"]
    container: str
    name: str
    event_type: str
    api: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class Ignored:
    """An event that must not become an ingest, with why."""

    reason_code: EventCode
    reason: str
    event_type: str | None = None
    event_id: str | None = None


def classify(
    event_type: str, subject: str | None, data: dict[str, Any] | None, *, event_id: str | None = None
) -> Landed | Ignored:
    """Decide what one Event Grid storage event means for landing.

    Args:
        event_type: e.g. ``Microsoft.Storage.BlobCreated``.
        subject: ``/blobServices/default/containers/<c>/blobs/<path>``.
        data: the event's ``data`` object.
        event_id: the event's id, carried into the verdict for logs.

    Returns:
        Landed (a completed write to landing) or Ignored, with the reason.
    """
    data = data or {}
    api = data.get("api")
    if event_type == BLOB_CREATED:
        if api not in COMPLETED_WRITE_APIS:
            return Ignored(
                EventCode.INCOMPLETE_WRITE,
                f"BlobCreated by {api or 'an unnamed API'} is not a completed write "
                f"(only {', '.join(sorted(COMPLETED_WRITE_APIS))} count)",
                event_type,
                event_id,
            )
        where = _location(data.get("url"), subject)
        if where is None:
            return Ignored(EventCode.NO_LOCATION, "event names no blob URL or subject", event_type, event_id)
        return Landed("file", *where, event_type=event_type, api=api, event_id=event_id)
    if event_type in (BLOB_RENAMED, DIRECTORY_RENAMED):
        where = _location(data.get("destinationUrl"), subject)
        if where is None:
            return Ignored(EventCode.NO_LOCATION, "rename event names no destination", event_type, event_id)
        kind: Literal["file", "directory"] = "file" if event_type == BLOB_RENAMED else "directory"
        return Landed(kind, *where, event_type=event_type, api=api, event_id=event_id)
    return Ignored(EventCode.EVENT_TYPE, f"{event_type} does not land a file", event_type, event_id)


def _location(url: str | None, subject: str | None) -> tuple[str, str] | None:
    if url:
        parsed = parse_blob_url(url)
        if parsed is not None:
            return parsed
    if subject:
        return parse_subject(subject)
    return None


def parse_subject(subject: str) -> tuple[str, str] | None:
    """``/blobServices/default/containers/landing/blobs/orders/a.csv`` -> ("landing", "orders/a.csv")."""
    if not subject.startswith(_SUBJECT_PREFIX):
        return None
    container, sep, name = subject[len(_SUBJECT_PREFIX) :].partition("/blobs/")
    if not sep or not container or not name:
        return None
    return container, name


def parse_blob_url(url: str) -> tuple[str, str] | None:
    """(container, blob name) of a blob or DFS URL; path-style emulator URLs included.

    ``https://acct.blob.core.windows.net/landing/orders/a%20b.csv`` -> ("landing", "orders/a b.csv");
    ``http://127.0.0.1:10000/devstoreaccount1/landing/x.csv`` -> ("landing", "x.csv").
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.path:
        return None
    parts = parsed.path.lstrip("/").split("/")
    host = parsed.hostname or ""
    # Path-style (Azurite, IP hosts, localhost): the first segment is the account.
    if host in ("localhost",) or host.replace(".", "").isdigit() or ":" in host:
        parts = parts[1:]
    if len(parts) < 2 or not parts[0] or not all(parts[1:]):
        return None
    return unquote(parts[0]), unquote("/".join(parts[1:]))
