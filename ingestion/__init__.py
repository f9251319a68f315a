"""headwater's engine: the shared core, dataset contracts, event handling, landing -> bronze.

Importing this package (and ``ingestion.events``, ``ingestion.core.storage``,
``ingestion.contracts``) never imports pyspark; the Spark parts live in ``ingestion.core.spark``
and ``ingestion.bronze``.

The shared core moved to :mod:`ingestion.core`. The old module paths (``ingestion.config``,
``ingestion.storage``, ``ingestion.spark.session``...) still import, as the same module objects,
so a team's code written against them keeps working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__version__ = "0.1.0"

_MOVED = ("config", "lake", "runs", "lease", "errors", "spark", "storage")


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:  # already executed under its new name
        return None


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Resolves ``ingestion.<old>[.sub]`` to the module now at ``ingestion.core.<old>[.sub]``."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        parts = fullname.split(".")
        if len(parts) < 2 or parts[0] != __name__ or parts[1] not in _MOVED:
            return None
        new = ".".join([__name__, "core", *parts[1:]])
        if importlib.util.find_spec(new) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new))


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())
