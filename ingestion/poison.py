"""Poison handling: a landed blob whose handling keeps failing is parked, not retried forever.

Each failure of one version of a file (path + etag) is counted in the system zone. A transient
failure (``ingestion.core.errors.classify``: storage, the engine, an unknown exception) below the
bound propagates, so the trigger's own retry (the Functions host redelivers) tries again; at the
bound, or at once for a terminal failure (retrying cannot help), the file is parked with its
reason code and the call returns normally, so the host stops retrying it and every other blob
carries on. A parked version stays parked until
released; a new version of the file (new etag) starts afresh.

Layout::

    system/poison/_attempts/<key>.json      failures so far of one version (deleted on success)
    system/poison/<dataset>/<key>.json     a parked version, with its reason
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

from ingestion.core.errors import AlreadyExistsError, PreconditionFailedError, classify, one_line
from ingestion.core.reasons import Code
from ingestion.core.storage import Storage
from ingestion.events.ledger import UNROUTED, entry_key

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    at: float
    error: str  # exception type and message
    code: str  # a reason code (ingestion.core.reasons); records before the enums hold class names
    transient: bool = True


@dataclass(frozen=True)
class PoisonRecord:
    """One parked version of a landed file."""

    dataset: str
    path: str  # landing-relative
    etag: str
    size: int | None
    attempts: int
    reason: str  # the last error
    reason_code: str
    first_failed_at: float
    parked_at: float
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return entry_key(self.path, self.etag)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PoisonRecord:
        data = json.loads(raw)
        data["failures"] = tuple(Failure(**f) for f in data.get("failures", ()))
        return cls(**data)


@dataclass
class Guarded(Generic[T]):
    """The outcome of :meth:`PoisonBox.guard`: the value, or the record when parked."""

    value: T | None = None
    parked: PoisonRecord | None = None
    already_parked: bool = False


class PoisonBox:
    """Counts failures per file version and parks a version after ``max_attempts``."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.time,
        keep_failures: int = 10,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.storage = storage
        self.max_attempts = max_attempts
        self.clock = clock
        self.keep_failures = keep_failures

    # --- paths ---------------------------------------------------------------------------------
    @staticmethod
    def _attempts_path(key: str) -> str:
        return f"system/poison/_attempts/{key}.json"

    @staticmethod
    def _parked_path(dataset: str, key: str) -> str:
        return f"system/poison/{dataset}/{key}.json"

    # --- the guard -----------------------------------------------------------------------------
    def guard(
        self,
        fn: Callable[[], T],
        *,
        path: str,
        etag: str,
        dataset: str | None,
        size: int | None = None,
    ) -> Guarded[T]:
        """Run ``fn`` for one file version, counting failures and parking at the bound.

        Raises:
            Exception: ``fn``'s error while attempts remain (the trigger retries).
        """
        dataset = dataset or UNROUTED
        key = entry_key(path, etag)
        parked = self.get(dataset, key)
        if parked is not None:
            log.warning("%s (etag %s) is parked: %s", path, etag, parked.reason)
            return Guarded(parked=parked, already_parked=True)
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - counted, then re-raised or parked
            record = self.record_failure(err, path=path, etag=etag, dataset=dataset, size=size)
            if record is None:
                raise
            return Guarded(parked=record)
        self.storage.delete(self._attempts_path(key))
        return Guarded(value=value)

    def record_failure(
        self,
        err: BaseException,
        *,
        path: str,
        etag: str,
        dataset: str,
        size: int | None = None,
        code: Code | None = None,
    ) -> PoisonRecord | None:
        """Count one failure; park and return the record at the bound, or at once when terminal."""
        key = entry_key(path, etag)
        found, transient = classify(err)
        failure = Failure(
            at=self.clock(),
            error=f"{type(err).__name__}: {one_line(err)}",
            code=str(code or found),
            transient=transient,
        )
        failures = self._add_failure(key, failure)
        log.warning(
            "handling %s (etag %s) failed, attempt %d of %d: %s",
            path,
            etag,
            len(failures),
            self.max_attempts,
            failure.error,
        )
        if transient and len(failures) < self.max_attempts:
            return None
        record = PoisonRecord(
            dataset=dataset,
            path=path,
            etag=etag,
            size=size,
            attempts=len(failures),
            reason=failure.error,
            reason_code=failure.code,
            first_failed_at=failures[0].at,
            parked_at=self.clock(),
            failures=tuple(failures[-self.keep_failures :]),
        )
        try:
            self.storage.write_bytes(self._parked_path(dataset, key), record.to_json(), exclusive=True)
        except AlreadyExistsError:
            pass  # a concurrent delivery parked it first
        self.storage.delete(self._attempts_path(key))
        log.error(
            "parked %s (etag %s) of %s after %d attempts: %s\n%s",
            path,
            etag,
            dataset,
            record.attempts,
            record.reason,
            "".join(traceback.format_exception_only(type(err), err)).strip(),
        )
        return record

    def _add_failure(self, key: str, failure: Failure) -> list[Failure]:
        path = self._attempts_path(key)
        for _ in range(20):
            info = self.storage.info(path)
            if info is None:
                body = json.dumps([asdict(failure)]).encode()
                try:
                    self.storage.write_bytes(path, body, exclusive=True)
                    return [failure]
                except AlreadyExistsError:
                    continue
            current = [Failure(**f) for f in json.loads(self.storage.read_bytes(path))]
            new = [*current, failure]
            try:
                self.storage.write_bytes(
                    path, json.dumps([asdict(f) for f in new]).encode(), if_match=info.etag
                )
                return new
            except PreconditionFailedError:
                continue
        raise PreconditionFailedError(path)

    # --- reading and releasing -----------------------------------------------------------------
    def attempts(self, path: str, etag: str) -> int:
        """Failures counted so far for a version that is not parked."""
        p = self._attempts_path(entry_key(path, etag))
        if not self.storage.exists(p):
            return 0
        return len(json.loads(self.storage.read_bytes(p)))

    def get(self, dataset: str, key: str) -> PoisonRecord | None:
        p = self._parked_path(dataset, key)
        info = self.storage.info(p)
        if info is None:
            return None
        return PoisonRecord.from_json(self.storage.read_bytes(p))

    def parked(self, dataset: str | None = None) -> Iterator[PoisonRecord]:
        """Every parked version (of one dataset, or all), in path order of their records."""
        prefix = f"system/poison/{dataset}" if dataset else "system/poison"
        for obj in self.storage.list(prefix):
            if obj.path.startswith("system/poison/_attempts/") or not obj.path.endswith(".json"):
                continue
            yield PoisonRecord.from_json(self.storage.read_bytes(obj.path))

    def release(self, dataset: str, key: str) -> bool:
        """Unpark a version so the next delivery (or reconcile) handles it again."""
        p = self._parked_path(dataset, key)
        if not self.storage.exists(p):
            return False
        self.storage.delete(p)
        log.info("released parked %s/%s", dataset, key)
        return True

    def report(self) -> dict[str, list[dict[str, object]]]:
        """Parked versions by dataset, for status output."""
        out: dict[str, list[dict[str, object]]] = {}
        for rec in self.parked():
            out.setdefault(rec.dataset, []).append(
                {
                    "path": rec.path,
                    "etag": rec.etag,
                    "attempts": rec.attempts,
                    "reason": rec.reason,
                    "reason_code": rec.reason_code,
                    "parked_at": rec.parked_at,
                }
            )
        return out
