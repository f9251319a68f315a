"""Asset versions and the registries that hold them, behind one interface.

The local registry lives in the lake's system area and is always written: it is where each
version's profile, drift result, report and lineage are kept (Azure ML tags cannot hold them),
and what ``headwater assets`` reads. With Azure ML configured, the Azure registry creates the
workspace asset first and mirrors it locally only once the workspace accepted it.

Layout::

    system/registry/<name>/<version:06d>/asset.json    the version (created once, exclusively)
    system/registry/<name>/<version:06d>/profile.json  column profile for drift
    system/registry/<name>/<version:06d>/drift.json    drift against the previous version
    system/registry/<name>/<version:06d>/drift.html    the report for people
    system/registry/<name>/<version:06d>/lineage.json  gold -> silver -> bronze pins
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ingestion.core.errors import AlreadyExistsError
from ingestion.core.lake import REGISTRY_DIR
from ingestion.core.storage import Storage
from transforms.assets.errors import AssetError, AssetNotFoundError

AssetType = Literal["mltable", "uri_folder"]


@dataclass
class AssetVersion:
    """One immutable registered version of a gold table."""

    name: str
    version: int
    asset_type: AssetType
    dataset: str
    delta_version: int
    table_uri: str
    path: str  # lake path of the asset folder (MLTable file or snapshot)
    asset_uri: str  # what the registry points at (file://, abfss://, azureml://)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    run_id: str = ""
    registered_at: float = field(default_factory=time.time)
    retention_days: int = 90
    registry: str = "local"
    azure_id: str | None = None
    archived: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def is_live(self, now: float | None = None) -> bool:
        """Live versions must stay loadable: not archived and within their retention."""
        now = time.time() if now is None else now
        return not self.archived and now < self.registered_at + self.retention_days * 86400

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AssetVersion:
        return cls(**json.loads(raw))


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name:3"`` -> ("name", 3); ``"name"`` -> ("name", None)."""
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit():
        raise AssetError(f"{ref!r}: the version after ':' must be a number (e.g. {name}:2)")
    return name, int(version)


class AssetRegistry(abc.ABC):
    """Where registered asset versions are kept."""

    kind: str = "abstract"

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Every asset name with at least one version."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[AssetVersion]:
        """All versions of ``name``, oldest first."""

    @abc.abstractmethod
    def next_version(self, name: str) -> int:
        """The counter value the next version of ``name`` gets (1 for the first)."""

    @abc.abstractmethod
    def create(self, asset: AssetVersion) -> AssetVersion:
        """Register ``asset``; an existing (name, version) is never overwritten."""

    # --- shared ------------------------------------------------------------------------------
    def asset_uri(self, storage: Storage, path: str) -> str:
        """Where this registry's users read the asset folder at lake ``path`` from."""
        return storage.uri(path)

    def latest(self, name: str) -> AssetVersion | None:
        found = self.versions(name)
        return found[-1] if found else None

    def get(self, name: str, version: int | None = None) -> AssetVersion:
        found = self.versions(name)
        if version is None:
            if found:
                return found[-1]
            raise AssetNotFoundError(name, None, self.names())
        for asset in found:
            if asset.version == version:
                return asset
        raise AssetNotFoundError(name, version, [a.label for a in found] or self.names())

    def previous(self, asset: AssetVersion) -> AssetVersion | None:
        older = [a for a in self.versions(asset.name) if a.version < asset.version]
        return older[-1] if older else None


def version_dir(name: str, version: int) -> str:
    return f"{REGISTRY_DIR}/{name}/{version:06d}"


class LocalRegistry(AssetRegistry):
    """The registry in the lake's system area (the default, and every registry's mirror)."""

    kind = "local"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def names(self) -> list[str]:
        out = set()
        for obj in self.storage.list(REGISTRY_DIR):
            parts = obj.path.split("/")
            if len(parts) == 5 and parts[4] == "asset.json":
                out.add(parts[2])
        return sorted(out)

    def versions(self, name: str) -> list[AssetVersion]:
        out = []
        for obj in self.storage.list(f"{REGISTRY_DIR}/{name}"):
            if obj.path.endswith("/asset.json"):
                out.append(AssetVersion.from_json(self.storage.read_bytes(obj.path)))
        return sorted(out, key=lambda a: a.version)

    def next_version(self, name: str) -> int:
        latest = self.latest(name)
        return 1 if latest is None else latest.version + 1

    def create(self, asset: AssetVersion) -> AssetVersion:
        path = f"{version_dir(asset.name, asset.version)}/asset.json"
        try:
            self.storage.write_bytes(path, asset.to_json(), exclusive=True)
        except AlreadyExistsError:
            raise AssetError(
                f"asset {asset.label} is already registered (another run won); versions are immutable"
            ) from None
        return asset

    # --- per-version artifacts ------------------------------------------------------------------
    def write_artifact(self, name: str, version: int, filename: str, data: bytes) -> str:
        path = f"{version_dir(name, version)}/{filename}"
        self.storage.write_bytes(path, data)
        return path

    def read_artifact(self, name: str, version: int, filename: str) -> bytes | None:
        path = f"{version_dir(name, version)}/{filename}"
        return self.storage.read_bytes(path) if self.storage.exists(path) else None

    def read_json(self, name: str, version: int, filename: str) -> Any:
        raw = self.read_artifact(name, version, filename)
        return None if raw is None else json.loads(raw)

    def set_archived(self, name: str, version: int, archived: bool = True) -> AssetVersion:
        """Archive (or restore) a version: archived versions no longer hold files from VACUUM."""
        asset = self.get(name, version)
        asset.archived = archived
        path = f"{version_dir(name, version)}/asset.json"
        info = self.storage.info(path)
        self.storage.write_bytes(path, asset.to_json(), if_match=info.etag if info else None)
        return asset
