"""Apply an :class:`~ingestion.access.plan.AccessPlan` through ``azure-storage-file-datalake``.

Recursive steps call ``update_access_control_recursive`` (``mode=modify``: entries are merged
into each path's ACL; ``set_access_control_recursive`` would replace whole ACLs and is never
used) with ``continue_on_failure=True`` and a batch size, so one path the caller may not change
does not stop the rest; the SDK follows the service's continuation tokens from batch to batch,
and each batch's counts, failed entries and token go to the progress callback and the state
file. Traverse steps read the directory's ACL (``getAccessControl``) and write it back merged
(``setAccessControl``, conditional on the ETag read) only when an entry is missing, so a second
apply changes nothing.

A fatal error mid-way (the SDK raises an ``AzureError`` carrying ``continuation_token``) stops
the apply; the state file keeps each finished step and the cut step's token, and the next apply
skips the former and passes the token to the latter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ingestion.access.acl import MAX_ENTRIES, count, format_acl, merge, parse_acl
from ingestion.access.plan import AccessPlan, Step
from ingestion.access.state import ApplyState, StepRecord
from ingestion.core.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    from azure.storage.filedatalake import (
        AccessControlChanges,
        DataLakeDirectoryClient,
        DataLakeServiceClient,
        FileSystemClient,
    )

BATCH_SIZE = 2000  # the service's maximum records per setAccessControlRecursive call
ETAG_ATTEMPTS = 3  # reads and conditional writes of one traverse step before giving up

Status = Literal["applied", "unchanged", "skipped", "failed", "missing", "stopped", "not_run"]


@dataclass
class Failure:
    """A path whose ACL the service did not change.

    Attributes:
        name: the path, as the service names it.
        is_directory: whether it is a directory.
        message: the service's reason.
    """

    name: str
    is_directory: bool
    message: str


@dataclass
class StepResult:
    """What applying one step did.

    Attributes:
        kind: ``recursive`` or ``traverse``.
        container: the container.
        path: the directory in it (``""``: the root).
        entries: the step's entries.
        status: ``applied``; ``unchanged`` (a traverse step whose entries were all there);
            ``skipped`` (done by an earlier, cut apply); ``failed`` (some paths were not
            changed: see ``failures``); ``missing`` (the directory does not exist);
            ``stopped`` (a fatal error: see ``error``, resumable from ``continuation``);
            ``not_run`` (after a stop).
        done: the step is finished with no failure (the next apply skips it only while resuming).
        directories: directories whose ACL was changed (for a resumed step: in both applies).
        files: files whose ACL was changed.
        failure_count: paths that failed (the service's count).
        failures: the failed paths the service named.
        continuation: the token a cut recursive step resumes from.
        resumed: the step went on from an earlier apply's token.
        changed: a traverse step's entries that were added or widened.
        error: why the step stopped, is missing or failed as a whole.
    """

    kind: str
    container: str
    path: str
    entries: list[str]
    status: Status = "not_run"
    done: bool = False
    directories: int = 0
    files: int = 0
    failure_count: int = 0
    failures: list[Failure] = field(default_factory=list)
    continuation: str | None = None
    resumed: bool = False
    changed: list[str] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def of(cls, step: Step) -> StepResult:
        """A not-yet-run result for ``step``."""
        return cls(step.kind, step.container, step.path, [e.spec for e in step.entries])

    @property
    def where(self) -> str:
        """``<container>/<path>``."""
        return f"{self.container}/{self.path}"

    def to_json(self) -> dict[str, Any]:
        """The result as plain data (``--json``)."""
        return {
            "kind": self.kind,
            "container": self.container,
            "path": self.path,
            "entries": self.entries,
            "status": self.status,
            "done": self.done,
            "directories": self.directories,
            "files": self.files,
            "failure_count": self.failure_count,
            "failures": [
                {"name": f.name, "is_directory": f.is_directory, "message": f.message} for f in self.failures
            ],
            "continuation": self.continuation,
            "resumed": self.resumed,
            "changed": self.changed,
            "error": self.error,
        }


@dataclass
class ApplyResult:
    """What an apply did, step by step.

    Attributes:
        account: the storage account.
        steps: one result per plan step, in plan order.
        state_path: the resume state file (removed once every step is done).
    """

    account: str
    steps: list[StepResult]
    state_path: Path | None = None

    @property
    def ok(self) -> bool:
        """Every step is done, with no failure."""
        return all(s.done for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        """The result as plain data (``--json``)."""
        return {
            "account": self.account,
            "ok": self.ok,
            "state": str(self.state_path) if self.state_path else None,
            "steps": [s.to_json() for s in self.steps],
        }


Progress = Callable[[Step, StepResult], None]


def make_service_client(account_url: str) -> DataLakeServiceClient:
    """The account's DFS client, authenticated with ``DefaultAzureCredential``.

    Args:
        account_url: ``https://<account>.dfs.core.windows.net`` (``AccessPlan.account_url``).

    Returns:
        A ``DataLakeServiceClient``.
    """
    from azure.identity import DefaultAzureCredential
    from azure.storage.filedatalake import DataLakeServiceClient

    return DataLakeServiceClient(account_url=account_url, credential=DefaultAzureCredential())


def apply_plan(
    plan: AccessPlan,
    *,
    service: DataLakeServiceClient | None = None,
    state_path: Path | None = None,
    batch_size: int = BATCH_SIZE,
    create_missing: bool = False,
    progress: Progress | None = None,
) -> ApplyResult:
    """Apply ``plan``'s steps in order, resuming a cut apply from ``state_path``.

    Args:
        plan: what to change.
        service: the account's client; by default :func:`make_service_client`'s (closed after).
        state_path: the JSON resume state; None keeps none. Removed once every step is done.
        batch_size: paths per ``setAccessControlRecursive`` request (1 to 2000).
        create_missing: create a dataset folder that does not exist yet (so its default
            entries are there before the first write) instead of reporting it ``missing``.
        progress: called with the step and its running result after each batch of a recursive
            step and once more when the step ends (skipped and not-run steps included).

    Returns:
        One result per step. A fatal error stops at the step it cut (``stopped``); the steps
        after it are ``not_run``.

    Raises:
        ValueError: ``batch_size`` is out of range, or the state file is not one.
    """
    if not 1 <= batch_size <= BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {BATCH_SIZE}, not {batch_size}")
    state = ApplyState.load(plan.account, state_path)
    client = service if service is not None else make_service_client(plan.account_url)
    results: list[StepResult] = []
    stopped = False
    try:
        for step in plan.steps:
            rec = state.record(step)
            if stopped:
                results.append(StepResult.of(step))
            elif rec is not None and rec.done:
                results.append(_skipped(step, rec))
            else:
                fs = client.get_file_system_client(step.container)
                if step.recursive:
                    res = _recursive(fs, step, state, batch_size, create_missing, progress)
                else:
                    res = _traverse(fs, step, state)
                results.append(res)
                stopped = res.status == "stopped"
            if progress is not None:
                progress(step, results[-1])
    finally:
        if service is None:
            client.close()
    out = ApplyResult(plan.account, results, state_path)
    if out.ok:
        state.clear()
    return out


def _directory(fs: FileSystemClient, path: str) -> DataLakeDirectoryClient:
    """The directory's client; the container root is ``"/"`` (what the SDK's own root client uses)."""
    return fs.get_directory_client(path or "/")


def _skipped(step: Step, rec: StepRecord) -> StepResult:
    res = StepResult.of(step)
    res.status, res.done = "skipped", True
    res.directories, res.files = rec.directories, rec.files
    return res


def _recursive(
    fs: FileSystemClient,
    step: Step,
    state: ApplyState,
    batch_size: int,
    create_missing: bool,
    progress: Progress | None,
) -> StepResult:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    client = _directory(fs, step.path)
    rec = state.record(step)
    start = rec.continuation if rec is not None else None
    base = rec if rec is not None and start else StepRecord(step.acl)
    res = StepResult.of(step)
    res.resumed = start is not None
    res.directories, res.files, res.failure_count = base.directories, base.files, base.failure_count
    last: list[str | None] = [start]

    def hook(changes: AccessControlChanges) -> None:
        total = changes.aggregate_counters
        res.directories = base.directories + total.directories_successful
        res.files = base.files + total.files_successful
        res.failure_count = base.failure_count + total.failure_count
        res.failures.extend(Failure(f.name, f.is_directory, f.error_message) for f in changes.batch_failures)
        if changes.continuation:
            last[0] = changes.continuation
        state.put(step, StepRecord(step.acl, False, last[0], res.directories, res.files, res.failure_count))
        if progress is not None:
            progress(step, res)

    def run(token: str | None) -> Any:
        return client.update_access_control_recursive(
            acl=step.acl,
            continue_on_failure=True,
            batch_size=batch_size,
            continuation_token=token,
            progress_hook=hook,
        )

    try:
        try:
            outcome = run(start)
        except ResourceNotFoundError:
            if res.directories or res.files or last[0] != start:
                raise  # it vanished mid-way: a stop, not a missing folder
            if not create_missing or not step.path:
                return _missing(step, state, res)
            client.create_directory()
            outcome = run(None)
    except AzureError as err:
        # The SDK puts the token of the batch that failed on the error; a service error it
        # re-wraps loses it, so the last token a batch reported stands in.
        res.continuation = getattr(err, "continuation_token", None) or last[0]
        res.status, res.error = "stopped", one_line(err)
        state.put(
            step, StepRecord(step.acl, False, res.continuation, res.directories, res.files, res.failure_count)
        )
        return res
    counters = outcome.counters
    res.directories = base.directories + counters.directories_successful
    res.files = base.files + counters.files_successful
    res.failure_count = base.failure_count + counters.failure_count
    res.continuation = outcome.continuation
    if res.continuation:  # not with continue_on_failure and no max_batches; kept for resume
        res.status, res.error = "stopped", "the service left paths to process"
    elif res.failure_count:
        res.status = "failed"
    else:
        res.status, res.done = "applied", True
    state.put(
        step, StepRecord(step.acl, res.done, res.continuation, res.directories, res.files, res.failure_count)
    )
    return res


def _missing(step: Step, state: ApplyState, res: StepResult) -> StepResult:
    res.status = "missing"
    res.error = f"{step.where} does not exist yet: its grants (and default entries) are not there"
    state.put(step, StepRecord(step.acl))
    return res


def _traverse(fs: FileSystemClient, step: Step, state: ApplyState) -> StepResult:
    from azure.core import MatchConditions
    from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError

    client = _directory(fs, step.path)
    res = StepResult.of(step)
    try:
        for _ in range(ETAG_ATTEMPTS):
            props = client.get_access_control()
            merged, changed = merge(parse_acl(props.get("acl")), step.entries)
            if not changed:
                res.status, res.done = "unchanged", True
                break
            n = count(merged, default=False)
            if n > MAX_ENTRIES:
                res.status = "failed"
                res.error = (
                    f"{step.where}: {n} access ACL entries once merged exceed the limit of {MAX_ENTRIES}"
                )
                break
            etag = props.get("etag")
            try:
                if etag:
                    client.set_access_control(
                        acl=format_acl(merged), etag=etag, match_condition=MatchConditions.IfNotModified
                    )
                else:
                    client.set_access_control(acl=format_acl(merged))
            except ResourceModifiedError:
                continue  # changed between our read and write: read again
            res.status, res.done, res.directories = "applied", True, 1
            res.changed = [e.spec for e in changed]
            break
        else:
            res.status = "failed"
            res.error = f"{step.where}: its ACL changed under us {ETAG_ATTEMPTS} times"
    except ResourceNotFoundError:
        return _missing(step, state, res)
    except AzureError as err:
        res.status, res.error = "stopped", one_line(err)
    except ValueError as err:  # an entry of the service's ACL we cannot read
        res.status, res.error = "failed", f"{step.where}: {err}"
    state.put(step, StepRecord(step.acl, res.done, None, res.directories, 0, 0))
    return res
