"""Single-writer leases per dataset, on the lake itself (no extra service).

A lease is a small object in the system zone holding its owner and expiry. It is taken with an
exclusive create, or by compare-and-swap over an expired one, and renewed by a heartbeat while
the job runs. The CLI, ``watch``, ``backfill`` and a scheduler may race: exactly one wins, the
others wait (``wait=``) or exit with LeaseHeldError.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from ingestion.core.errors import AlreadyExistsError, LeaseHeldError, PreconditionFailedError
from ingestion.core.lake import lease_path
from ingestion.core.reasons import RunCode
from ingestion.core.storage import Storage

log = logging.getLogger(__name__)


class LeaseLostError(LeaseHeldError):
    """Our lease expired and somebody else took it while we ran."""

    code = RunCode.LEASE_LOST


class Lease:
    """A dataset's writer lease: one writer at a time, taken over when its holder stops renewing.

    ``with Lease(storage, "orders", owner=run_id, seconds=600).acquire(wait=30): ...``
    ``scope`` separates writer roles of one dataset: ingest (bronze) holds the plain lease,
    curate and replay (both write silver and quarantine) hold ``scope="silver"``, so an ingest
    and a curate of the same dataset may run together but two silver writers may not.
    """

    def __init__(
        self,
        storage: Storage,
        dataset: str,
        *,
        owner: str,
        scope: str | None = None,
        seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
        heartbeat: bool = True,
    ) -> None:
        self.storage = storage
        self.dataset = dataset
        self.owner = owner
        self.seconds = seconds
        self.clock = clock
        self.scope = scope
        self.path = lease_path(dataset, scope)
        self._etag: str | None = None
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    @property
    def _label(self) -> str:
        return self.dataset if self.scope is None else f"{self.dataset} ({self.scope})"

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": self.clock() + self.seconds}).encode()

    def _try_take(self) -> tuple[bool, str, float]:
        info = self.storage.info(self.path)
        if info is None:
            try:
                self._etag = self.storage.write_bytes(self.path, self._body(), exclusive=True).etag
                return True, self.owner, 0.0
            except AlreadyExistsError:
                return False, "?", 0.0
        try:
            held = json.loads(self.storage.read_bytes(self.path))
        except Exception:  # torn or removed between info and read: treat as contended
            return False, "?", 0.0
        if held["owner"] != self.owner and held["expires_at"] > self.clock():
            return False, held["owner"], held["expires_at"]
        try:
            self._etag = self.storage.write_bytes(self.path, self._body(), if_match=info.etag).etag
            if held["owner"] != self.owner:
                log.warning("took over expired lease on %s from %s", self.dataset, held["owner"])
            return True, self.owner, 0.0
        except PreconditionFailedError:
            return False, "?", 0.0

    def acquire(self, *, wait: float = 0.0, poll: float = 0.5) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds; else raise LeaseHeldError."""
        deadline = time.monotonic() + wait
        while True:
            ok, owner, until = self._try_take()
            if ok:
                break
            if time.monotonic() >= deadline:
                raise LeaseHeldError(self._label, owner, until)
            time.sleep(poll)
        if self._heartbeat:
            self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{self.dataset}")
            self._thread.start()
        return self

    def renew(self) -> None:
        """Extend the lease; raises LeaseLostError if another owner holds it now."""
        try:
            self._etag = self.storage.write_bytes(self.path, self._body(), if_match=self._etag).etag
        except PreconditionFailedError:
            self.lost = True
            raise LeaseLostError(self._label, "another run", 0.0) from None

    def check(self) -> None:
        """Raise if the heartbeat found the lease lost: stop before writing anything more."""
        if self.lost:
            raise LeaseLostError(self._label, "another run", 0.0)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLostError:
                log.error("lease on %s lost; the run will stop at its next check", self.dataset)
                return
            except Exception:  # transient storage error: try again next beat
                log.exception("lease renewal failed for %s", self.dataset)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._etag is not None and not self.lost:
            try:
                self.storage.delete(self.path, if_match=self._etag)
            except PreconditionFailedError:
                pass
        self._etag = None

    def __enter__(self) -> Lease:
        if self._etag is None:
            self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
