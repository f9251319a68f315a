"""Which gold tables a dataset feeds, and in which order to publish them.

A gold declares its inputs by name (``Gold.inputs``). A name is a silver input when it names a
dataset of the catalog, else a gold input when it names another dataset's gold (so a gold may
read a gold). After curating dataset ``D``, a pipeline run publishes every gold that reads
``D``'s silver, then every gold reading one of those, and so on: :func:`golds_fed_by` returns
them in dependency order (a gold after each gold it reads). A cycle is a contract error.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from ingestion.core.errors import ContractError
from ingestion.core.lake import gold_table, silver_table

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.contracts import Catalog, Dataset, Gold


def _golds(catalog: Catalog) -> dict[str, tuple[Dataset, Gold]]:
    return {ds.gold.name: (ds, ds.gold) for ds in catalog if ds.gold is not None}


def gold_input_names(catalog: Catalog, gold: Gold) -> list[str]:
    """The inputs of ``gold`` that are other golds (a dataset's name is always its silver)."""
    datasets = set(catalog.names())
    golds = _golds(catalog)
    return [name for name in gold.inputs if name not in datasets and name in golds]


def input_tables(catalog: Catalog | None, gold: Gold) -> dict[str, str]:
    """Each input of ``gold`` and the lake table it is read from.

    Args:
        catalog: the datasets; without it every input is a silver table.
        gold: the gold declaration.

    Returns:
        ``{input name: "silver/<name>" or "gold/<name>"}``, in declaration order.
    """
    golds = set(gold_input_names(catalog, gold)) if catalog is not None else set()
    return {name: gold_table(name) if name in golds else silver_table(name) for name in gold.inputs}


def golds_fed_by(catalog: Catalog, dataset: str) -> list[tuple[Dataset, Gold]]:
    """Every gold that reads ``dataset``'s silver, directly or through other golds, in order.

    Args:
        catalog: the datasets.
        dataset: the dataset whose silver changed.

    Returns:
        ``(owning dataset, gold)`` pairs; a gold comes after every gold it reads.

    Raises:
        ContractError: the golds read each other in a cycle.
    """
    golds = _golds(catalog)
    reads_gold = {name: set(gold_input_names(catalog, g)) for name, (_, g) in golds.items()}
    reached: set[str] = set()
    frontier = {name for name, (_, g) in golds.items() if dataset in g.inputs and dataset in catalog.names()}
    while frontier:
        reached |= frontier
        frontier = {n for n, inputs in reads_gold.items() if n not in reached and inputs & reached}
    graph = {name: sorted(reads_gold[name] & reached) for name in sorted(reached)}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        cycle = " -> ".join(err.args[1]) if len(err.args) > 1 else "?"
        raise ContractError("gold", [f"golds read each other in a cycle: {cycle}"]) from None
    return [golds[name] for name in order]


__all__ = ["gold_input_names", "golds_fed_by", "input_tables"]
