"""Typed settings, read from the environment (prefix ``HEADWATER_``, nested with ``__``).

Every environment variable headwater reads is read here. Secrets never live here as literals:
the Function side authenticates with ``DefaultAzureCredential``; Spark's ABFS OAuth secret (and
Azurite's connection string in tests) is read through :meth:`Settings.secret` from the variable
a setting *names*, when it is needed, and is held as a ``SecretStr`` so it never reaches a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ingestion.core.errors import ConfigError

ZONES = ("landing", "bronze", "silver", "gold", "quarantine", "system")


class Environment(str, Enum):
    """Named deployment environments; each may point at its own lake and workspace."""

    dev = "dev"
    qa = "qa"
    prod = "prod"


class LakeSettings(BaseModel):
    """Where the zones live.

    ``kind="local"``: one folder with a sub-folder per zone (the default).
    ``kind="azure"``: one ADLS Gen2 account with a container per zone, so RBAC can differ per zone.
    """

    kind: Literal["local", "azure"] = "local"
    root: Path = Path("lake")
    account: str | None = None
    containers: dict[str, str] = Field(default_factory=lambda: {z: z for z in ZONES})
    # The Blob endpoint; overridable for Azurite or sovereign clouds.
    blob_endpoint: str | None = None
    # The container Event Grid dead-letters undeliverable events to (`headwater deadletter`).
    deadletter_container: str = "eventgrid-deadletter"
    # Azurite/tests only: the NAME of an environment variable holding a storage connection string.
    # Deployed code authenticates with DefaultAzureCredential; the secret never lives in settings.
    connection_string_env: str | None = None

    def container(self, zone: str) -> str:
        return self.containers.get(zone, zone)


class SparkAuthSettings(BaseModel):
    """Hadoop ABFS auth for Spark; ``DefaultAzureCredential`` does not reach Spark's driver."""

    kind: Literal["none", "oauth", "msi"] = "none"
    tenant_id: str | None = None
    client_id: str | None = None
    # The secret's name (read with Settings.secret): an environment variable with
    # secrets.kind=env (the default), else its name in the vault or secret scope.
    client_secret_name: str = "HEADWATER_ABFS_CLIENT_SECRET"


class SparkSettings(BaseModel):
    master: str = "local[2]"
    app_name: str = "headwater"
    shuffle_partitions: int = 4
    ansi: bool = True
    timezone: str = "UTC"
    driver_memory: str = "2g"
    auth: SparkAuthSettings = Field(default_factory=SparkAuthSettings)
    # Folder of pre-fetched Delta jars; used instead of Maven resolution when set.
    jars_dir: Path | None = None


class DatabricksSettings(BaseModel):
    """A run on Databricks (``HEADWATER_SUBMIT__DATABRICKS__*``): Jobs API ``runs/submit``.

    Authentication is databricks-sdk's own (``DATABRICKS_*`` variables, Azure managed identity
    or the Azure CLI); no token is ever a headwater setting.
    """

    host: str | None = None  # https://adb-<id>.<n>.azuredatabricks.net
    # The wheel, as the cluster reads it (a Unity Catalog volume or workspace file path).
    wheel: str | None = None
    existing_cluster_id: str | None = None
    # A job cluster per run when no existing cluster is named (runs/submit's new_cluster).
    spark_version: str = "15.4.x-scala2.12"  # Databricks Runtime 15.4 LTS: Spark 3.5, Delta 3.2
    node_type_id: str = "Standard_D4ds_v5"
    num_workers: int = 2
    timeout_seconds: int = 3600  # the run's own limit on Databricks (runs/submit timeout_seconds)


class SynapseSettings(BaseModel):
    """A run on a Synapse Spark pool (``HEADWATER_SUBMIT__SYNAPSE__*``): a Livy batch.

    Authenticated with ``DefaultAzureCredential`` (the Function App's managed identity).
    """

    endpoint: str | None = None  # https://<workspace>.dev.azuresynapse.net
    pool: str | None = None  # the Spark pool's name
    # The launcher (jobs/launch.py from the wheel) on ADLS: the batch's ``file``. The wheel
    # itself is a workspace or pool package.
    launcher: str | None = None
    driver_memory: str = "28g"
    driver_cores: int = 4
    executor_memory: str = "28g"
    executor_cores: int = 4
    executors: int = 2


class SubmitSettings(BaseModel):
    """How the batcher starts a run (``HEADWATER_SUBMIT__*``).

    ``kind="in-process"`` runs the job in this process (local Spark). ``kind="spark-submit"``
    runs ``spark-submit`` against ``master`` (any master: ``spark://host:7077``, ``yarn``,
    ``local[2]``...) with the job's launcher shipped in the installed wheel.
    """

    kind: Literal["in-process", "spark-submit", "databricks", "synapse"] = "in-process"
    master: str = "local[2]"
    # The job module under ``jobs`` to run: a whole pipeline run by default (or ``ingest``...).
    job: str = "pipeline"
    # PYSPARK_PYTHON of the driver and the executors: the python of the venv the wheel is in.
    python: Path | None = None
    # The spark-submit to run; default: the one in the pyspark package next to ``python``'s.
    spark_submit: Path | None = None
    # Extra ``--conf`` pairs (JSON in the environment: HEADWATER_SUBMIT__CONF='{"k": "v"}').
    conf: dict[str, str] = Field(default_factory=dict)
    # Extra environment variables for spark-submit (names and values; never logged).
    env: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = None
    databricks: DatabricksSettings = Field(default_factory=DatabricksSettings)
    synapse: SynapseSettings = Field(default_factory=SynapseSettings)


class BatchThresholds(BaseModel):
    """One dataset's override of the batching thresholds; unset fields keep the defaults."""

    max_files: int | None = None
    max_bytes: int | None = None
    max_age_seconds: float | None = None


class BatchingSettings(BaseModel):
    """When pending files of a dataset trigger an ingest run (whichever comes first)."""

    max_files: int = 100
    max_bytes: int = 256 * 1024 * 1024
    max_age_seconds: float = 300.0
    # Per-dataset overrides of the three thresholds, e.g. HEADWATER_BATCHING__DATASETS__ORDERS__MAX_FILES.
    datasets: dict[str, BatchThresholds] = Field(default_factory=dict)


class RetrySettings(BaseModel):
    """Bounded retries of transient failures (storage, cluster, lease), never of bad content."""

    # Attempts of one ingest batch inside a run, and of one batcher submit, before giving up.
    attempts: int = Field(default=3, ge=1)
    # Exponential backoff between attempts: wait_seconds * 2**n, at most max_wait_seconds.
    wait_seconds: float = Field(default=1.0, ge=0)
    max_wait_seconds: float = Field(default=30.0, ge=0)


class PipelineSettings(BaseModel):
    """Pipeline runs (ingest -> curate -> publish -> register for one dataset)."""

    # Seconds a stage after ingest waits for another run holding its lease (a curate of the
    # dataset, a publish or register of a gold it feeds) before it gives up. A lease expires
    # within ``lease_seconds`` when its holder stops renewing, so the default outwaits a crash.
    lease_wait: float = Field(default=600.0, ge=0)


class MLSettings(BaseModel):
    """Azure ML workspace; when unset, assets go to the local registry in the system area."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    datastore: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.subscription_id and self.resource_group and self.workspace)


class SecretsSettings(BaseModel):
    """Where a named secret is resolved (``HEADWATER_SECRETS__*``; ``ingestion.core.secrets``).

    ``kind="env"`` (the default, and the Function App's: its app settings are Key Vault
    references the platform resolves into environment variables): a secret's name is the
    environment variable holding it. ``keyvault``: the secret of that name in ``vault_url``, read
    with ``DefaultAzureCredential``. ``databricks``: the key of that name in the secret
    ``scope``. ``synapse``: the secret of that name in the Key Vault ``vault_url`` names, read
    through the workspace's ``linked_service``.
    """

    kind: Literal["env", "keyvault", "databricks", "synapse"] = "env"
    vault_url: str | None = None  # https://<vault>.vault.azure.net
    scope: str | None = None  # a Databricks secret scope (often Key Vault-backed)
    linked_service: str | None = None  # a Synapse linked service to the Key Vault


class TelemetrySettings(BaseModel):
    """OpenTelemetry (``HEADWATER_TELEMETRY__*``; ``ingestion.core.telemetry``).

    Exported to Application Insights when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, to
    OTLP when ``otlp_endpoint`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is, else nowhere.
    """

    otlp_endpoint: str | None = None  # e.g. http://collector:4318 (OTLP over HTTP)
    service_name: str = "headwater"
    # JSON log lines carrying run_id, dataset, zone and batch (on in the Function App).
    json_logs: bool = False


class Principal(BaseModel):
    """An Entra ID identity named in an ACL entry by its object id.

    ``kind="group"`` for security groups; ``kind="user"`` for users, service principals and
    managed identities (ADLS Gen2 names all of those in ``user:`` entries).
    """

    object_id: str
    kind: Literal["group", "user"] = "group"
    # What it is, for the plan people read (never used to grant anything).
    name: str | None = None


class FolderAccess(BaseModel):
    """Extra grants on one dataset's folder in one zone."""

    readers: list[Principal] = Field(default_factory=list)
    writers: list[Principal] = Field(default_factory=list)


class AccessSettings(BaseModel):
    """Declared access per zone and per dataset folder, as ADLS Gen2 ACLs (``headwater lake apply-access``).

    Zones are containers (``lake.containers``), so container role assignments (RBAC) give the
    coarse grant and these ACLs the per-folder one. Each list holds principals:
    ``landing_writers`` drop files into landing; ``functions`` is the Function App's identity
    (reads landing, writes the system area); ``spark`` is the Spark identity (reads landing,
    writes bronze, silver, gold, quarantine and system); ``gold_readers`` are the Azure ML
    workspace and its compute identities. ``datasets`` adds grants per dataset folder:
    ``datasets.<dataset>.<zone> = {readers = [...], writers = [...]}``.
    """

    landing_writers: list[Principal] = Field(default_factory=list)
    functions: list[Principal] = Field(default_factory=list)
    spark: list[Principal] = Field(default_factory=list)
    gold_readers: list[Principal] = Field(default_factory=list)
    datasets: dict[str, dict[str, FolderAccess]] = Field(default_factory=dict)


# The project file and profile layers (highest first) while ingestion.core.profiles builds
# settings; empty otherwise, so ``Settings(...)`` in code reads only defaults and the environment.
FILE_LAYERS: ContextVar[tuple[dict[str, Any], ...]] = ContextVar("headwater_file_layers", default=())


class _FileLayer(PydanticBaseSettingsSource):
    """One checked TOML layer (``ingestion.core.profiles.file_layer``) as a settings source."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


class Settings(BaseSettings):
    """All of headwater's settings. ``Settings()`` reads ``HEADWATER_*`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_", env_nested_delimiter="__", extra="ignore")

    env: Environment = Environment.dev
    lake: LakeSettings = Field(default_factory=LakeSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    ml: MLSettings = Field(default_factory=MLSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    lease_seconds: float = 600.0
    # Failed attempts at handling one landed blob before it is parked (ingestion.poison).
    poison_max_attempts: int = 3
    retry: RetrySettings = Field(default_factory=RetrySettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    # A CSV or JSON lines record of this many bytes or more (line break included) is not read
    # into memory: it lands as a row with code line_too_long, and the rest of its file lands.
    max_line_bytes: int = Field(default=64 * 1024 * 1024, ge=64, le=2**31 - 1)
    submit: SubmitSettings = Field(default_factory=SubmitSettings)
    # Where the contracts live (HEADWATER_SCHEMAS_PACKAGE): every module's DATASET is collected.
    schemas_package: str = "schemas"
    # Where per-dataset silver transforms live (HEADWATER_TRANSFORMS_PACKAGE).
    transforms_package: str = "transforms.datasets"
    # The code version stamped on asset versions (HEADWATER_CODE_VERSION); found from the
    # installed distribution and git when unset.
    code_version: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: code, the environment, the profile, the project file (then defaults).
        files = tuple(_FileLayer(settings_cls, data) for data in FILE_LAYERS.get())
        return (init_settings, env_settings, *files)

    def secret(self, name: str) -> SecretStr | None:
        """The secret a setting names, from the store ``secrets`` configures.

        Args:
            name: the secret's name (``spark.auth.client_secret_name``, a SQL source's
                ``connection_setting``): an environment variable with ``secrets.kind=env``, else
                the secret's name in the vault or scope.

        Returns:
            The value as a ``SecretStr`` (it prints as ``**********``), or None when unset.

        Raises:
            ConfigError: the value is a Key Vault reference nobody resolved, or the store's
                settings are incomplete.
            ingestion.core.secrets.SecretError: the store could not answer (transient or not).
        """
        from ingestion.core.secrets import secret_store

        value = secret_store(self).get(name)
        if value is not None and value.get_secret_value().startswith("@Microsoft.KeyVault("):
            raise ConfigError(
                f"{name} holds a Key Vault reference that was not resolved: only a Function App"
                " resolves them (grant its identity 'Key Vault Secrets User'); elsewhere set the"
                " value itself or use secrets.kind=keyvault"
            )
        return value

    def environment_secret(self, variable: str) -> SecretStr | None:
        """The secret in environment variable ``variable`` whatever the store (Azurite, tests).

        Args:
            variable: the variable's name, e.g. ``lake.connection_string_env``.

        Returns:
            The value as a ``SecretStr``, or None when unset.
        """
        value = os.environ.get(variable)
        return SecretStr(value) if value else None


def launched_by_spark_submit() -> bool:
    """Whether spark-submit started this Python process.

    spark-submit's PythonRunner starts the JVM first and hands its gateway to Python in
    ``PYSPARK_GATEWAY_PORT``; pyspark connects to that JVM instead of launching one, so the
    master, memory and jars were decided on the spark-submit command line.

    Returns:
        True under spark-submit (or ``pyspark`` shells, which start the same way).
    """
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a child process (spark-submit, a cluster JVM) starts with.

    Args:
        extra: variables to set on top of this process's environment.

    Returns:
        A copy of ``os.environ`` with ``extra`` applied (secrets pass through to the child
        unchanged and are never put on its command line).
    """
    env = dict(os.environ)
    env.update(extra or {})
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from every layer and checked.

    Returns:
        Defaults < ``headwater.toml`` < ``environments/<env>.toml`` < ``HEADWATER_*`` variables
        (:mod:`ingestion.core.profiles`).

    Raises:
        ingestion.core.profiles.SettingsError: an unknown or invalid setting, named.
    """
    from ingestion.core.profiles import load_settings

    return load_settings()
