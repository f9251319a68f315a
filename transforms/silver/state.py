"""The curate watermark: the last bronze version whose rows reached silver/quarantine.

``system/curate/<dataset>.json`` = ``{"bronze_version": W, "pending": null | {"after", "upto",
"run_id"}}``, replaced with conditional writes (etag). A run first records the range it is about
to write as ``pending``; its Delta writes carry ``txnAppId``/``txnVersion = upto``. If the run dies
after some of its writes, the next run finds ``pending``, redoes exactly that range (Delta skips
the writes already committed) and only then advances the watermark: exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingestion.core.errors import AlreadyExistsError, PreconditionFailedError
from ingestion.core.lease import Lease
from ingestion.core.reasons import RunCode
from transforms.silver.errors import CurateError

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings
    from ingestion.core.storage import Storage

SILVER_SCOPE = "silver"


def writer_lease(storage: Storage, dataset: str, *, owner: str, settings: Settings | None) -> Lease:
    """The single-writer lease of the dataset's silver side (curate and replay share it), untaken.

    The job lifecycle (``ingestion.core.lifecycle.job_run``) takes it, waiting up to the run's
    ``lease_wait``, and releases it after the run is recorded. Held with a heartbeat; the job
    checks it before each write.
    """
    lease = Lease(storage, dataset, scope=SILVER_SCOPE, owner=owner)
    if settings is not None:
        lease.seconds = settings.lease_seconds
    return lease


def state_path(dataset: str) -> str:
    return f"system/curate/{dataset}.json"


@dataclass
class CurateState:
    dataset: str
    bronze_version: int = -1
    pending: dict[str, Any] | None = None
    etag: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {"dataset": self.dataset, "bronze_version": self.bronze_version, "pending": self.pending},
            sort_keys=True,
        ).encode()


def load(storage: Storage, dataset: str) -> CurateState:
    path = state_path(dataset)
    info = storage.info(path)
    if info is None:
        return CurateState(dataset)
    try:
        data = json.loads(storage.read_bytes(path))
    except ValueError as err:
        raise CurateError(dataset, f"{path} is not valid JSON ({err})", RunCode.BAD_STATE) from None
    return CurateState(dataset, int(data["bronze_version"]), data.get("pending"), info.etag)


def save(storage: Storage, state: CurateState) -> CurateState:
    """Replace the state only if nobody changed it since we read it."""
    path = state_path(state.dataset)
    try:
        if state.etag is None:
            info = storage.write_bytes(path, state.to_json(), exclusive=True)
        else:
            info = storage.write_bytes(path, state.to_json(), if_match=state.etag)
    except (PreconditionFailedError, AlreadyExistsError):
        raise CurateError(
            state.dataset, f"{path} was changed by another curate run", RunCode.CONCURRENT_RUN
        ) from None
    state.etag = info.etag
    return state
