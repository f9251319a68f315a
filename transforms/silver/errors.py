"""Errors of the curate (bronze -> silver) and replay jobs."""

from __future__ import annotations

from ingestion.core.errors import HeadwaterError
from ingestion.core.reasons import RunCode


class CurateError(HeadwaterError):
    """The curate job cannot run for a dataset (bad input, contract or transform)."""

    def __init__(self, dataset: str, reason: str, code: RunCode) -> None:
        super().__init__(f"curate {dataset!r}: {reason}")
        self.dataset = dataset
        self.reason = reason
        self.code = RunCode(code)
        # Another curate run won the race: the same run succeeds later. The rest is terminal.
        self.transient = self.code is RunCode.CONCURRENT_RUN


class UnsupportedTypeError(CurateError):
    """A contract column has a type bronze strings cannot be cast to."""

    def __init__(self, dataset: str, column: str, dtype: str) -> None:
        super().__init__(
            dataset,
            f"column {column!r} has type {dtype}, which cannot be cast from bronze strings",
            RunCode.UNSUPPORTED_TYPE,
        )
