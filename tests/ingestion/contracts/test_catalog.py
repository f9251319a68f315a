import pytest

from ingestion.contracts import Catalog, Csv, Dataset, JsonLines
from ingestion.contracts.validate import validate_catalog
from ingestion.core.errors import ContractError, RejectedPathError, UnknownDatasetError


def good_columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class M(pa.DataFrameModel):
        id: T.StringType() = pa.Field()
        ts: T.TimestampType() = pa.Field()
        flag: T.BooleanType() = pa.Field(nullable=True)

    return M


def odd_columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class M(pa.DataFrameModel):
        id: T.StringType() = pa.Field()
        blob: T.BinaryType() = pa.Field()
        hidden: T.StringType() = pa.Field(alias="_hidden")

    return M


def broken_columns():
    raise RuntimeError("typo in the model")


def test_discover_finds_the_example_datasets_and_routes():
    cat = Catalog.discover()
    assert cat.names() == ["customers", "members", "orders"]
    ds, rel = cat.route("landing/orders/2026/11/export.csv.gz")
    assert (ds.name, rel) == ("orders", "orders/2026/11/export.csv.gz")
    assert cat.route("customers/crm.jsonl")[0].name == "customers"
    with pytest.raises(RejectedPathError, match="matches no dataset") as err:
        cat.route("invoices/a.csv")
    assert err.value.code == "no_dataset"
    with pytest.raises(UnknownDatasetError, match="known: customers, members, orders"):
        cat.get("invoices")


def test_example_contracts_are_valid():
    assert validate_catalog(Catalog.discover()) == []


def test_duplicate_dataset_names_are_refused():
    ds = Dataset(name="a", landing="a/*", columns=good_columns, primary_key=("id",))
    with pytest.raises(ContractError, match="declared twice"):
        Catalog([ds, ds])


def test_ambiguous_route():
    cat = Catalog(
        [
            Dataset(name="a", landing="x/*.csv", columns=good_columns, primary_key=("id",)),
            Dataset(name="b", landing="x/**/*.csv", columns=good_columns, primary_key=("id",)),
        ]
    )
    with pytest.raises(RejectedPathError) as err:
        cat.route("x/f.csv")
    assert err.value.code == "ambiguous"


def test_validate_explains_every_problem():
    cat = Catalog(
        [
            Dataset(
                name="Bad-Name",
                landing="/abs/*.csv",
                format=Csv(delimiter=";;", encoding="klingon"),
                columns=good_columns,
                primary_key=("nope",),
                order_by="flag",
                partition_by=("day",),
                check_actions={"ghost.isin": "drop", "id": "explode"},
            ),  # type: ignore[dict-item]
            Dataset(
                name="odd", landing="odd/**/*.jsonl", format=JsonLines(), columns=odd_columns, primary_key=()
            ),
            Dataset(name="broken", landing="broken/*.csv", columns=broken_columns, primary_key=("id",)),
            Dataset(
                name="overlap",
                landing="odd/2026/*.jsonl",
                format=JsonLines(),
                columns=good_columns,
                primary_key=("id",),
            ),
        ]
    )
    found = {(p.dataset, p.code) for p in validate_catalog(cat)}
    assert found == {
        ("Bad-Name", "name"),
        ("Bad-Name", "landing_pattern"),
        ("Bad-Name", "format"),
        ("Bad-Name", "primary_key"),
        ("Bad-Name", "order_by"),
        ("Bad-Name", "partition_by"),
        ("Bad-Name", "check_actions"),
        ("odd", "unknown_type"),
        ("odd", "reserved_name"),
        ("odd", "primary_key"),
        ("broken", "model"),
        ("odd", "pattern_overlap"),
    }
    messages = [p.message for p in validate_catalog(cat)]
    assert any("'blob' has type BinaryType" in m for m in messages)
    assert any("typo in the model" in m for m in messages)
    assert any("overlaps 'overlap'" in m for m in messages)
