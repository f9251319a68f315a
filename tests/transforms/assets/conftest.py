"""Asset tests reuse the gold tests' silver fixtures (small typed Delta tables written directly)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gold"))


@pytest.fixture(scope="module")
def module_lake(tmp_path_factory: pytest.TempPathFactory):
    """A lake shared by the tests of one module (for scenarios too slow to repeat per test)."""
    from ingestion.core.config import LakeSettings, Settings, SparkSettings
    from ingestion.core.storage import LocalStorage

    root = tmp_path_factory.mktemp("lake")
    settings = Settings(
        lake=LakeSettings(kind="local", root=root),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )
    return settings, LocalStorage(root)
