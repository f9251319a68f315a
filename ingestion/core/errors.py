"""headwater's exceptions. Each names the input and what is wrong with it.

Every headwater error carries its reason code (``code``, a member of ``ingestion.core.reasons``)
and whether it is ``transient`` (the same call may succeed later: storage, cluster, a lease) or
terminal (retrying cannot help: bad content, a bad contract). :func:`classify` answers the same
for any exception, and :func:`one_line` gives the message the run ledger and the CLI show.
"""

from __future__ import annotations

from ingestion.core.reasons import Code, FileCode, PathCode, RunCode


class HeadwaterError(Exception):
    """Base of all headwater errors.

    Attributes:
        code: the reason code (class default, or set per instance).
        transient: True when retrying may succeed.
    """

    code: Code = RunCode.UNKNOWN
    transient: bool = False


class ConfigError(HeadwaterError):
    """Settings are missing or contradictory."""

    code = RunCode.CONFIG


class SettingsError(ConfigError):
    """Settings are unknown or invalid; each problem names its setting and what would be valid.

    Attributes:
        problems: one line per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# --- storage -----------------------------------------------------------------------------------
class StorageError(HeadwaterError):
    """A lake operation failed (transient: the same call may succeed once the store answers)."""

    code = RunCode.STORAGE
    transient = True


class NotFoundError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: does not exist")
        self.path = path


class AlreadyExistsError(StorageError):
    """An exclusive create found the object already there (another writer won)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: already exists")
        self.path = path


class PreconditionFailedError(StorageError):
    """A conditional write saw another etag than expected (somebody else wrote in between)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: changed by another writer")
        self.path = path


# --- contracts ---------------------------------------------------------------------------------
class ContractError(HeadwaterError):
    """A dataset contract in ``schemas/`` is invalid."""

    code = RunCode.CONTRACT

    def __init__(self, dataset: str, problems: list[str]) -> None:
        self.dataset = dataset
        self.problems = problems
        super().__init__(f"dataset {dataset!r}: " + "; ".join(problems))


class UnknownDatasetError(HeadwaterError):
    """No contract in ``schemas/`` has this name."""

    code = RunCode.UNKNOWN_DATASET

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no dataset named {name!r} (known: {', '.join(known) or 'none'})")
        self.name = name


# --- events ------------------------------------------------------------------------------------
class RejectedPathError(HeadwaterError):
    """A landing path is hostile or belongs to no dataset."""

    def __init__(self, path: str, reason: str, code: PathCode) -> None:
        super().__init__(f"{path!r}: {reason}")
        self.path = path
        self.reason = reason
        self.code = code


# --- jobs --------------------------------------------------------------------------------------
class LeaseHeldError(HeadwaterError):
    """Another run holds the dataset's single-writer lease (transient: it ends)."""

    code = RunCode.LEASE_HELD
    transient = True

    def __init__(self, dataset: str, owner: str, expires_at: float) -> None:
        super().__init__(
            f"dataset {dataset!r} is being written by run {owner} (lease until {expires_at:.0f})"
        )
        self.dataset = dataset
        self.owner = owner
        self.expires_at = expires_at


class FileRejectedError(HeadwaterError):
    """A landed file cannot be read at all; it goes to quarantine with this reason."""

    def __init__(self, path: str, reason: str, code: FileCode) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.code: FileCode = code


class BatchFailedError(HeadwaterError):
    """A dataset's batch failed after its retries; an operator retries or abandons it."""

    code = RunCode.BATCH_FAILED

    def __init__(self, dataset: str, batch: int, reason: str) -> None:
        super().__init__(
            f"batch {batch} of {dataset!r} failed ({reason}); decide with "
            f"`headwater batches retry --dataset {dataset} --batch {batch}` or `... abandon ...`"
        )
        self.dataset = dataset
        self.batch = batch
        self.reason = reason


# --- classification ----------------------------------------------------------------------------
MAX_LINE = 300


def classify(exc: BaseException) -> tuple[Code, bool]:
    """The reason code of ``exc`` and whether it is transient.

    Headwater errors say it themselves; storage and network errors (``OSError``, the Azure SDK's)
    are transient ``storage``; the engine's (py4j, pyspark) are transient ``spark``; anything
    else is ``unknown`` and transient, so a caller retries it up to its attempt bound.
    """
    if isinstance(exc, HeadwaterError):
        return exc.code, exc.transient
    module = type(exc).__module__ or ""
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)) or module.startswith(("azure.", "urllib3")):
        return RunCode.STORAGE, True
    if module.startswith(("py4j", "pyspark")):
        return RunCode.SPARK, True
    return RunCode.UNKNOWN, True


def one_line(exc: BaseException) -> str:
    """The error's message on one line: for a JVM error its innermost cause, never a trace."""
    text = ""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:  # walk to the root cause: that is what names the file or the fault
            cause = java
            for _ in range(20):
                nxt = cause.getCause()
                if nxt is None:
                    break
                cause = nxt
            text = str(cause.toString())
        except Exception:  # noqa: BLE001 - the JVM may be gone; fall back to the Python text
            text = ""
    if not text:
        text = str(exc) or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if line.startswith("An error occurred while calling") and len(lines) > 1:
        line = lines[1].lstrip(": ")
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def describe(exc: BaseException) -> str:
    """``"<code>: <one line>"``: what the run ledger's ``error`` and the CLI show."""
    code, _ = classify(exc)
    return f"{code}: {one_line(exc)}"
