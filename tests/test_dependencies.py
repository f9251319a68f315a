"""The dependency rules, checked on the source: adapters -> engine -> core, never back.

* The engine (``ingestion/``, ``transforms/``) never imports the entry points (``jobs``).
* The ingestion side, the pytest plugin included, never imports the transforms: the plugin
  receives its jobs (``headwater_jobs``) instead.
* Environment variables are read in ``ingestion/core/config.py`` only (the test kit's Azurite
  variables aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at any depth, lazy imports included), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _offenders(dirs: tuple[str, ...], forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _sources(*dirs)
        for line, module in _imports(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]


@pytest.mark.parametrize(
    ("dirs", "forbidden"),
    [
        (("ingestion", "transforms"), "jobs"),
        (("ingestion", "transforms"), "functions"),
        (("ingestion",), "transforms"),
    ],
)
def test_dependencies_point_one_way(dirs, forbidden):
    assert _offenders(dirs, forbidden) == []


def test_the_check_sees_lazy_imports(tmp_path):
    """The scan finds an import inside a function (how the engine would sneak one in)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from jobs import ingest\n    import transforms.silver\n")
    assert [m for _, m in _imports(module)] == ["jobs", "transforms.silver"]


def _env_reads(source: str) -> list[int]:
    """Lines reading ``os.environ`` or ``os.getenv`` (``os.environ.setdefault`` is a write)."""
    tree = ast.parse(source)
    writes = {
        id(n.func.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "setdefault"
    }
    return sorted(
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv") and id(n) not in writes
    )


def test_the_environment_check_sees_reads_and_lets_writes_be():
    source = "import os\na = os.environ.get('X')\nb = os.getenv('Y')\nos.environ.setdefault('Z', '1')\n"
    assert _env_reads(source) == [2, 3]


def test_environment_is_read_through_settings_only():
    allowed = {
        ROOT / "ingestion/core/config.py",  # Settings and Settings.secret
        ROOT / "ingestion/core/profiles.py",  # the layers Settings are read from, and their check
        ROOT / "ingestion/core/secrets.py",  # the `env` secret store: a secret's variable
        ROOT / "ingestion/testing/faults.py",  # failpoints armed by the fault harness (HW_FAULT_CRASH_AT)
        ROOT / "ingestion/testing/azurite.py",  # the test kit's Azurite variables
    }
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources("ingestion", "transforms", "functions", "jobs")
        if path not in allowed
        for line in _env_reads(path.read_text())
    ]
    assert found == []


def test_a_remote_cluster_installs_the_floor_pins_of_the_wheel_and_its_spark_extra_never_spark():
    """``ingestion/remote/cluster-requirements.txt`` = the core and ``spark`` extra, pinned as the floor."""
    import re

    import tomllib

    from ingestion.remote.libraries import NEVER, cluster_requirements

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["spark"]]
    names = {re.split(r"[<>=!~ ;]", r, maxsplit=1)[0].strip() for r in wanted}
    floor = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints-floor.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    bare = re.compile(r"\[.*\]")
    expected = sorted(f"{n}=={floor[bare.sub('', n)]}" for n in names)
    assert sorted(cluster_requirements()) == expected
    assert not any(r.split("==")[0] in NEVER for r in cluster_requirements())
