"""Gold: silver -> curated Delta tables, per each dataset's ``gold=`` declaration."""

from transforms.gold.errors import GoldContractError, GoldError, MissingSilverError, NoGoldDeclaredError
from transforms.gold.publish import gold_commits, gold_of, inputs_at, publish

__all__ = [
    "GoldContractError",
    "GoldError",
    "MissingSilverError",
    "NoGoldDeclaredError",
    "gold_commits",
    "gold_of",
    "inputs_at",
    "publish",
]
