"""headwater's exceptions. Each names the input and what is wrong with it."""

from __future__ import annotations


class HeadwaterError(Exception):
    """Base of all headwater errors."""


class ConfigError(HeadwaterError):
    """Settings are missing or contradictory."""


# --- storage -----------------------------------------------------------------------------------
class StorageError(HeadwaterError):
    """A lake operation failed."""


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

    def __init__(self, dataset: str, problems: list[str]) -> None:
        self.dataset = dataset
        self.problems = problems
        super().__init__(f"dataset {dataset!r}: " + "; ".join(problems))


class UnknownDatasetError(HeadwaterError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no dataset named {name!r} (known: {', '.join(known) or 'none'})")
        self.name = name


# --- events ------------------------------------------------------------------------------------
class RejectedPathError(HeadwaterError):
    """A landing path is hostile or belongs to no dataset."""

    def __init__(self, path: str, reason: str, code: str) -> None:
        super().__init__(f"{path!r}: {reason}")
        self.path = path
        self.reason = reason
        self.code = code


# --- jobs --------------------------------------------------------------------------------------
class LeaseHeldError(HeadwaterError):
    """Another run holds the dataset's single-writer lease."""

    def __init__(self, dataset: str, owner: str, expires_at: float) -> None:
        super().__init__(
            f"dataset {dataset!r} is being written by run {owner} (lease until {expires_at:.0f})"
        )
        self.dataset = dataset
        self.owner = owner
        self.expires_at = expires_at


class FileRejectedError(HeadwaterError):
    """A landed file cannot be read at all; it goes to quarantine with this reason."""

    def __init__(self, path: str, reason: str, code: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.code = code
