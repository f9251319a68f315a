import pytest

from ingestion.contracts.paths import check_landing_path, glob_match
from ingestion.core.errors import RejectedPathError


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("orders/*.csv", "orders/a.csv", True),
        ("orders/*.csv", "orders/2026/a.csv", False),
        ("orders/**/*.csv", "orders/a.csv", True),
        ("orders/**/*.csv", "orders/2026/11/a.csv", True),
        ("orders/**/*.{csv,csv.gz}", "orders/x/a.csv.gz", True),
        ("orders/**/*.{csv,csv.gz}", "orders/x/a.json", False),
        ("orders/?.csv", "orders/ab.csv", False),
        ("orders/[ab].csv", "orders/b.csv", True),
        ("orders/[!ab].csv", "orders/b.csv", False),
        ("orders/a+b(1).csv", "orders/a+b(1).csv", True),
    ],
)
def test_glob(pattern, path, hit):
    assert glob_match(pattern, path) is hit


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../etc/passwd", "traversal"),
        ("orders/../../x.csv", "traversal"),
        ("orders/./x.csv", "traversal"),
        ("/etc/passwd", "absolute"),
        ("C:\\x.csv", "absolute"),
        ("abfss://landing@acct.dfs.core.windows.net/x.csv", "absolute"),
        ("orders/a\x00.csv", "control_chars"),
        ("orders/a\n.csv", "control_chars"),
        ("orders\\a.csv", "backslash"),
        ("orders//a.csv", "empty_segment"),
        ("", "empty"),
        ("landing", "not_a_file"),
        ("a/" * 600, "empty_segment"),
    ],
)
def test_hostile_paths_are_rejected_with_a_code(path, code):
    with pytest.raises(RejectedPathError) as err:
        check_landing_path(path)
    assert err.value.code == code
    assert repr(path)[:20] in str(err.value) or code == "empty"


def test_landing_prefix_is_optional():
    assert check_landing_path("landing/orders/a.csv") == "orders/a.csv"
    assert check_landing_path("orders/a.csv") == "orders/a.csv"
