"""Which golds a dataset feeds: inputs naming datasets are silver, naming golds are gold;
readers of a gold come after it; a cycle is a contract error."""

from __future__ import annotations

import dataclasses

import pytest

from ingestion.contracts import Catalog, Gold
from ingestion.core.errors import ContractError
from transforms.gold.graph import golds_fed_by, input_tables


def _gold(name: str, *inputs: str) -> Gold:
    return Gold(name=name, build="transforms.gold.features:customer_features", inputs=inputs, keys=("k",))


def _catalog(catalog: Catalog, golds: dict[str, Gold | None]) -> Catalog:
    customers = catalog.get("customers")
    out = [dataclasses.replace(catalog.get("orders"), gold=golds.pop("orders", catalog.get("orders").gold))]
    out.append(dataclasses.replace(customers, gold=golds.pop("customers", None)))
    for i, (name, gold) in enumerate(golds.items()):
        out.append(dataclasses.replace(customers, name=name, landing=f"{name}{i}/**/*.jsonl", gold=gold))
    return Catalog(out)


def test_the_demo_gold_is_fed_by_both_of_its_inputs(catalog):
    assert [g.name for _, g in golds_fed_by(catalog, "orders")] == ["customer_features"]
    assert [(d.name, g.name) for d, g in golds_fed_by(catalog, "customers")] == [
        ("orders", "customer_features")
    ]
    gold = catalog.get("orders").gold
    assert input_tables(catalog, gold) == {"orders": "silver/orders", "customers": "silver/customers"}


def test_readers_of_a_gold_follow_it_and_unrelated_golds_are_left_out(catalog):
    cat = _catalog(
        catalog,
        {
            "customers": _gold("top", "mid", "customer_features"),
            "a": _gold("mid", "customer_features"),
            "b": _gold("elsewhere", "customers"),
        },
    )
    assert [g.name for _, g in golds_fed_by(cat, "orders")] == ["customer_features", "mid", "top"]
    assert [g.name for _, g in golds_fed_by(cat, "customers")] == [
        "customer_features",
        "elsewhere",
        "mid",
        "top",
    ]
    top = cat.get("customers").gold
    assert input_tables(cat, top) == {"mid": "gold/mid", "customer_features": "gold/customer_features"}
    # Without a catalog every input is read as silver (how publish resolved inputs before).
    assert input_tables(None, top) == {"mid": "silver/mid", "customer_features": "silver/customer_features"}


def test_golds_reading_each_other_in_a_cycle_are_a_contract_error(catalog):
    cat = _catalog(catalog, {"customers": _gold("x", "y", "orders"), "a": _gold("y", "x")})
    with pytest.raises(ContractError, match="cycle"):
        golds_fed_by(cat, "orders")
