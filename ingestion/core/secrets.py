"""One interface that resolves a named secret, wherever the process runs.

``settings.secrets.kind`` picks the store (:func:`secret_store`):

* ``env`` (the default, and the Function App's): the secret named ``X`` is the environment
  variable ``X``. The Function App's app settings are Key Vault references the platform resolves
  into environment variables, so it needs no SDK and no network call.
* ``keyvault``: the secret of that name in ``secrets.vault_url``, read with azure-keyvault-secrets
  and ``DefaultAzureCredential`` (a CLI on a laptop, a VM, a container).
* ``databricks``: the key of that name in the secret ``secrets.scope``, through databricks-sdk's
  ``dbutils.secrets``: the cluster's own dbutils on a cluster, the REST call
  ``GET /api/2.0/secrets/get`` elsewhere.
* ``synapse``: on a Synapse Spark pool, ``mssparkutils.credentials.getSecret`` of the Key Vault
  ``secrets.vault_url`` names, through ``secrets.linked_service`` when one is set.

Every store answers ``None`` for a secret that does not exist and raises :class:`SecretError`
when it cannot answer; values are ``SecretStr`` (they print as ``**********``), and no message
ever holds a value or a token. The SDKs are imported when a store first needs them: the core
package imports without any of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

from pydantic import SecretStr

from ingestion.core.errors import ConfigError, HeadwaterError
from ingestion.core.reasons import RunCode

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient
    from databricks.sdk import WorkspaceClient

    from ingestion.core.config import Settings

__all__ = [
    "DatabricksSecrets",
    "EnvSecrets",
    "KeyVaultSecrets",
    "SecretError",
    "SecretStore",
    "SynapseSecrets",
    "secret_store",
]

# Statuses after which the same request may succeed (throttling, an outage, a slow gateway).
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_REASON = 200


class SecretError(HeadwaterError):
    """A secret store could not answer (the message names the secret and the store, never a value).

    Attributes:
        name: the secret's name.
        store: the store, e.g. ``keyvault https://hw.vault.azure.net``.
        transient: True when the same read may succeed later (throttling, outage, network).
    """

    code = RunCode.CONFIG

    def __init__(self, name: str, store: str, reason: str, *, transient: bool = False) -> None:
        super().__init__(f"secret {name!r} in {store}: {reason}")
        self.name = name
        self.store = store
        self.transient = transient
        # Terminal failures are the deployment's to fix (a role, a scope ACL); transient ones
        # count like a storage outage, which retries up to their bound.
        self.code = RunCode.STORAGE if transient else RunCode.CONFIG


@runtime_checkable
class SecretStore(Protocol):
    """Resolves a named secret.

    Attributes:
        kind: the ``secrets.kind`` this store serves.
    """

    kind: str

    def get(self, name: str) -> SecretStr | None:
        """The secret called ``name``, or None when the store has no such secret.

        Raises:
            SecretError: the store refused or could not be reached.
        """
        ...


class EnvSecrets:
    """The secret named ``name`` is the environment variable ``name`` (unset or empty: None)."""

    kind = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # Read at each get, never copied: the environment is the platform's to change.
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    def get(self, name: str) -> SecretStr | None:
        """The variable's value.

        Args:
            name: the environment variable's name.

        Returns:
            Its value, or None when it is unset or empty.
        """
        value = self._environ.get(name)
        return SecretStr(value) if value else None


class KeyVaultSecrets:
    """Secrets of one Azure Key Vault, read with azure-keyvault-secrets.

    Args:
        vault_url: ``https://<vault>.vault.azure.net`` (or a sovereign cloud's vault URL).
        credential: the identity to read with; ``DefaultAzureCredential()`` when None.
        **client_kwargs: passed to ``SecretClient`` (``transport=``, ``retry_total=``...).

    Raises:
        ConfigError: ``vault_url`` is not an https URL.
    """

    kind = "keyvault"

    def __init__(
        self, vault_url: str, *, credential: TokenCredential | None = None, **client_kwargs: Any
    ) -> None:
        self.vault_url = _vault_url(vault_url)
        self.store = f"keyvault {self.vault_url}"
        self._credential = credential
        self._client_kwargs = client_kwargs
        self._client: SecretClient | None = None
        self._values: dict[str, SecretStr] = {}
        self._lock = threading.Lock()

    def _secret_client(self) -> SecretClient:
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                credential = self._credential
                if credential is None:
                    # Built on first use: it probes the environment, managed identity and CLIs.
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                self._client = SecretClient(self.vault_url, credential, **self._client_kwargs)
            return self._client

    def get(self, name: str) -> SecretStr | None:
        """The latest version of the secret ``name``, read once per store.

        Args:
            name: the secret's name in the vault.

        Returns:
            Its value, or None when the vault has no such secret (or it has no value).

        Raises:
            SecretError: terminal when the identity is refused (401/403) or the request is bad;
                transient when the vault throttles, fails (5xx) or cannot be reached.
        """
        if name in self._values:
            return self._values[name]
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            secret = self._secret_client().get_secret(name)
        except ResourceNotFoundError:
            return None  # not cached: a secret created later is found by the next read
        except ClientAuthenticationError as err:
            # Also what azure.identity raises when no credential could get a token.
            raise SecretError(name, self.store, f"authentication failed ({_azure_reason(err)})") from None
        except HttpResponseError as err:
            status = err.status_code or 0
            if status in (401, 403):
                raise SecretError(
                    name,
                    self.store,
                    f"access denied (HTTP {status}: {_azure_reason(err)}); the identity needs "
                    "get permission on the vault's secrets (role Key Vault Secrets User)",
                ) from None
            transient = status in _TRANSIENT_STATUS
            raise SecretError(
                name, self.store, f"HTTP {status}: {_azure_reason(err)}", transient=transient
            ) from None
        except (ServiceRequestError, ServiceResponseError) as err:
            raise SecretError(
                name, self.store, f"vault unreachable ({type(err).__name__})", transient=True
            ) from None
        if secret.value is None:
            return None
        value = SecretStr(secret.value)
        self._values[name] = value
        return value


class DatabricksSecrets:
    """Keys of one Databricks secret scope (often Key Vault-backed), read with databricks-sdk.

    Reads through ``WorkspaceClient().dbutils.secrets``: on a cluster databricks-sdk hands back
    the runtime's own dbutils (the cluster's identity, values redacted in notebook output);
    elsewhere its remote dbutils, which calls ``GET /api/2.0/secrets/get?scope=..&key=..`` and
    decodes the base64 value. ``w.secrets.get_secret`` is the same REST call, but is not the
    runtime's path on a cluster.

    Args:
        scope: the secret scope.
        workspace: the client to read with; ``WorkspaceClient()`` (databricks-sdk's own
            configuration: the runtime, ``DATABRICKS_*``, Azure identities) when None.
    """

    kind = "databricks"

    def __init__(self, scope: str, *, workspace: WorkspaceClient | None = None) -> None:
        self.scope = scope
        self.store = f"databricks scope {scope!r}"
        self._workspace = workspace
        self._dbutils: Any = None  # the runtime's dbutils or the SDK's RemoteDbUtils
        self._values: dict[str, SecretStr] = {}
        self._lock = threading.Lock()

    def _utils(self) -> Any:
        with self._lock:
            if self._dbutils is None:
                workspace = self._workspace
                if workspace is None:
                    from databricks.sdk import WorkspaceClient

                    try:
                        workspace = WorkspaceClient()
                    except ValueError as err:  # no auth configured: the SDK says which it tried
                        raise ConfigError(
                            f"secrets.kind=databricks: databricks-sdk found no workspace "
                            f"authentication ({_first_line(str(err))})"
                        ) from None
                # Each .dbutils access builds a new one: keep this one.
                self._dbutils = workspace.dbutils
            return self._dbutils

    def get(self, name: str) -> SecretStr | None:
        """The key ``name`` of the scope, read once per store.

        Args:
            name: the secret's key in the scope.

        Returns:
            Its value, or None when the scope or the key does not exist.

        Raises:
            SecretError: terminal when the identity may not read the scope (or the request is
                bad); transient when the workspace throttles, fails or cannot be reached.
            ConfigError: no workspace authentication could be found.
        """
        if name in self._values:
            return self._values[name]
        from databricks.sdk.errors import (
            DatabricksError,
            NotFound,
            PermissionDenied,
            ResourceDoesNotExist,
            Unauthenticated,
        )

        utils = self._utils()
        try:
            raw = utils.secrets.get(scope=self.scope, key=name)
        except NotFound as err:
            # RESOURCE_DOES_NOT_EXIST: no such scope or key. Another 404 (ENDPOINT_NOT_FOUND: a
            # host that is no workspace) must not read as a missing secret.
            if isinstance(err, ResourceDoesNotExist) or err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise SecretError(name, self.store, _databricks_reason(err)) from None
        except (PermissionDenied, Unauthenticated) as err:
            raise SecretError(
                name,
                self.store,
                f"access denied ({_databricks_reason(err)}); the identity needs READ on the scope",
            ) from None
        except DatabricksError as err:
            transient = _databricks_transient(err)
            raise SecretError(name, self.store, _databricks_reason(err), transient=transient) from None
        except (TimeoutError, OSError) as err:
            # requests' errors are OSErrors; the SDK raises TimeoutError when its own retries of
            # 429/503 or of a refused connection run out.
            raise SecretError(
                name,
                self.store,
                f"workspace unreachable or unavailable past the SDK's retries ({type(err).__name__})",
                transient=True,
            ) from None
        except Exception as err:
            # The runtime's dbutils raises JVM errors, recognisable only by their text, e.g.
            # "IllegalArgumentException: Secret does not exist with scope: s and key: k".
            text = str(err)
            if "does not exist" in text:
                return None
            if "PERMISSION_DENIED" in text or "not have permission" in text.lower():
                raise SecretError(name, self.store, "access denied (PERMISSION_DENIED)") from None
            raise
        if not raw:
            return None
        value = SecretStr(str(raw))
        self._values[name] = value
        return value


class SynapseSecrets:
    """Secrets of an Azure Key Vault, read on a Synapse Spark pool with ``mssparkutils``.

    Calls ``mssparkutils.credentials.getSecret(akvName, secret, linkedService)`` (``from
    notebookutils import mssparkutils``, the pool's runtime). Through a linked service the
    workspace's managed identity reads the vault; without one, the identity running the session.

    Args:
        vault_url: ``https://<vault>.vault.azure.net``; ``<vault>`` is the ``akvName`` passed.
        linked_service: the workspace's linked service to that Key Vault, or None.

    Raises:
        ConfigError: ``vault_url`` is not an https vault URL.
    """

    kind = "synapse"

    def __init__(self, vault_url: str, linked_service: str | None = None) -> None:
        self.vault_url = _vault_url(vault_url)
        self.vault_name = urlparse(self.vault_url).netloc.split(".", 1)[0]
        self.linked_service = linked_service
        via = f" via linked service {linked_service!r}" if linked_service else ""
        self.store = f"synapse key vault {self.vault_name!r}{via}"
        self._values: dict[str, SecretStr] = {}

    def get(self, name: str) -> SecretStr | None:
        """The secret ``name`` of the vault, read once per store.

        Args:
            name: the secret's name in the vault.

        Returns:
            Its value, or None when the vault has no such secret.

        Raises:
            ConfigError: this process is not on a Synapse Spark pool (no ``notebookutils``).
            SecretError: the vault refused the workspace's identity (terminal).
        """
        if name in self._values:
            return self._values[name]
        utils = _mssparkutils()
        try:
            if self.linked_service:
                raw = utils.credentials.getSecret(self.vault_name, name, self.linked_service)
            else:
                raw = utils.credentials.getSecret(self.vault_name, name)
        except Exception as err:
            # TokenLibrary's errors reach Python as JVM errors; only their text tells them apart.
            text = str(err)
            if "SecretNotFound" in text:
                return None
            if any(word in text for word in ("Forbidden", "Unauthorized", "AuthorizationFailed")):
                raise SecretError(
                    name,
                    self.store,
                    "access denied; the workspace identity needs get permission on the vault's secrets",
                ) from None
            raise
        if not raw:
            return None
        value = SecretStr(str(raw))
        self._values[name] = value
        return value


def secret_store(settings: Settings) -> SecretStore:
    """The store ``settings.secrets`` names; one per configuration in a process.

    Args:
        settings: headwater's settings (``settings.secrets``).

    Returns:
        The store; the same object for the same kind, vault URL, scope and linked service, so a
        process builds one client and reads each secret once.

    Raises:
        ConfigError: the kind needs a setting that is unset (the message names its variable),
            or the vault URL is not https.
    """
    s = settings.secrets
    return _store(s.kind, s.vault_url, s.scope, s.linked_service)


@cache
def _store(kind: str, vault_url: str | None, scope: str | None, linked_service: str | None) -> SecretStore:
    if kind == "env":
        return EnvSecrets()
    if kind == "keyvault":
        return KeyVaultSecrets(_required(kind, "vault_url", vault_url))
    if kind == "databricks":
        return DatabricksSecrets(_required(kind, "scope", scope))
    if kind == "synapse":
        return SynapseSecrets(_required(kind, "vault_url", vault_url), linked_service)
    raise ConfigError(f"secrets.kind {kind!r} is none of env, keyvault, databricks, synapse")


def _required(kind: str, field: str, value: str | None) -> str:
    if not value:
        raise ConfigError(
            f"secrets.kind={kind} needs secrets.{field}: set HEADWATER_SECRETS__{field.upper()}"
        )
    return value


def _vault_url(url: str) -> str:
    """``url`` without trailing slashes, when it is an https URL with a host."""
    cleaned = url.strip().rstrip("/")
    parsed = urlparse(cleaned)
    if parsed.scheme != "https" or not parsed.netloc:
        # Key Vault only sends its token challenge over TLS; an http URL would never work.
        raise ConfigError(
            f"secrets.vault_url (HEADWATER_SECRETS__VAULT_URL) must be an https URL like "
            f"https://<vault>.vault.azure.net, not {cleaned!r}"
        )
    return cleaned


def _mssparkutils() -> Any:
    try:
        from notebookutils import mssparkutils  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "secrets.kind=synapse needs a Synapse Spark pool: notebookutils.mssparkutils is not "
            "importable in this process (use secrets.kind=keyvault elsewhere)"
        ) from None
    return mssparkutils


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


def _azure_reason(err: Any) -> str:
    """The service's error code and message (Key Vault's error body), else the HTTP reason."""
    error = getattr(err, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if code or message:
        return _first_line(f"{code}: {message}" if code and message else str(code or message))
    response = getattr(err, "response", None)
    return str(getattr(response, "reason", None) or type(err).__name__)


def _databricks_reason(err: Any) -> str:
    code = getattr(err, "error_code", None)
    text = _first_line(str(err))
    return f"{code}: {text}" if code else text or type(err).__name__


def _databricks_transient(err: Any) -> bool:
    from databricks.sdk.errors import DeadlineExceeded, InternalError, TemporarilyUnavailable, TooManyRequests

    return isinstance(err, (TooManyRequests, InternalError, TemporarilyUnavailable, DeadlineExceeded))
