"""The Azure ML boundary: the real ``Data`` entity, the MLTable, and the HTTP call the real
``MLClient`` makes — through a replaced pipeline transport, since Azure is unreachable here."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transforms" / "gold"))

pytest.importorskip("azure.ai.ml")
pytest.importorskip("mltable")

import gold_fixtures as gf  # noqa: E402
import requests  # noqa: E402
from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError  # noqa: E402
from azure.core.pipeline.transport import HttpTransport  # noqa: E402
from azure.core.rest._requests_basic import RestRequestsTransportResponse  # noqa: E402

from ingestion.core.config import MLSettings  # noqa: E402
from ingestion.core.lake import gold_table  # noqa: E402
from ingestion.core.runs import RunLedger  # noqa: E402
from ingestion.core.spark.delta import table_version  # noqa: E402

SUB, RG, WS = "00000000-0000-0000-0000-00000000abcd", "rg-headwater-dev", "mlw-headwater-dev"
ML = MLSettings(subscription_id=SUB, resource_group=RG, workspace=WS, datastore="gold")
WORKSPACE = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
)


class FakeArm(HttpTransport):
    """Answers the Azure ML management API from memory and records every request."""

    def __init__(self, *, latest: int | None = None, fail_put: int | None = None) -> None:
        self.requests: list = []
        self.latest = latest
        self.fail_put = fail_put

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def open(self):
        pass

    def close(self):
        pass

    def send(self, request, **kwargs):
        self.requests.append(request)
        path = urlparse(request.url).path
        if request.method == "PUT" and "/data/" in path:
            if self.fail_put:
                return _response(
                    request, self.fail_put, {"error": {"code": "ServiceUnavailable", "message": "down"}}
                )
            body = json.loads(request.content)
            body.update(id=path, name=path.rsplit("/", 1)[1])
            return _response(request, 200, body)
        if request.method == "GET" and path == f"{WORKSPACE}/data/customer_features" and self.latest:
            return _response(
                request,
                200,
                {"id": path, "name": "customer_features", "properties": {"latestVersion": str(self.latest)}},
            )
        if request.method == "GET" and path == f"{WORKSPACE}/data/customer_features/versions/{self.latest}":
            return _response(
                request,
                200,
                {
                    "id": path,
                    "name": str(self.latest),
                    "properties": {"dataType": "mltable", "dataUri": "azureml://datastores/gold/paths/x"},
                },
            )
        return _response(request, 404, {"error": {"code": "NotFound", "message": "not found"}})

    def puts(self):
        return [r for r in self.requests if r.method == "PUT"]


def _response(request, status: int, body: dict):
    raw = requests.Response()
    raw.status_code = status
    raw.reason = "OK" if status < 400 else "Error"
    raw.headers["Content-Type"] = "application/json"
    raw.raw = io.BytesIO(json.dumps(body).encode())
    raw.url = request.url
    resp = RestRequestsTransportResponse(request=request, internal_response=raw)
    resp.read()
    return resp


class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("test-token", int(time.time()) + 3600)


class Refused:
    def get_token(self, *scopes, **kwargs):
        raise ClientAuthenticationError(message="DefaultAzureCredential failed to retrieve a token")


def _registry(lake, transport, credential=None):
    from transforms.assets import LocalRegistry
    from transforms.assets.azureml import AzureMLRegistry

    return AzureMLRegistry(
        ML, LocalRegistry(lake), credential=credential or Token(), transport=transport, enable_telemetry=False
    )


def _gold(spark, lake, catalog, settings):
    from transforms.gold import publish

    gf.write_silver(spark, lake, "customers", gf.customers(5), bronze_end=0)
    gf.write_silver(spark, lake, "orders", gf.orders(5, 12, seed=2), bronze_end=0)
    return publish(spark, lake, catalog, "orders", settings=settings)


def test_data_entity_is_the_documented_mltable_asset(lake):
    from azure.ai.ml.entities import Data

    from transforms.assets import AssetVersion
    from transforms.assets.azureml import asset_uri, data_entity

    path = "gold/customer_features/_mltable/delta-7"
    asset = AssetVersion(
        name="customer_features",
        version=2,
        asset_type="mltable",
        dataset="orders",
        delta_version=7,
        table_uri="abfss://gold@acct.dfs.core.windows.net/customer_features",
        path=path,
        asset_uri=asset_uri(ML, lake, path),
        tags={"delta_version": "7", "rows": 3},
        description="features",
    )
    data = data_entity(asset)

    assert isinstance(data, Data)
    assert (data.name, data.version, data.type) == ("customer_features", "2", "mltable")
    assert data.path == "azureml://datastores/gold/paths/customer_features/_mltable/delta-7"
    assert data.tags == {"delta_version": "7", "rows": "3"} and data.description == "features"
    rest = data._to_rest_object().as_dict()  # what the SDK sends
    assert rest["properties"]["dataType"] == "mltable"
    assert rest["properties"]["dataUri"] == data.path


def test_local_lake_without_datastore_cannot_be_registered_in_azure(lake):
    from ingestion.core.errors import ConfigError
    from transforms.assets.azureml import asset_uri

    with pytest.raises(ConfigError, match="ml.datastore"):
        asset_uri(
            MLSettings(subscription_id=SUB, resource_group=RG, workspace=WS), lake, "gold/x/_mltable/v1"
        )


@pytest.mark.spark
def test_register_calls_create_or_update_on_the_workspace(spark, lake, catalog, lake_settings):
    from transforms.assets import register

    pub = _gold(spark, lake, catalog, lake_settings)
    arm = FakeArm()
    res = register(spark, lake, catalog, "orders", settings=lake_settings, registry=_registry(lake, arm))

    (put,) = arm.puts()
    url = urlparse(put.url)
    assert url.netloc == "management.azure.com"
    assert url.path == f"{WORKSPACE}/data/customer_features/versions/1"
    assert put.headers["Authorization"] == "Bearer test-token"
    body = json.loads(put.content)["properties"]
    assert body["dataType"] == "mltable"
    assert (
        body["dataUri"]
        == f"azureml://datastores/gold/paths/customer_features/_mltable/delta-{pub.output_version}"
    )
    assert body["tags"] == res.asset.tags
    assert body["tags"]["delta_version"] == str(pub.output_version)
    # the workspace was asked for its latest version first (the N+1 counter)
    assert any(
        r.method == "GET" and urlparse(r.url).path == f"{WORKSPACE}/data/customer_features"
        for r in arm.requests
    )
    # the MLTable the asset points at, pinned to the Delta version
    mlt = (
        Path(lake.root) / f"gold/customer_features/_mltable/delta-{pub.output_version}/MLTable"
    ).read_text()
    assert f"version_as_of: {pub.output_version}" in mlt and "folder: ../.." in mlt
    # mirrored locally with the workspace's id
    assert (
        res.asset.registry == "azureml"
        and res.asset.azure_id == f"{WORKSPACE}/data/customer_features/versions/1"
    )


@pytest.mark.spark
def test_version_counter_continues_from_the_workspace(spark, lake, catalog, lake_settings):
    from transforms.assets import register

    _gold(spark, lake, catalog, lake_settings)
    arm = FakeArm(latest=4)
    res = register(spark, lake, catalog, "orders", settings=lake_settings, registry=_registry(lake, arm))
    assert res.asset.version == 5
    assert urlparse(arm.puts()[0].url).path.endswith("/data/customer_features/versions/5")


@pytest.mark.spark
def test_auth_failure_is_a_clear_error_leaves_gold_alone_and_is_retried(spark, lake, catalog, lake_settings):
    from transforms.assets import LocalRegistry, RegistryUnavailableError, register

    pub = _gold(spark, lake, catalog, lake_settings)
    arm = FakeArm()
    with pytest.raises(RegistryUnavailableError) as err:
        register(
            spark,
            lake,
            catalog,
            "orders",
            settings=lake_settings,
            registry=_registry(lake, arm, credential=Refused()),
        )

    assert err.value.code == "auth"
    assert "Azure ML registry unavailable (auth)" in str(err.value)
    assert "DefaultAzureCredential failed to retrieve a token" in str(err.value)
    assert arm.puts() == []  # no token, no call
    assert table_version(spark, lake.uri(gold_table("customer_features"))) == pub.output_version
    assert LocalRegistry(lake).versions("customer_features") == []
    failed = RunLedger(spark, lake).latest(job="register", limit=1)[0]
    assert failed["status"] == "failed" and "RegistryUnavailableError" in failed["error"]

    # next run, credentials fixed: the same gold version is registered
    res = register(spark, lake, catalog, "orders", settings=lake_settings, registry=_registry(lake, arm))
    assert res.status == "succeeded" and res.asset.version == 1
    assert res.asset.delta_version == pub.output_version


@pytest.mark.spark
def test_service_outage_is_recorded_and_nothing_mirrored(spark, lake, catalog, lake_settings):
    from transforms.assets import LocalRegistry, RegistryUnavailableError, register

    _gold(spark, lake, catalog, lake_settings)
    with pytest.raises(RegistryUnavailableError) as err:
        register(
            spark,
            lake,
            catalog,
            "orders",
            settings=lake_settings,
            registry=_registry(lake, FakeArm(fail_put=503), credential=Token()),
        )
    assert err.value.code == "http_503"
    assert LocalRegistry(lake).versions("customer_features") == []


def test_default_client_uses_default_azure_credential_and_the_environments_workspace(lake):
    from azure.identity import DefaultAzureCredential

    from transforms.assets import LocalRegistry
    from transforms.assets.azureml import AzureMLRegistry

    client = AzureMLRegistry(ML, LocalRegistry(lake)).client
    assert isinstance(client._credential, DefaultAzureCredential)
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (SUB, RG, WS)


class Unreachable(FakeArm):
    def send(self, request, **kwargs):
        from azure.core.exceptions import ServiceRequestError

        self.requests.append(request)
        raise ServiceRequestError("Failed to establish a new connection: [Errno 111] Connection refused")


@pytest.mark.spark
def test_network_failure_is_recorded_and_retried(spark, lake, catalog, lake_settings):
    from transforms.assets import LocalRegistry, RegistryUnavailableError, register
    from transforms.assets.azureml import AzureMLRegistry

    pub = _gold(spark, lake, catalog, lake_settings)
    down = AzureMLRegistry(
        ML,
        LocalRegistry(lake),
        credential=Token(),
        transport=Unreachable(),
        enable_telemetry=False,
        retry_total=0,
    )
    with pytest.raises(RegistryUnavailableError) as err:
        register(spark, lake, catalog, "orders", settings=lake_settings, registry=down)
    assert err.value.code == "network" and "Connection refused" in str(err.value)
    assert table_version(spark, lake.uri(gold_table("customer_features"))) == pub.output_version
    assert RunLedger(spark, lake).latest(job="register", limit=1)[0]["status"] == "failed"
    res = register(
        spark, lake, catalog, "orders", settings=lake_settings, registry=_registry(lake, FakeArm())
    )
    assert res.status == "succeeded" and res.asset.version == 1
