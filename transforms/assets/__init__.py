"""Versioned data assets over gold: registries (local, Azure ML), MLTable, drift, vacuum, trace."""

from transforms.assets.errors import (
    AssetError,
    AssetNotFoundError,
    GoldNotPublishedError,
    LoadCheckError,
    RegistryUnavailableError,
    TraceError,
    VacuumRefusedError,
)
from transforms.assets.register import RegisterResult, open_registry, register
from transforms.assets.registry import AssetRegistry, AssetVersion, LocalRegistry, parse_ref
from transforms.assets.release import Release, publish_and_register

__all__ = [
    "AssetError",
    "AssetNotFoundError",
    "AssetRegistry",
    "AssetVersion",
    "GoldNotPublishedError",
    "LoadCheckError",
    "LocalRegistry",
    "RegisterResult",
    "Release",
    "RegistryUnavailableError",
    "TraceError",
    "VacuumRefusedError",
    "open_registry",
    "parse_ref",
    "publish_and_register",
    "register",
]
