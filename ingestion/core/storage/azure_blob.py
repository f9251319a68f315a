"""The lake on ADLS Gen2 (or Azurite) through the Blob API: one container per zone.

Conditional writes map onto HTTP preconditions: an exclusive create sends ``If-None-Match: *``,
a compare-and-swap sends ``If-Match: <etag>``. Reads and writes move in chunks of
:data:`CHUNK` bytes, so memory stays bounded whatever the object's size.

Etags: the Blob service quotes them in response headers (``"0x8D..."``) but not in listings or
Event Grid events (``0x8D...``). :func:`normalize_etag` gives every etag this module hands out
the quoted form, so the ledger keys one version of a file the same way on every path.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

from ingestion.core.config import Settings
from ingestion.core.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    PreconditionFailedError,
)
from ingestion.core.storage.base import CHUNK, ObjectInfo, Storage, split_zone

if TYPE_CHECKING:  # pragma: no cover
    from azure.storage.blob import BlobProperties, StorageStreamDownloader

log = logging.getLogger(__name__)

# Ranged GETs of 1 MiB: the HTTP stack (requests/urllib3) holds several copies of a range while
# reading it (about 10x the range size at peak, measured), so the range size bounds the memory a
# streamed read needs. Uploads stage blocks of CHUNK bytes. SDK defaults: 32 MB GET / 64 MB PUT.
GET_RANGE = 1024 * 1024
TRANSFER_OPTIONS: dict[str, Any] = {  # keyword options of the SDK's clients
    "max_single_get_size": GET_RANGE,
    "max_chunk_get_size": GET_RANGE,
    "max_single_put_size": CHUNK,
    "max_block_size": CHUNK,
}
# Set on directory placeholders by hierarchical-namespace accounts: not files.
_FOLDER_META = "hdi_isfolder"


def normalize_etag(etag: str) -> str:
    """``0x8D...`` and ``"0x8D..."`` -> ``"0x8D..."`` (the form response headers carry)."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag if etag.startswith('"') else f'"{etag}"'


def is_directory(props: BlobProperties) -> bool:
    """True for an HNS directory placeholder blob."""
    return str((props.metadata or {}).get(_FOLDER_META, "")).lower() == "true"


STORAGE_SCOPE = "https://storage.azure.com/.default"


class _BlobReader(io.RawIOBase):
    """A read-only stream over a download, pulling one chunk at a time."""

    def __init__(self, downloader: StorageStreamDownloader) -> None:
        self._chunks = downloader.chunks()
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._buffer = memoryview(b"")
        self._chunks = iter(())
        super().close()


class BlobStorage(Storage):
    """A lake whose zones are containers of one storage account.

    Args:
        service: the account's ``BlobServiceClient`` (built with :data:`TRANSFER_OPTIONS`).
        containers: zone -> container name (``settings.lake.containers``).
        account: the account name, for ``abfss://`` URIs; defaults to the client's.
        dfs_suffix: the DFS endpoint suffix (``dfs.core.windows.net`` in the public cloud).
    """

    def __init__(
        self,
        service: BlobServiceClient,
        *,
        containers: dict[str, str] | None = None,
        account: str | None = None,
        dfs_suffix: str = "dfs.core.windows.net",
    ) -> None:
        self.service = service
        self.containers = dict(containers or {})
        self.account = account or service.account_name
        self.dfs_suffix = dfs_suffix
        self._clients: dict[str, ContainerClient] = {}

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStorage:
        """Build from ``settings.lake``.

        ``DefaultAzureCredential`` against ``blob_endpoint`` (or the account's public endpoint);
        a connection string only when ``lake.connection_string_env`` names a set variable
        (Azurite and tests).

        Raises:
            ConfigError: neither an account nor a connection string is configured.
        """
        lake = settings.lake
        conn_env = lake.connection_string_env
        if conn_env:
            conn = settings.environment_secret(conn_env)
            if conn is None:
                raise ConfigError(
                    f"lake.connection_string_env names {conn_env!r}, but that variable is not set"
                )
            service = BlobServiceClient.from_connection_string(conn.get_secret_value(), **TRANSFER_OPTIONS)
            return cls(service, containers=lake.containers, account=lake.account)
        if not lake.account and not lake.blob_endpoint:
            raise ConfigError(
                "lake.kind is 'azure' but neither lake.account nor lake.blob_endpoint is set "
                "(HEADWATER_LAKE__ACCOUNT)"
            )
        from azure.identity import DefaultAzureCredential

        endpoint = lake.blob_endpoint or f"https://{lake.account}.blob.core.windows.net"
        service = BlobServiceClient(
            account_url=endpoint, credential=DefaultAzureCredential(), **TRANSFER_OPTIONS
        )
        return cls(
            service,
            containers=lake.containers,
            account=lake.account,
            dfs_suffix=_dfs_suffix(endpoint),
        )

    def ensure_containers(self) -> None:
        """Create every zone's container if missing (local emulators; Azure infra does this)."""
        from ingestion.core.config import ZONES

        for zone in ZONES:
            try:
                self._container(zone).create_container()
            except ResourceExistsError:
                pass

    # --- mapping -------------------------------------------------------------------------------
    def container_name(self, zone: str) -> str:
        """The container holding ``zone`` (the zone's name unless mapped otherwise)."""
        return self.containers.get(zone, zone)

    def _container(self, zone: str) -> ContainerClient:
        client = self._clients.get(zone)
        if client is None:
            client = self.service.get_container_client(self.container_name(zone))
            self._clients[zone] = client
        return client

    def _blob(self, path: str) -> Any:
        zone, rest = split_zone(path)
        if not rest:
            raise NotFoundError(path)
        return self._container(zone).get_blob_client(rest)

    # --- Storage ---------------------------------------------------------------------------------
    def info(self, path: str) -> ObjectInfo | None:
        """The blob's properties (one HEAD), or None when absent or a folder placeholder."""
        zone, rest = split_zone(path)
        if not rest:
            return None
        try:
            props = self._blob(path).get_blob_properties()
        except ResourceNotFoundError:
            return None
        if is_directory(props):
            return None
        return _object_info(path.strip("/"), props)

    def open_read(self, path: str) -> BinaryIO:
        """A buffered reader over ranged GETs of :data:`GET_RANGE` bytes."""
        try:
            downloader = self._blob(path).download_blob(max_concurrency=1)
        except ResourceNotFoundError:
            raise NotFoundError(path) from None
        return io.BufferedReader(_BlobReader(downloader), buffer_size=64 * 1024)

    def write_bytes(
        self, path: str, data: bytes, *, exclusive: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        """One PUT with ``If-None-Match: *`` (exclusive) or ``If-Match`` (``if_match``)."""
        blob = self._blob(path)
        kwargs: dict[str, Any] = {"overwrite": True}
        if exclusive:
            kwargs.update(match_condition=MatchConditions.IfMissing)  # If-None-Match: *
        elif if_match is not None:
            kwargs.update(etag=normalize_etag(if_match), match_condition=MatchConditions.IfNotModified)
        try:
            result = blob.upload_blob(data, length=len(data), **kwargs)
        except ResourceExistsError:
            if exclusive:
                raise AlreadyExistsError(path) from None
            raise
        except ResourceModifiedError:
            # 412: the precondition failed (somebody else wrote, or the object is already there).
            if exclusive:
                raise AlreadyExistsError(path) from None
            raise PreconditionFailedError(path) from None
        except ResourceNotFoundError:
            if if_match is not None:
                raise PreconditionFailedError(path) from None
            raise
        return ObjectInfo(
            path=path.strip("/"),
            size=len(data),
            etag=normalize_etag(result["etag"]),
            modified=result.get("last_modified") or datetime.now(timezone.utc),
        )

    def write_stream(self, path: str, stream: BinaryIO) -> ObjectInfo:
        """Stage one block per :data:`CHUNK` read from the stream, then commit them."""
        blob = self._blob(path)
        # No length: the SDK stages one block per chunk read from the stream, then commits them.
        blob.upload_blob(stream, overwrite=True, max_concurrency=1)
        info = self.info(path)
        if info is None:  # deleted between commit and read-back
            raise NotFoundError(path)
        return info

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Blobs below the folder ``prefix`` (or the one blob it names), without folder placeholders."""
        zone, rest = split_zone(prefix)
        container = self._container(zone)
        rest = rest.strip("/")
        if rest:
            # `prefix` may name one object; otherwise list below it as a folder, not as a
            # name prefix (landing/orders must not list landing/orders2/...).
            exact = self.info(prefix)
            if exact is not None:
                yield exact
                return
            starts = rest + "/"
        else:
            starts = None
        for props in container.list_blobs(name_starts_with=starts, include=["metadata"]):
            if is_directory(props):
                continue
            yield _object_info(f"{zone}/{props.name}", props)

    def delete(self, path: str, *, if_match: str | None = None) -> None:
        """One DELETE, with ``If-Match`` when ``if_match`` is given."""
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs.update(etag=normalize_etag(if_match), match_condition=MatchConditions.IfNotModified)
        try:
            self._blob(path).delete_blob(**kwargs)
        except ResourceNotFoundError:
            return
        except ResourceModifiedError:
            raise PreconditionFailedError(path) from None

    def delta_rs_options(self) -> dict[str, str] | None:
        """A bearer token from the account's Entra ID credential; None for a shared key (Azurite).

        The token lives only in memory for one read; it is never logged.
        """
        credential = getattr(self.service, "credential", None)
        if credential is None or not hasattr(credential, "get_token"):
            return None
        return {"bearer_token": credential.get_token(STORAGE_SCOPE).token}

    def uri(self, path: str) -> str:
        """An ``abfss://`` URI on the account's DFS endpoint."""
        zone, rest = split_zone(path)
        return f"abfss://{self.container_name(zone)}@{self.account}.{self.dfs_suffix}/{rest}"


def _object_info(path: str, props: Any) -> ObjectInfo:
    modified = props.last_modified or datetime.now(timezone.utc)
    return ObjectInfo(
        path=path, size=int(props.size or 0), etag=normalize_etag(props.etag), modified=modified
    )


def _dfs_suffix(endpoint: str) -> str:
    """``https://acct.blob.core.chinacloudapi.cn`` -> ``dfs.core.chinacloudapi.cn``."""
    host = urlparse(endpoint).hostname or ""
    parts = host.split(".")
    if len(parts) > 2 and parts[1] == "blob":
        return ".".join(["dfs", *parts[2:]])
    return "dfs.core.windows.net"
