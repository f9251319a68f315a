"""Readmit: queue a dataset's rejected files again (after a contract fix).

The CLI's ``headwater readmit`` calls it; so can a scheduler or a notebook. A readmitted file is
``pending`` again with its reason cleared, and the next ingest run takes it like a new file.
"""

from __future__ import annotations

from collections.abc import Iterable

from ingestion.contracts import Catalog
from ingestion.core.reasons import FileCode
from ingestion.core.storage import Storage
from ingestion.events.ledger import Ledger


def readmit(
    storage: Storage,
    catalog: Catalog,
    dataset: str,
    *,
    paths: Iterable[str] | None = None,
    code: FileCode | str | None = None,
) -> list[str]:
    """Set the dataset's rejected ledger entries back to ``pending``.

    Args:
        storage: the lake.
        catalog: the datasets.
        dataset: the dataset's name.
        paths: only these landing-relative paths.
        code: only files rejected with this reason code (a :class:`FileCode` or its value).

    Returns:
        The landing paths readmitted, in ledger order.

    Raises:
        UnknownDatasetError: no such dataset.
        UnknownCodeError: ``code`` is no file reason code (the message lists the valid ones).
    """
    wanted = FileCode.parse(code) if code else None
    name = catalog.get(dataset).name
    only = set(paths or ())
    ledger = Ledger(storage)
    readmitted = []
    for entry in ledger.entries(name):
        if entry.status != "rejected" or (only and entry.path not in only):
            continue
        if wanted is not None and entry.reason_code != wanted:
            continue
        ledger.update(entry, status="pending", reason=None, reason_code=None)
        readmitted.append(entry.path)
    return readmitted
