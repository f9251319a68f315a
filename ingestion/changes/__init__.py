"""Row changes from SQL sources, landed as files.

The Functions SQL trigger's batches (and, next, the pyodbc change puller) become
``landing/<dataset>/<source>/...`` change files that the file path ingests, and curate applies
as CDC (``transforms.silver.cdc``).

Importable without pyspark (the Function App uses it).
"""

from ingestion.changes.landing import LandedChanges, land_changes, source_landing_dir
from ingestion.changes.sources import SqlSource, check_source
from ingestion.changes.trigger import ChangePayloadError, trigger_rows

__all__ = [
    "ChangePayloadError",
    "LandedChanges",
    "SqlSource",
    "check_source",
    "land_changes",
    "source_landing_dir",
    "trigger_rows",
]
