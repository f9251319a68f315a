"""The Azure ML registry: workspace data assets through the azure-ai-ml SDK.

``MLClient(DefaultAzureCredential(), subscription, resource_group, workspace)`` and
``ml_client.data.create_or_update(Data(...))``, one workspace per environment (the settings of each
deployment name theirs). The asset path is ``azureml://datastores/<datastore>/paths/...`` when a
datastore is configured, else the lake's ``abfss://`` URI. Every created version is mirrored into
the local registry (profiles, reports and lineage live there); an auth or network failure raises
RegistryUnavailableError before anything is mirrored, so the next run retries it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ingestion.core.config import MLSettings
from ingestion.core.errors import ConfigError
from ingestion.core.reasons import RunCode
from ingestion.core.storage import LocalStorage, Storage, split_zone
from transforms.assets.errors import AssetError, RegistryUnavailableError
from transforms.assets.registry import AssetRegistry, AssetVersion, LocalRegistry

if TYPE_CHECKING:  # pragma: no cover
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Data

log = logging.getLogger(__name__)


def asset_uri(ml: MLSettings, storage: Storage, path: str) -> str:
    """Where the workspace reads the asset folder at lake ``path`` from."""
    if ml.datastore:
        _zone, rest = split_zone(path)
        return f"azureml://datastores/{ml.datastore}/paths/{rest}"
    if isinstance(storage, LocalStorage):
        raise ConfigError(
            "Azure ML cannot read a local lake: set ml.datastore (HEADWATER_ML__DATASTORE) to the "
            "datastore over the gold container, or put the lake on Azure (lake.kind=azure)"
        )
    return storage.uri(path)  # abfss://<container>@<account>.dfs.core.windows.net/...


def data_entity(asset: AssetVersion) -> Data:
    """The ``azure.ai.ml.entities.Data`` for one asset version (tags as strings)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    kind = AssetTypes.MLTABLE if asset.asset_type == "mltable" else AssetTypes.URI_FOLDER
    return Data(
        name=asset.name,
        version=str(asset.version),
        type=kind,
        path=asset.asset_uri,
        description=asset.description,
        tags={k: str(v) for k, v in asset.tags.items()},
    )


def _unavailable(err: Exception) -> RegistryUnavailableError | None:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    for kind in (ClientAuthenticationError, ServiceRequestError):
        if not isinstance(err, kind) and _caused_by(err, kind):
            err = _cause(err, kind)
    if isinstance(err, ClientAuthenticationError):
        return RegistryUnavailableError("Azure ML", _first_line(err), RunCode.AUTH)
    if isinstance(err, ServiceRequestError):
        return RegistryUnavailableError("Azure ML", _first_line(err), RunCode.NETWORK)
    if isinstance(err, HttpResponseError) and (err.status_code or 0) in (
        401,
        403,
        408,
        429,
        500,
        502,
        503,
        504,
    ):
        status = f"http_{err.status_code}"
        if err.status_code in (401, 403):
            code = RunCode.AUTH
        else:
            code = RunCode(status) if status in RunCode._value2member_map_ else RunCode.NETWORK
        return RegistryUnavailableError("Azure ML", f"HTTP {err.status_code}: {_first_line(err)}", code)
    return None


def _cause(err: BaseException, kind: type) -> Exception:
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    return seen  # type: ignore[return-value]


def _caused_by(err: BaseException, kind: type) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


class AzureMLRegistry(AssetRegistry):
    """Workspace data assets, mirrored into the local registry."""

    kind = "azureml"

    def __init__(
        self,
        ml: MLSettings,
        mirror: LocalRegistry,
        *,
        ml_client: MLClient | None = None,
        credential: Any = None,
        **client_kwargs: Any,
    ) -> None:
        if not ml.configured and ml_client is None:
            raise ConfigError("Azure ML needs ml.subscription_id, ml.resource_group and ml.workspace")
        self.ml = ml
        self.mirror = mirror
        self._client = ml_client
        self._credential = credential
        self._client_kwargs = client_kwargs

    @property
    def client(self) -> MLClient:
        if self._client is None:
            from azure.ai.ml import MLClient

            credential = self._credential
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            self._client = MLClient(
                credential,
                self.ml.subscription_id,
                self.ml.resource_group,
                self.ml.workspace,
                **self._client_kwargs,
            )
        return self._client

    def asset_uri(self, storage: Storage, path: str) -> str:
        return asset_uri(self.ml, storage, path)

    def names(self) -> list[str]:
        return self.mirror.names()

    def versions(self, name: str) -> list[AssetVersion]:
        return self.mirror.versions(name)

    def workspace_latest(self, name: str) -> int:
        """Latest version number the workspace holds for ``name`` (0 when none)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self.client.data.get(name=name, label="latest")
        except Exception as err:
            if _caused_by(err, ResourceNotFoundError):
                return 0  # the SDK wraps a 404 of the container in a ValidationException
            unavailable = _unavailable(err)
            if unavailable is not None:
                raise unavailable from None
            raise
        try:
            return int(found.version)
        except (TypeError, ValueError):
            raise AssetError(
                f"Azure ML asset {name} has non-numeric latest version {found.version!r}; "
                "headwater counts versions 1, 2, 3..."
            ) from None

    def next_version(self, name: str) -> int:
        return max(self.mirror.next_version(name), self.workspace_latest(name) + 1)

    def create(self, asset: AssetVersion) -> AssetVersion:
        entity = data_entity(asset)
        try:
            created = self.client.data.create_or_update(entity)
        except Exception as err:
            unavailable = _unavailable(err)
            if unavailable is not None:
                raise unavailable from None
            raise AssetError(f"Azure ML refused asset {asset.label}: {_first_line(err)}") from None
        asset.registry = self.kind
        asset.azure_id = getattr(created, "id", None)
        return self.mirror.create(asset)
