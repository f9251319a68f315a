"""The Functions SQL trigger's batches, persisted before the function returns.

What the trigger hands the function (Azure SQL bindings extension): a JSON array, oldest change
first, of ``{"Item": {<columns>}, "Operation": <op>}``. ``Operation`` is a number outside .NET
(0 insert, 1 update, 2 delete), a name inside it; a delete's ``Item`` holds only the key
columns; several changes to one row between polls arrive once, in their last state. There is no
change version in the payload, so these files carry no ``_change_seq``: the dataset orders them
by its declared ``sequence_by`` column if the table has one, else by landing order.

The trigger skips a batch forever after 5 failed attempts, so :func:`land_trigger_batch` makes
the batch durable first (the change file, then its ledger entry) and never raises after the file
is written: anything failing later is left to the reconcile sweep, which records every landing
file the ledger lacks. A payload that is not such an array is kept whole in quarantine with its
reason, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ingestion.changes.columns import from_items
from ingestion.changes.landing import LandedChanges, land_changes
from ingestion.core import lake
from ingestion.core.errors import HeadwaterError
from ingestion.core.reasons import FileCode

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.changes.sources import SqlSource
    from ingestion.contracts import Dataset
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)


class ChangePayloadError(HeadwaterError):
    """A SQL trigger payload that is not a JSON array of ``{"Item": {...}, "Operation": ...}``.

    Attributes:
        source: the source's name.
        reason: what is wrong, naming the entry.
    """

    code = FileCode.BAD_CHANGES
    transient = False

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"SQL trigger batch of source {source!r}: {reason}")
        self.source = source
        self.reason = reason


def trigger_rows(payload: str | bytes | list[Any], *, source: str) -> list[dict[str, Any]]:
    """The trigger's changes as change rows: the item's columns plus ``_change_op``.

    The operation is kept as sent (0/1/2 or a name); curate normalizes it and quarantines a
    change whose operation it does not know.

    Raises:
        ChangePayloadError: not JSON, not an array, or an entry without an object ``Item`` or
            without ``Operation``; the message names the entry.
    """
    try:
        changes = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    except ValueError as err:
        raise ChangePayloadError(source, f"not JSON ({err})") from None
    if not isinstance(changes, list):
        raise ChangePayloadError(source, f"a JSON {type(changes).__name__}, not an array of changes")
    rows = []
    for i, change in enumerate(changes):
        if not isinstance(change, dict):
            raise ChangePayloadError(source, f"entry {i} is a {type(change).__name__}, not an object")
        item, op = change.get("Item"), change.get("Operation")
        if not isinstance(item, dict):
            raise ChangePayloadError(source, f"entry {i} has no object Item")
        if op is None:
            raise ChangePayloadError(source, f"entry {i} has no Operation")
        if lake.CHANGE_OP in item:
            raise ChangePayloadError(source, f"entry {i}: the table has a column named {lake.CHANGE_OP}")
        rows.append({**item, lake.CHANGE_OP: str(op)})
    return rows


@dataclass(frozen=True)
class TriggerOutcome:
    """What became of one trigger batch: ``landed`` (with the file) or ``quarantined``."""

    outcome: str
    changes: int
    landed: LandedChanges | None = None
    quarantined: str | None = None
    reason: str | None = None
    recorded: Any = None  # what the ledger step returned (None when it failed: the sweep records it)


def land_trigger_batch(
    storage: Storage,
    dataset: Dataset,
    source: SqlSource,
    payload: str | bytes,
    *,
    record: Callable[[LandedChanges], Any],
    clock: Callable[[], float] = time.time,
) -> TriggerOutcome:
    """Persist one SQL trigger batch as a change file, then record it; never raise after the write.

    Args:
        storage: the lake.
        dataset: the dataset the source feeds.
        source: the source.
        payload: the trigger's JSON text, as received.
        record: records the landed file in the ledger and lets batching decide (the Function
            runtime's ``handle_file``).
        clock: seconds since the epoch (names the file: landing order is arrival order).

    Returns:
        The outcome.
    """
    raw = payload.encode() if isinstance(payload, str) else payload
    digest = hashlib.sha256(raw).hexdigest()[:12]
    stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"trigger-{stamp}-{digest}"
    try:
        rows = trigger_rows(raw, source=source.name)
    except ChangePayloadError as err:
        path = f"{lake.quarantine_files(dataset.name)}/{source.name}/{name}.json"
        storage.write_bytes(path, raw)
        reason = {
            "code": err.code.value,
            "reason": err.reason,
            "source": source.name,
            "dataset": dataset.name,
        }
        storage.write_bytes(f"{path}.reason.json", json.dumps(reason, indent=1).encode())
        log.error("SQL trigger batch of %s quarantined as %s: %s", source.name, path, err.reason)
        return TriggerOutcome("quarantined", 0, quarantined=path, reason=err.reason)
    if not rows:
        return TriggerOutcome("empty", 0)
    # What the batch's whole rows carry (a delete carries only its key: it says nothing).
    deletes = lake.CHANGE_OP_SPELLINGS["D"]
    carried = from_items(r for r in rows if str(r[lake.CHANGE_OP]).strip().upper() not in deletes)
    landed = land_changes(storage, dataset, source, rows, name=f"{name}.jsonl", columns=carried)
    try:  # the batch is durable now: nothing below may fail the invocation
        recorded = record(landed)
    except Exception:  # noqa: BLE001 - the reconcile sweep records the file
        log.exception("SQL trigger batch of %s landed as %s; recording it failed", source.name, landed.path)
        recorded = None
    return TriggerOutcome("landed", len(rows), landed=landed, recorded=recorded)
