"""Test-suite wiring.

The platform-floor run (Spark 3.5 + Delta 3.2, `make test`'s second step) installs what a Spark
cluster has, not the Function App's or Azure ML's SDKs: tests of those parts are not collected
where their SDK is absent. Everywhere else (the main run) every SDK is installed and every test
is collected.
"""

import importlib.util


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob: list[str] = []
if not _installed("azure.storage.blob") or not _installed("azure.functions"):
    collect_ignore_glob += ["functions/*", "ingestion/core/storage/test_azure_blob.py"]
if not _installed("azure.ai.ml") or not _installed("mltable"):
    collect_ignore_glob += ["interop/*", "transforms/assets/*"]
