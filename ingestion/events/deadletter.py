"""Event Grid's dead-lettered events: list them, and replay them through the Functions' handler.

Where Event Grid puts them (Microsoft's documentation, checked when this module was written):

* "Set dead-letter location and retry policy"
  (https://learn.microsoft.com/azure/event-grid/manage-event-delivery): the blob names carry the
  event subscription's name in upper case, then the UTC date and hour *without zero padding*,
  e.g. ``myblobcontainer/MY-BLOB-SUBSCRIPTION/2019/8/8/5/111111111-1111-1111-1111-111111111111.json``
  (``.../YYYY/M/D/H/...``); a blob holds one or more events in a JSON array.
* "Event Grid message delivery and retry", section "Delivery event formats"
  (https://learn.microsoft.com/azure/event-grid/delivery-and-retry): a dead-lettered event in the
  Event Grid schema is the event as published (``id``, ``eventTime``, ``eventType``, ``subject``,
  ``data``, ``dataVersion``, ``metadataVersion``, ``topic``) plus ``deadLetterReason`` (e.g.
  ``MaxDeliveryAttemptsExceeded``), ``deliveryAttempts``, ``lastDeliveryOutcome``,
  ``publishTime`` and ``lastDeliveryAttemptTime``. In the CloudEvents 1.0 schema the same
  properties are lower case (``type``, ``deadletterreason``, ``deliveryattempts``...).
  ``lastHttpStatusCode`` appears beside them for HTTP outcomes (``UndeliverableDueToHttpBadRequest``
  with 400, ``MaxDeliveryAttemptsExceeded`` with 408 after time-outs).

headwater's subscriptions (``landing-blob``, ``landing-renames`` in infra/main.json) deliver the
Event Grid schema and dead-letter into ``settings.lake.deadletter_container`` of the lake account,
so their blobs sit under ``LANDING-BLOB/`` and ``LANDING-RENAMES/``. A local lake keeps the same
layout in the folder ``<lake root>/<deadletter_container>/``; both are read on the same code path
(:class:`DeadLetterSource`).

Replay hands every event to the handler the Functions use (``LandingRuntime.on_event``), with its
id. The ledger records each landed file version once, so an event that was delivered after all
(on a retry, or by the reconcile sweep) comes back ``duplicate`` and changes nothing.

A blob whose events were all handled is recorded as replayed by a **marker** in the system area,
``system/deadletter/replayed/<blob name>.json``, holding the blob's etag and each event's outcome.
The dead-letter blob itself is never moved or deleted: moving is a copy and a delete on a
container only the Event Grid topic's identity may write (infra grants it there), and a copy and
a delete are not one atomic step; the marker is one write, made only after every event of the
blob is recorded, and lives next to the ledger it vouches for. A later replay skips a blob whose
marker names its current etag (a blob rewritten under the same name is replayed again, which the
ledger makes harmless). A blob with a failing event gets no marker and stays for the next replay;
a malformed blob (not JSON, not an array, an element that is no event) is reported with its
reason, never blocks the others, and also stays. Removing replayed blobs is left to a lifecycle
rule or a person (``headwater deadletter list`` says which are replayed).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ingestion.core.config import Settings
from ingestion.core.errors import AlreadyExistsError, ConfigError, StorageError
from ingestion.core.storage import LocalStorage, Storage, split_zone

if TYPE_CHECKING:  # pragma: no cover
    from azure.storage.blob import ContainerClient

log = logging.getLogger(__name__)

MARKERS = "system/deadletter/replayed"
# A dead-letter blob is read whole; Event Grid writes a few events per blob. Anything larger is
# reported (and left in place) rather than read into memory.
MAX_BLOB_BYTES = 64 * 1024 * 1024

# <SUBSCRIPTION>/<yyyy>/<M>/<d>/<H>/<guid>.json, month, day and hour not zero-padded.
_LAYOUT = re.compile(
    r"^(?P<sub>[^/]+)/(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<h>\d{1,2})/[^/]+\.json$"
)


# --- what the container holds ------------------------------------------------------------------
@dataclass(frozen=True)
class BlobRef:
    """One blob (or local file) of the dead-letter container."""

    name: str  # relative to the container: LANDING-BLOB/2026/12/7/9/<guid>.json
    etag: str
    size: int
    modified: datetime


class DeadLetterSource(Protocol):
    """The dead-letter container: an Azure container, or its folder next to a local lake."""

    container: str

    def list(self, prefix: str = "") -> Iterator[BlobRef]:
        """Every blob whose name starts with ``prefix``."""
        ...

    def read(self, name: str) -> bytes:
        """The blob's bytes."""
        ...


class BlobDeadLetters:
    """The dead-letter container of the lake account, through the Blob API.

    Args:
        client: a ``ContainerClient`` (from the lake's ``BlobServiceClient``: same credential,
            ``DefaultAzureCredential`` on Azure or the connection string for Azurite).
    """

    def __init__(self, client: ContainerClient) -> None:
        self.client = client
        self.container = client.container_name

    def list(self, prefix: str = "") -> Iterator[BlobRef]:
        """Blobs below ``prefix`` in name order, without the folder placeholders of an HNS account."""
        from azure.core.exceptions import ResourceNotFoundError

        from ingestion.core.storage.azure_blob import is_directory, normalize_etag

        try:
            # The lake account has a hierarchical namespace: LANDING-BLOB/2026/... are directories
            # there, listed by the Blob API as empty blobs marked hdi_isfolder. They hold no events.
            for props in self.client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                if is_directory(props):
                    continue
                yield BlobRef(
                    name=props.name,
                    etag=normalize_etag(props.etag),
                    size=int(props.size or 0),
                    modified=props.last_modified or datetime.now(timezone.utc),
                )
        except ResourceNotFoundError:
            raise StorageError(
                f"dead-letter container {self.container!r} does not exist in the lake account "
                "(settings.lake.deadletter_container)"
            ) from None

    def read(self, name: str) -> bytes:
        """One download of the whole blob."""
        return self.client.download_blob(name, max_concurrency=1).readall()


class LocalDeadLetters:
    """The dead-letter container as a folder: ``<lake root>/<container>/`` with the same names."""

    def __init__(self, root: str | Path, container: str) -> None:
        self.root = Path(root).resolve()
        self.container = container
        self.folder = self.root / container

    def list(self, prefix: str = "") -> Iterator[BlobRef]:
        """Files below the folder whose relative name starts with ``prefix`` (hidden ones skipped)."""
        from ingestion.core.storage.local import _etag  # the lake's own etags for local files

        if not self.folder.is_dir():
            return
        for fs in sorted(self.folder.rglob("*")):
            rel = fs.relative_to(self.folder).as_posix()
            if not fs.is_file() or any(p.startswith(".") for p in rel.split("/")):
                continue
            if not rel.startswith(prefix):
                continue
            st = fs.stat()
            yield BlobRef(rel, _etag(st), st.st_size, datetime.fromtimestamp(st.st_mtime, tz=timezone.utc))

    def read(self, name: str) -> bytes:
        """The file's bytes; a name that leaves the folder is refused."""
        fs = (self.folder / name).resolve()
        if not fs.is_relative_to(self.folder):
            raise StorageError(f"{name!r}: not inside the dead-letter folder")
        return fs.read_bytes()


def open_deadletters(settings: Settings, storage: Storage) -> DeadLetterSource:
    """The dead-letter container ``settings.lake.deadletter_container`` of the lake ``storage``.

    On Azure (and Azurite) the container client comes from the lake's own ``BlobServiceClient``,
    so it authenticates as the lake does. A local lake keeps the container as a folder beside its
    zones.

    Raises:
        ConfigError: ``storage`` is neither a BlobStorage nor a LocalStorage.
    """
    container = settings.lake.deadletter_container
    if isinstance(storage, LocalStorage):
        return LocalDeadLetters(storage.root, container)
    try:
        from ingestion.core.storage.azure_blob import BlobStorage  # azure SDKs only where configured
    except ImportError:  # no Azure SDK installed: the lake cannot be a BlobStorage either
        BlobStorage = None  # type: ignore[assignment,misc]
    if BlobStorage is not None and isinstance(storage, BlobStorage):
        return BlobDeadLetters(storage.service.get_container_client(container))
    raise ConfigError(f"the dead-letter container cannot be reached through {type(storage).__name__}")


# --- parsed -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetteredEvent:
    """One event of a dead-letter blob, with why Event Grid gave up on it.

    ``error`` is set (and the event fields may be None) when the array element is no event.
    """

    blob: str
    subscription: str
    index: int  # position in the blob's array
    event_id: str | None
    event_type: str | None
    subject: str | None
    reason: str | None  # deadLetterReason
    attempts: int | None  # deliveryAttempts
    last_outcome: str | None  # lastDeliveryOutcome
    last_http_status: int | None  # lastHttpStatusCode
    publish_time: str | None  # publishTime, ISO 8601 as Event Grid wrote it
    last_attempt_time: str | None  # lastDeliveryAttemptTime
    event_time: str | None  # eventTime
    data: dict[str, Any] | None = field(default=None, repr=False)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("data")
        return out


@dataclass(frozen=True)
class DeadLetterBlob:
    """One dead-letter blob: its events, or why it cannot be read as dead-lettered events."""

    name: str
    subscription: str
    etag: str
    size: int
    modified: datetime
    dead_lettered_hour: datetime | None  # the UTC hour its name carries; None off the layout
    events: tuple[DeadLetteredEvent, ...] = ()
    error: str | None = None  # not JSON, not an array, unreadable...
    replayed: bool = False  # a marker records this version as replayed
    unreadable: bool = False  # ``error`` is a failed read (may pass next time), not the content

    @property
    def malformed(self) -> bool:
        """The blob, or one of its array elements, is not what Event Grid writes."""
        if self.error is not None:
            return not self.unreadable
        return any(e.error for e in self.events)

    def problems(self) -> list[str]:
        """Why the blob is malformed (empty when it is not)."""
        if self.error is not None:
            return [self.error]
        return [f"event #{e.index}: {e.error}" for e in self.events if e.error]

    def summary(self) -> dict[str, Any]:
        return {
            "blob": self.name,
            "subscription": self.subscription,
            "etag": self.etag,
            "size": self.size,
            "modified": self.modified.isoformat(),
            "dead_lettered_hour": self.dead_lettered_hour.isoformat() if self.dead_lettered_hour else None,
            "replayed": self.replayed,
            "error": "; ".join(self.problems()) or None,
            "unreadable": self.unreadable,
            "events": [e.summary() for e in self.events],
        }


def parse_name(name: str) -> tuple[str, datetime | None]:
    """``LANDING-BLOB/2026/12/7/9/<guid>.json`` -> ``("LANDING-BLOB", 2026-12-07 09:00 UTC)``.

    A name off the layout keeps its first segment as the subscription and no hour.
    """
    m = _LAYOUT.match(name)
    if m is None:
        return name.split("/", 1)[0], None
    try:
        hour = datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["h"]), tzinfo=timezone.utc)
    except ValueError:  # 2026/13/40/25: digits, but no date
        hour = None
    return m["sub"], hour


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` allowed, UTC when no offset is given).

    Raises:
        ValueError: not an ISO 8601 date or time.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _get(event: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present (Event Grid schema first, then CloudEvents' lower case)."""
    for key in keys:
        if key in event:
            return event[key]
    return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _event(blob: str, subscription: str, index: int, raw: Any) -> DeadLetteredEvent:
    def bad(why: str) -> DeadLetteredEvent:
        return DeadLetteredEvent(
            blob, subscription, index, None, None, None, None, None, None, None, None, None, None, error=why
        )

    if not isinstance(raw, dict):
        return bad(f"not a JSON object but {type(raw).__name__}")
    event_type = _get(raw, "eventType", "type")
    if not isinstance(event_type, str) or not event_type:
        return bad("no eventType")
    subject = _get(raw, "subject")
    if subject is not None and not isinstance(subject, str):
        return bad("subject is not a string")
    data = raw.get("data")
    if data is not None and not isinstance(data, dict):
        return bad("data is not a JSON object")
    return DeadLetteredEvent(
        blob=blob,
        subscription=subscription,
        index=index,
        event_id=_str(raw.get("id")),
        event_type=event_type,
        subject=subject,
        reason=_str(_get(raw, "deadLetterReason", "deadletterreason")),
        attempts=_int(_get(raw, "deliveryAttempts", "deliveryattempts")),
        last_outcome=_str(_get(raw, "lastDeliveryOutcome", "lastdeliveryoutcome")),
        last_http_status=_int(_get(raw, "lastHttpStatusCode", "lasthttpstatuscode")),
        publish_time=_str(_get(raw, "publishTime", "publishtime")),
        last_attempt_time=_str(_get(raw, "lastDeliveryAttemptTime", "lastdeliveryattempttime")),
        event_time=_str(_get(raw, "eventTime", "time")),
        data=data,
    )


def parse_blob(ref: BlobRef, raw: bytes) -> DeadLetterBlob:
    """The events of one dead-letter blob, or why it holds none (never raises)."""
    subscription, hour = parse_name(ref.name)
    base = DeadLetterBlob(ref.name, subscription, ref.etag, ref.size, ref.modified, hour)
    try:
        content = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        return _with(base, error=f"not JSON ({type(err).__name__}: {err})")
    if not isinstance(content, list):
        return _with(base, error=f"not a JSON array of events but a JSON {type(content).__name__}")
    if not content:
        return _with(base, error="an empty array: no events")
    return _with(base, events=tuple(_event(ref.name, subscription, i, e) for i, e in enumerate(content)))


def _with(blob: DeadLetterBlob, **changes: Any) -> DeadLetterBlob:
    from dataclasses import replace

    return replace(blob, **changes)


# --- markers ----------------------------------------------------------------------------------
def marker_path(name: str) -> str | None:
    """``system/deadletter/replayed/<blob name>.json``, or None when the name is no lake path."""
    path = f"{MARKERS}/{name}.json"
    try:
        split_zone(path)
    except StorageError:
        return None
    if any(not seg for seg in name.split("/")):
        return None
    return path


def _marker(storage: Storage, name: str) -> dict[str, Any] | None:
    path = marker_path(name)
    if path is None or not storage.exists(path):
        return None
    try:
        data = json.loads(storage.read_bytes(path))
    except ValueError:
        return None  # an unreadable marker vouches for nothing: replay again (idempotent)
    return data if isinstance(data, dict) else None


def _is_replayed(storage: Storage, ref: BlobRef) -> bool:
    marker = _marker(storage, ref.name)
    return marker is not None and marker.get("etag") == ref.etag


# --- list -------------------------------------------------------------------------------------
def _selected(refs: Iterator[BlobRef], since: datetime | None) -> list[BlobRef]:
    keep = []
    for ref in refs:
        _, hour = parse_name(ref.name)
        # Hour granularity: the blob of 09:00-09:59 may hold events after `since`=09:30. A name off
        # the layout carries no time: it is kept (shown, never silently left out).
        if since is not None and hour is not None and hour + timedelta(hours=1) <= since:
            continue
        keep.append(ref)
    return keep


def _order(blob: DeadLetterBlob) -> tuple[str, datetime, str]:
    # By time, not by name: unpadded numbers sort 10 before 9 as text.
    return blob.subscription, blob.dead_lettered_hour or datetime.max.replace(tzinfo=timezone.utc), blob.name


def list_deadletters(
    source: DeadLetterSource,
    storage: Storage,
    *,
    subscription: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetterBlob]:
    """Every dead-letter blob with its events, oldest first per subscription.

    Args:
        source: the dead-letter container (:func:`open_deadletters`).
        storage: the lake, whose system area holds the replay markers.
        subscription: only this event subscription's blobs (any case: names are upper case).
        since: only blobs of this UTC hour or later (the hour their name carries; a naive time
            is UTC).

    Returns:
        One :class:`DeadLetterBlob` per blob; a blob that cannot be read or parsed carries its
        ``error`` (and is listed all the same).
    """
    prefix = f"{subscription.strip('/').upper()}/" if subscription else ""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    blobs = []
    for ref in _selected(source.list(prefix), since):
        blob = _read(source, ref)
        if marker_path(ref.name) is None:
            blob = _with(blob, error=blob.error or f"name {ref.name!r} cannot key a replay marker")
        blobs.append(_with(blob, replayed=_is_replayed(storage, ref)))
    return sorted(blobs, key=_order)


def _read(source: DeadLetterSource, ref: BlobRef) -> DeadLetterBlob:
    if ref.size > MAX_BLOB_BYTES:
        subscription, hour = parse_name(ref.name)
        return DeadLetterBlob(
            ref.name,
            subscription,
            ref.etag,
            ref.size,
            ref.modified,
            hour,
            error=f"{ref.size} bytes: larger than {MAX_BLOB_BYTES}, not read",
        )
    try:
        raw = source.read(ref.name)
    except Exception as err:  # noqa: BLE001 - one unreadable blob is reported, the others go on
        subscription, hour = parse_name(ref.name)
        return DeadLetterBlob(
            ref.name,
            subscription,
            ref.etag,
            ref.size,
            ref.modified,
            hour,
            error=f"unreadable: {_describe(err)}",
            unreadable=True,
        )
    return parse_blob(ref, raw)


# --- replay -----------------------------------------------------------------------------------
class EventSink(Protocol):
    """What handles one Event Grid event: ``LandingRuntime.on_event`` (the Functions' handler)."""

    def __call__(
        self,
        event_type: str,
        subject: str | None,
        data: dict[str, Any] | None,
        *,
        event_id: str | None = ...,
    ) -> Sequence[object]: ...


BlobStatus = Literal["replayed", "skipped", "failed", "malformed", "pending"]


@dataclass
class EventReplay:
    """One event handed to the handler: what it came to, or the error it raised."""

    index: int
    event_id: str | None
    event_type: str | None
    subject: str | None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class BlobReplay:
    """What replay did with one blob.

    ``status``: ``replayed`` (every event handled; marker written), ``skipped`` (already replayed),
    ``failed`` (an event raised, or the marker could not be written: the blob stays for the next
    replay), ``malformed`` (not events; its valid events, if any, were still handled), ``pending``
    (a dry run: would be replayed).
    """

    blob: str
    subscription: str
    status: BlobStatus
    events: list[EventReplay] = field(default_factory=list)
    reason: str | None = None
    marker: str | None = None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReplayReport:
    """Every blob one replay looked at."""

    blobs: list[BlobReplay] = field(default_factory=list)
    dry_run: bool = False

    @property
    def failed(self) -> list[BlobReplay]:
        """Blobs left in need of a person or a later replay (failed or malformed)."""
        return [b for b in self.blobs if b.status in ("failed", "malformed")]

    def counts(self) -> dict[str, int]:
        return dict(Counter(b.status for b in self.blobs))

    def outcomes(self) -> dict[str, int]:
        """How many handled files came to each outcome (queued, duplicate, ignored...)."""
        counted: Counter[str] = Counter()
        for b in self.blobs:
            for e in b.events:
                counted.update(str(o.get("outcome")) for o in e.outcomes)
                if e.error:
                    counted["error"] += 1
        return dict(counted)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "blobs": [b.summary() for b in self.blobs],
            "counts": self.counts(),
            "outcomes": self.outcomes(),
            "failed": len(self.failed),
        }


def replay(
    source: DeadLetterSource,
    storage: Storage,
    handler: EventSink,
    *,
    subscription: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> ReplayReport:
    """Hand every dead-lettered event to ``handler`` again; record each fully handled blob.

    Args:
        source: the dead-letter container (:func:`open_deadletters`).
        storage: the lake: its system area gets the markers (the handler writes the ledger).
        handler: ``LandingRuntime.on_event`` or its equivalent, called as
            ``handler(event_type, subject, data, event_id=id)`` for each event.
        subscription: only this event subscription's blobs.
        since: only blobs of this UTC hour or later.
        dry_run: say what would be replayed; call nothing, write nothing.
        clock: seconds since the epoch, for the marker's ``replayed_at``.

    Returns:
        The report: one :class:`BlobReplay` per blob, in :func:`list_deadletters` order. Errors
        of one blob or event are recorded there; this function raises only when the container
        cannot be listed.
    """
    report = ReplayReport(dry_run=dry_run)
    for blob in list_deadletters(source, storage, subscription=subscription, since=since):
        report.blobs.append(_replay_blob(blob, storage, handler, dry_run=dry_run, clock=clock))
    return report


def _replay_blob(
    blob: DeadLetterBlob, storage: Storage, handler: EventSink, *, dry_run: bool, clock: Callable[[], float]
) -> BlobReplay:
    marker = marker_path(blob.name)
    result = BlobReplay(blob.name, blob.subscription, "pending", marker=marker)
    if blob.replayed:
        result.status, result.reason = "skipped", "already replayed (its marker names this etag)"
        return result
    if blob.error is not None:
        log.warning("dead-letter blob %s: %s", blob.name, blob.error)
        result.status, result.reason = ("failed" if blob.unreadable else "malformed"), blob.error
        return result
    if dry_run:
        result.events = [
            EventReplay(e.index, e.event_id, e.event_type, e.subject, error=e.error) for e in blob.events
        ]
        if blob.malformed:
            result.status, result.reason = "malformed", "; ".join(blob.problems())
        return result
    for event in blob.events:
        result.events.append(_replay_event(event, handler))
    errors = [f"event #{e.index} ({e.event_id}): {e.error}" for e in result.events if e.error]
    if blob.malformed:
        result.status, result.reason = "malformed", "; ".join(blob.problems())
        return result
    if errors:
        result.status, result.reason = "failed", "; ".join(errors)
        return result
    assert marker is not None  # list_deadletters marks an unkeyable name as an error
    try:
        _write_marker(storage, marker, blob, result, clock())
    except Exception as err:  # noqa: BLE001 - events are recorded; the next replay finds them duplicate
        result.status, result.reason = "failed", f"events handled, marker not written: {_describe(err)}"
        return result
    result.status = "replayed"
    return result


def _replay_event(event: DeadLetteredEvent, handler: EventSink) -> EventReplay:
    done = EventReplay(event.index, event.event_id, event.event_type, event.subject)
    if event.error is not None or event.event_type is None:
        done.error = event.error or "no eventType"
        return done
    try:
        results = handler(event.event_type, event.subject, event.data, event_id=event.event_id)
    except Exception as err:  # noqa: BLE001 - the blob stays; the next replay tries again
        log.warning(
            "replaying dead-lettered event %s of %s failed", event.event_id, event.blob, exc_info=True
        )
        done.error = _describe(err)
        return done
    done.outcomes = [_outcome(r) for r in results]
    return done


def _outcome(result: object) -> dict[str, Any]:
    summary = getattr(result, "summary", None)
    if callable(summary):
        out = summary()
        if isinstance(out, dict):
            return out
    if is_dataclass(result) and not isinstance(result, type):
        return asdict(result)
    return {"outcome": str(result)}


def _write_marker(storage: Storage, path: str, blob: DeadLetterBlob, done: BlobReplay, now: float) -> None:
    body = json.dumps(
        {
            "blob": blob.name,
            "subscription": blob.subscription,
            "etag": blob.etag,
            "size": blob.size,
            "replayed_at": now,
            "events": [asdict(e) for e in done.events],
        },
        sort_keys=True,
        default=str,
    ).encode()
    try:
        storage.write_bytes(path, body, exclusive=True)
    except AlreadyExistsError:
        # A marker of an older version under the same name (or a concurrent replay's): this
        # replay's outcomes for this version replace it.
        storage.write_bytes(path, body)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


__all__ = [
    "MARKERS",
    "BlobDeadLetters",
    "BlobRef",
    "BlobReplay",
    "DeadLetterBlob",
    "DeadLetterSource",
    "DeadLetteredEvent",
    "EventReplay",
    "EventSink",
    "LocalDeadLetters",
    "ReplayReport",
    "list_deadletters",
    "marker_path",
    "open_deadletters",
    "parse_blob",
    "parse_name",
    "parse_time",
    "replay",
]
