"""``headwater`` console script. Every sibling module registers its commands on ``app``."""

from __future__ import annotations

import importlib
import pkgutil

from jobs.cli.app import app

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "app" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")


def main() -> None:
    app()


__all__ = ["app", "main"]
