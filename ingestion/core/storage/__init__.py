"""The lake behind one interface: a local folder by default, ADLS Gen2 on Azure."""

from __future__ import annotations

from ingestion.core.config import Settings, get_settings
from ingestion.core.storage.base import ObjectInfo, Storage, split_zone
from ingestion.core.storage.local import LocalStorage

__all__ = ["LocalStorage", "ObjectInfo", "Storage", "open_storage", "split_zone"]


def open_storage(settings: Settings | None = None) -> Storage:
    """The storage the settings name (local folder, or the Azure account through the Blob API)."""
    settings = settings or get_settings()
    if settings.lake.kind == "local":
        return LocalStorage(settings.lake.root)
    from ingestion.core.storage.azure_blob import BlobStorage  # azure SDKs only where configured

    return BlobStorage.from_settings(settings)
