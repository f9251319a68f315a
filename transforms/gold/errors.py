"""Errors of the gold publish step."""

from __future__ import annotations

from ingestion.core.errors import HeadwaterError
from ingestion.core.reasons import RunCode


class GoldError(HeadwaterError):
    """Gold cannot be published for a dataset."""

    code = RunCode.GOLD


class NoGoldDeclaredError(GoldError):
    def __init__(self, dataset: str) -> None:
        super().__init__(f"dataset {dataset!r} declares no gold (set gold=Gold(...) in its schema)")
        self.dataset = dataset


class MissingSilverError(GoldError):
    def __init__(self, gold: str, dataset: str, path: str) -> None:
        super().__init__(
            f"gold {gold!r} reads silver {dataset!r}, but {path} is not a Delta table yet "
            f"(run `headwater run curate --dataset {dataset}` first)"
        )
        self.gold = gold
        self.dataset = dataset


class GoldContractError(GoldError):
    """The transform's output breaks the gold contract; nothing was committed."""

    def __init__(self, gold: str, problems: list[str]) -> None:
        super().__init__(
            f"gold {gold!r} output breaks its contract, nothing committed: " + "; ".join(problems)
        )
        self.gold = gold
        self.problems = problems
