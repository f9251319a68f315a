"""Secret stores at their boundary: the real SDKs, answered the way the services answer.

Key Vault: azure-keyvault-secrets' ``SecretClient`` with a recording ``HttpTransport`` in place of
the network (the SDK's replaceable transport), so its challenge authentication, serialisation
and error mapping all run. Databricks: databricks-sdk against a loopback REST server. Synapse:
no Synapse runtime exists here, so a recording ``notebookutils`` module with the documented
``getSecret`` signature is the nearest real thing.
"""

from __future__ import annotations

import base64
import json
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("azure.keyvault.secrets")
pytest.importorskip("databricks.sdk")

import requests  # noqa: E402 - after the skips: the SDKs above bring it
from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import ServiceRequestError  # noqa: E402
from azure.core.pipeline.transport import HttpTransport  # noqa: E402
from azure.core.rest._requests_basic import RestRequestsTransportResponse  # noqa: E402
from azure.keyvault.secrets._shared import http_challenge_cache  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from ingestion.core.config import SecretsSettings, Settings  # noqa: E402
from ingestion.core.errors import ConfigError  # noqa: E402
from ingestion.core.reasons import RunCode  # noqa: E402
from ingestion.core.secrets import (  # noqa: E402
    DatabricksSecrets,
    EnvSecrets,
    KeyVaultSecrets,
    SecretError,
    SecretStore,
    SynapseSecrets,
    secret_store,
)
from ingestion.testing.loopback import json_api  # noqa: E402

VAULT = "https://hw-test.vault.azure.net"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.kv-access-token.signature"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'
)
VERSION = "4387e9f3d6e14c459867679a90fd0f79"


# --- Key Vault ---------------------------------------------------------------------------------
@dataclass
class Credential:
    """A TokenCredential that records what the SDK asked it for."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append({"scopes": scopes, "tenant_id": tenant_id, "claims": claims})
        return AccessToken(TOKEN, 4102444800)  # 2100-01-01: never refreshed in a test


class Vault(HttpTransport):
    """Key Vault's GET secret as the service answers it, in place of the network.

    An unauthenticated request gets the 401 challenge; an authenticated one the secret,
    ``SecretNotFound``, or the status ``fail`` scripts. Every request is recorded.
    """

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.secrets = secrets or {}
        self.fail: tuple[int, dict[str, Any]] | None = None
        self.raise_error: Exception | None = None
        self.requests: list[dict[str, Any]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(
            {
                "method": request.method,
                "url": request.url,
                "authorization": request.headers.get("Authorization"),
            }
        )
        if self.raise_error is not None:
            raise self.raise_error
        if "Authorization" not in request.headers:
            return self._answer(
                request,
                401,
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                {"WWW-Authenticate": CHALLENGE},
            )
        if request.headers["Authorization"] != f"Bearer {TOKEN}":
            return self._answer(request, 401, {"error": {"code": "Unauthorized", "message": "bad token"}})
        if self.fail is not None:
            return self._answer(request, *self.fail)
        name = request.url.split("/secrets/", 1)[1].split("/", 1)[0]
        if name not in self.secrets:
            message = f"A secret with (name/id) {name} was not found in this key vault."
            return self._answer(request, 404, {"error": {"code": "SecretNotFound", "message": message}})
        return self._answer(
            request,
            200,
            {
                "value": self.secrets[name],
                "id": f"{VAULT}/secrets/{name}/{VERSION}",
                "attributes": {
                    "enabled": True,
                    "created": 1700000000,
                    "updated": 1700000000,
                    "recoveryLevel": "Recoverable+Purgeable",
                },
            },
        )

    @staticmethod
    def _answer(request: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
        raw = requests.Response()
        raw.status_code = status
        raw.reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
        raw.headers.update({"Content-Type": "application/json; charset=utf-8", **(headers or {})})
        raw._content = json.dumps(body).encode()
        raw._content_consumed = True  # the whole body is here: nothing streams from a socket
        raw.url = request.url
        return RestRequestsTransportResponse(request=request, internal_response=raw)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _fresh_challenges():
    # The SDK caches each vault's challenge process-wide; every test starts from the first request.
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def _vault_store(vault: Vault, credential: Credential, **kwargs: Any) -> KeyVaultSecrets:
    return KeyVaultSecrets(VAULT, credential=credential, transport=vault, **kwargs)


def _url(name: str) -> str:
    return f"{VAULT}/secrets/{name}/?api-version=2026-04-01"


def test_key_vault_answers_the_challenge_then_reads_the_secret_once():
    vault = Vault({"abfs-client-secret": "s3cr3t-value", "sql-password": "pw-2"})
    credential = Credential()
    store = _vault_store(vault, credential)
    assert isinstance(store, SecretStore) and store.kind == "keyvault"

    value = store.get("abfs-client-secret")
    assert isinstance(value, SecretStr) and value.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(value) and "s3cr3t" not in str(value)
    # The challenge: the unauthenticated request, then the same with the token the challenge's
    # tenant and resource asked for.
    assert vault.requests == [
        {"method": "GET", "url": _url("abfs-client-secret"), "authorization": None},
        {"method": "GET", "url": _url("abfs-client-secret"), "authorization": f"Bearer {TOKEN}"},
    ]
    assert credential.calls == [
        {"scopes": ("https://vault.azure.net/.default",), "tenant_id": TENANT, "claims": None}
    ]

    # Read once per store: no second request for the same secret.
    assert store.get("abfs-client-secret") == value
    assert len(vault.requests) == 2
    # Another secret: the challenge is known now, so one authenticated request, no new token.
    assert store.get("sql-password").get_secret_value() == "pw-2"
    assert vault.requests[2:] == [
        {"method": "GET", "url": _url("sql-password"), "authorization": f"Bearer {TOKEN}"}
    ]
    assert len(credential.calls) == 1


def test_a_missing_key_vault_secret_is_none_and_is_asked_again():
    vault = Vault({})
    store = _vault_store(vault, Credential())
    assert store.get("nope") is None
    assert [r["authorization"] for r in vault.requests] == [None, f"Bearer {TOKEN}"]
    assert store.get("nope") is None  # a secret created meanwhile would be found
    assert [r["url"] for r in vault.requests] == [_url("nope")] * 3


def test_key_vault_refusing_the_identity_is_terminal_and_names_no_token():
    vault = Vault({"abfs-client-secret": "s3cr3t-value"})
    vault.fail = (
        403,
        {
            "error": {
                "code": "Forbidden",
                "message": "Caller is not authorized to perform action on resource.\r\nIf role assignments were recently changed, please wait several minutes.",
                "innererror": {"code": "ForbiddenByRbac"},
            }
        },
    )
    store = _vault_store(vault, Credential())
    with pytest.raises(SecretError) as caught:
        store.get("abfs-client-secret")
    err = caught.value
    assert (err.name, err.store, err.transient, err.code) == (
        "abfs-client-secret",
        f"keyvault {VAULT}",
        False,
        RunCode.CONFIG,
    )
    message = str(err)
    assert "'abfs-client-secret'" in message and VAULT in message and "HTTP 403" in message
    assert "access denied (HTTP 403: Forbidden: Caller is not authorized" in message
    assert "Key Vault Secrets User" in message  # what to grant, not just what failed
    assert TOKEN not in message and "kv-access-token" not in message and "s3cr3t" not in message
    assert err.__suppress_context__  # the SDK's error (and its request) is not chained on


def test_key_vault_unavailable_is_transient_after_the_sdks_own_retries():
    vault = Vault({"abfs-client-secret": "s3cr3t-value"})
    vault.fail = (503, {"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}})
    store = _vault_store(vault, Credential(), retry_total=2, retry_backoff_factor=0)
    with pytest.raises(SecretError) as caught:
        store.get("abfs-client-secret")
    assert caught.value.transient is True and caught.value.code == RunCode.STORAGE
    assert "HTTP 503" in str(caught.value)
    # The challenge, then the SDK's attempt and its two retries, all authenticated.
    assert [r["authorization"] for r in vault.requests] == [None] + [f"Bearer {TOKEN}"] * 3

    vault.fail = (429, {"error": {"code": "Throttled", "message": "Too many requests."}})
    with pytest.raises(SecretError) as throttled:
        _vault_store(vault, Credential(), retry_total=0).get("abfs-client-secret")
    assert throttled.value.transient is True


def test_an_unreachable_vault_is_transient():
    vault = Vault({})
    vault.raise_error = ServiceRequestError(
        "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    with pytest.raises(SecretError) as caught:
        _vault_store(vault, Credential(), retry_total=0).get("abfs-client-secret")
    assert caught.value.transient is True
    assert "unreachable (ServiceRequestError)" in str(caught.value)
    assert len(vault.requests) == 1


@pytest.mark.parametrize("url", ["http://hw-test.vault.azure.net", "hw-test.vault.azure.net", "https://"])
def test_a_vault_url_must_be_https(url):
    with pytest.raises(ConfigError, match=r"secrets\.vault_url .*must be an https URL"):
        KeyVaultSecrets(url, credential=Credential())


# --- Databricks --------------------------------------------------------------------------------
DATABRICKS_TOKEN = "dapi-test"


@dataclass
class SecretsApi:
    """Databricks' ``GET /api/2.0/secrets/get`` on loopback: scope -> key -> value (base64 on the wire)."""

    scopes: dict[str, dict[str, str]] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Any:
        if path == "/.well-known/databricks-config":  # the SDK's host metadata probe
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "no host metadata here"}
        self.requests.append(
            {"method": method, "path": path, "query": query, "authorization": headers.get("Authorization")}
        )
        if headers.get("Authorization") != f"Bearer {DATABRICKS_TOKEN}":
            return 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
        if (method, path) != ("GET", "/api/2.0/secrets/get"):
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no {method} {path}"}
        scope, key = query.get("scope", ""), query.get("key", "")
        if scope in self.denied:
            return 403, {
                "error_code": "PERMISSION_DENIED",
                "message": f"User does not have READ permission on scope {scope}",
            }
        if scope not in self.scopes:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Scope {scope} does not exist!"}
        if key not in self.scopes[scope]:
            return 404, {
                "error_code": "RESOURCE_DOES_NOT_EXIST",
                "message": f"Failed to get secret {key} for scope {scope}.",
            }
        value = base64.b64encode(self.scopes[scope][key].encode()).decode()
        return 200, {"key": key, "value": value}


@pytest.fixture
def databricks():  # noqa: ANN201
    api = SecretsApi(scopes={"hw-kv": {"abfs-client-secret": "dbx-s3cr3t ✓"}}, denied={"locked"})
    with json_api(lambda *request: api.handle(*request)) as url:
        api.url = url  # type: ignore[attr-defined]
        yield api


def _workspace(api: SecretsApi, *, retry_timeout_seconds: int = 2) -> Any:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    config = Config(
        host=api.url,  # type: ignore[attr-defined]
        token=DATABRICKS_TOKEN,
        auth_type="pat",
        http_timeout_seconds=1,
        retry_timeout_seconds=retry_timeout_seconds,
    )
    return WorkspaceClient(config=config)


def test_databricks_reads_a_scope_key_through_the_rest_call_and_decodes_it(databricks):
    store = DatabricksSecrets("hw-kv", workspace=_workspace(databricks))
    assert isinstance(store, SecretStore) and store.kind == "databricks"
    value = store.get("abfs-client-secret")
    assert value is not None and value.get_secret_value() == "dbx-s3cr3t ✓"  # base64 -> UTF-8
    assert databricks.requests == [
        {
            "method": "GET",
            "path": "/api/2.0/secrets/get",
            "query": {"scope": "hw-kv", "key": "abfs-client-secret"},
            "authorization": f"Bearer {DATABRICKS_TOKEN}",
        }
    ]
    assert store.get("abfs-client-secret") == value and len(databricks.requests) == 1


def test_a_missing_databricks_key_or_scope_is_none(databricks):
    assert DatabricksSecrets("hw-kv", workspace=_workspace(databricks)).get("nope") is None
    assert DatabricksSecrets("no-scope", workspace=_workspace(databricks)).get("abfs-client-secret") is None
    assert [r["query"] for r in databricks.requests] == [
        {"scope": "hw-kv", "key": "nope"},
        {"scope": "no-scope", "key": "abfs-client-secret"},
    ]


def test_a_databricks_scope_the_identity_may_not_read_is_terminal(databricks):
    with pytest.raises(SecretError) as caught:
        DatabricksSecrets("locked", workspace=_workspace(databricks)).get("abfs-client-secret")
    err = caught.value
    assert (err.name, err.store, err.transient, err.code) == (
        "abfs-client-secret",
        "databricks scope 'locked'",
        False,
        RunCode.CONFIG,
    )
    assert "PERMISSION_DENIED" in str(err) and "READ on the scope" in str(err)
    assert DATABRICKS_TOKEN not in str(err)


def test_a_databricks_404_that_is_no_missing_secret_is_an_error(databricks):
    databricks.handle = lambda *request: (
        404,
        {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"},
    )
    with pytest.raises(SecretError) as caught:
        DatabricksSecrets("hw-kv", workspace=_workspace(databricks)).get("abfs-client-secret")
    assert caught.value.transient is False and "ENDPOINT_NOT_FOUND" in str(caught.value)


def test_an_unavailable_databricks_workspace_is_transient(databricks):
    calls: list[tuple[str, dict[str, str]]] = []

    def unavailable(method: str, path: str, query: dict[str, str], *rest: Any) -> Any:
        if path == "/api/2.0/secrets/get":
            calls.append((method, query))
        return 503, {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": "The service is temporarily unavailable.",
        }

    databricks.handle = unavailable
    with pytest.raises(SecretError) as caught:
        DatabricksSecrets("hw-kv", workspace=_workspace(databricks, retry_timeout_seconds=1)).get("k")
    # The SDK retries a 503 itself until its retry bound, then gives up with a TimeoutError.
    assert (caught.value.transient, caught.value.code) == (True, RunCode.STORAGE)
    assert "past the SDK's retries (TimeoutError)" in str(caught.value)
    assert calls and set(map(str, calls)) == {str(("GET", {"scope": "hw-kv", "key": "k"}))}


# --- Synapse -----------------------------------------------------------------------------------
@pytest.fixture
def notebookutils(monkeypatch):  # noqa: ANN201
    """``notebookutils.mssparkutils`` as a Synapse pool has it, with the documented signature
    ``credentials.getSecret(akvName, secret, linkedService=None)``; no Synapse runtime exists
    here, so this recording module is the nearest real thing."""
    calls: list[tuple[Any, ...]] = []
    secrets = {("hw-test", "abfs-client-secret"): "syn-s3cr3t"}

    def getSecret(akvName: str, secret: str, linkedService: str | None = None) -> str:  # noqa: N802, N803
        calls.append((akvName, secret, linkedService))
        if secret == "forbidden":
            raise RuntimeError(
                "TokenLibraryException: Forbidden: The user does not have secrets get permission"
            )
        if (akvName, secret) not in secrets:
            raise RuntimeError(
                f"TokenLibraryException: SecretNotFound: A secret with (name/id) {secret} was not found"
            )
        return secrets[(akvName, secret)]

    mssparkutils = types.ModuleType("notebookutils.mssparkutils")
    mssparkutils.credentials = types.SimpleNamespace(getSecret=getSecret)  # type: ignore[attr-defined]
    package = types.ModuleType("notebookutils")
    package.mssparkutils = mssparkutils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "notebookutils", package)
    monkeypatch.setitem(sys.modules, "notebookutils.mssparkutils", mssparkutils)
    return calls


def test_synapse_passes_the_vault_name_and_linked_service(notebookutils):
    store = SynapseSecrets(VAULT + "/", "hw_keyvault_ls")
    assert isinstance(store, SecretStore) and store.kind == "synapse"
    value = store.get("abfs-client-secret")
    assert value is not None and value.get_secret_value() == "syn-s3cr3t"
    assert store.get("abfs-client-secret") == value  # read once
    assert store.get("nope") is None
    assert notebookutils == [
        ("hw-test", "abfs-client-secret", "hw_keyvault_ls"),
        ("hw-test", "nope", "hw_keyvault_ls"),
    ]


def test_synapse_without_a_linked_service_passes_two_arguments(notebookutils):
    assert SynapseSecrets(VAULT, None).get("abfs-client-secret").get_secret_value() == "syn-s3cr3t"
    assert notebookutils == [("hw-test", "abfs-client-secret", None)]
    with pytest.raises(SecretError) as caught:
        SynapseSecrets(VAULT, None).get("forbidden")
    assert caught.value.transient is False and "synapse key vault 'hw-test'" in str(caught.value)


def test_synapse_off_a_synapse_pool_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "notebookutils", None)  # import fails, as off Synapse
    with pytest.raises(ConfigError, match="needs a Synapse Spark pool"):
        SynapseSecrets(VAULT, "ls").get("abfs-client-secret")


# --- env and selection -------------------------------------------------------------------------
def test_env_secrets_read_the_variable_named(monkeypatch):
    monkeypatch.setenv("HW_TEST_SECRET", "env-s3cr3t")
    monkeypatch.setenv("HW_TEST_EMPTY", "")
    monkeypatch.delenv("HW_TEST_UNSET", raising=False)
    store = EnvSecrets()
    assert isinstance(store, SecretStore) and store.kind == "env"
    assert store.get("HW_TEST_SECRET").get_secret_value() == "env-s3cr3t"
    assert store.get("HW_TEST_EMPTY") is None and store.get("HW_TEST_UNSET") is None
    monkeypatch.setenv("HW_TEST_SECRET", "rotated")  # read at each get: the platform may rotate it
    assert store.get("HW_TEST_SECRET").get_secret_value() == "rotated"
    assert EnvSecrets({"A": "b"}).get("A").get_secret_value() == "b"


def test_secret_store_builds_the_store_settings_name_once():
    env = secret_store(Settings())
    assert type(env) is EnvSecrets and secret_store(Settings()) is env

    kv = secret_store(
        Settings(secrets=SecretsSettings(kind="keyvault", vault_url="https://hw-sel.vault.azure.net/"))
    )
    assert type(kv) is KeyVaultSecrets and kv.vault_url == "https://hw-sel.vault.azure.net"
    assert (
        secret_store(
            Settings(secrets=SecretsSettings(kind="keyvault", vault_url="https://hw-sel.vault.azure.net/"))
        )
        is kv
    )
    other = secret_store(
        Settings(secrets=SecretsSettings(kind="keyvault", vault_url="https://hw-other.vault.azure.net"))
    )
    assert other is not kv

    dbx = secret_store(Settings(secrets=SecretsSettings(kind="databricks", scope="hw-kv")))
    assert type(dbx) is DatabricksSecrets and dbx.scope == "hw-kv"

    syn = secret_store(
        Settings(secrets=SecretsSettings(kind="synapse", vault_url=VAULT, linked_service="ls"))
    )
    assert type(syn) is SynapseSecrets and (syn.vault_name, syn.linked_service) == ("hw-test", "ls")


def test_secret_store_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEADWATER_SECRETS__KIND", "databricks")
    monkeypatch.setenv("HEADWATER_SECRETS__SCOPE", "hw-env-scope")
    store = secret_store(Settings())
    assert type(store) is DatabricksSecrets and store.scope == "hw-env-scope"


@pytest.mark.parametrize(
    ("secrets", "variable"),
    [
        (SecretsSettings(kind="keyvault"), "HEADWATER_SECRETS__VAULT_URL"),
        (SecretsSettings(kind="databricks"), "HEADWATER_SECRETS__SCOPE"),
        (SecretsSettings(kind="synapse", linked_service="ls"), "HEADWATER_SECRETS__VAULT_URL"),
    ],
)
def test_a_kind_without_its_setting_names_the_variable(secrets, variable):
    with pytest.raises(ConfigError) as caught:
        secret_store(Settings(secrets=secrets))
    assert variable in str(caught.value) and f"secrets.kind={secrets.kind}" in str(caught.value)


def test_an_http_vault_url_in_settings_is_a_config_error():
    with pytest.raises(ConfigError, match="HEADWATER_SECRETS__VAULT_URL"):
        secret_store(
            Settings(secrets=SecretsSettings(kind="keyvault", vault_url="http://hw.vault.azure.net"))
        )
