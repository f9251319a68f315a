"""Errors of asset registration, drift, vacuum and trace."""

from __future__ import annotations

from ingestion.core.errors import HeadwaterError
from ingestion.core.reasons import RunCode


class AssetError(HeadwaterError):
    """An asset operation failed."""

    code = RunCode.ASSET


class AssetNotFoundError(AssetError):
    def __init__(self, name: str, version: int | None = None, known: list[str] | None = None) -> None:
        what = f"{name}:{version}" if version is not None else name
        hint = f" (known: {', '.join(known)})" if known else ""
        super().__init__(f"no registered asset {what}{hint}")
        self.name = name
        self.version = version


class GoldNotPublishedError(AssetError):
    def __init__(self, gold: str, path: str) -> None:
        super().__init__(f"gold {gold!r} has no Delta table at {path} yet: run `headwater run publish` first")
        self.gold = gold


class LoadCheckError(AssetError):
    """The asset, read back through Azure ML's reader, does not match the pinned Delta version."""

    def __init__(self, asset: str, path: str, problems: list[str]) -> None:
        super().__init__(
            f"asset {asset} at {path} does not load as registered, not registering: " + "; ".join(problems)
        )
        self.asset = asset
        self.path = path
        self.problems = problems


class RegistryUnavailableError(AssetError):
    """The registry could not be reached or refused our credentials; gold is untouched."""

    transient = True

    def __init__(self, registry: str, reason: str, code: RunCode | str) -> None:
        # A str is read as a RunCode (the retryable ``http_<status>`` codes included).
        super().__init__(
            f"{registry} registry unavailable ({code}): {reason}; gold is untouched "
            "and the registration is retried on the next run"
        )
        self.registry = registry
        self.reason = reason
        self.code = RunCode(code)


class VacuumRefusedError(AssetError):
    """VACUUM would delete files that live asset versions still read."""

    def __init__(self, table: str, needed: dict[str, int], samples: list[str]) -> None:
        versions = ", ".join(f"{label} ({n} file(s))" for label, n in sorted(needed.items()))
        super().__init__(
            f"refusing to vacuum {table}: live asset version(s) {versions} still need files it "
            f"would delete, e.g. {', '.join(samples[:3])}; retain longer, or archive a version first "
            "(`headwater assets archive NAME:VERSION`)"
        )
        self.table = table
        self.needed = needed
        self.samples = samples


class TraceError(AssetError):
    """A trace cannot start from the given path or asset."""
