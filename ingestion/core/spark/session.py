"""The Spark session headwater runs on: the cluster's own, or a local one with Delta.

On Databricks and Synapse a session already exists and has Delta; we only set what our code
relies on (ANSI mode, UTC) and the ABFS auth. Locally we build one with delta-spark's jars from
Maven Central (``spark.jars.packages``), or from a folder of pre-fetched jars.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.core.config import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def runtime_conf(settings: Settings) -> dict[str, str]:
    """Session settings our code depends on, identical on Spark 3.5 and 4.x."""
    conf = {
        # Spark 4 defaults ANSI on, 3.5 off: say it, so casts behave the same on both.
        "spark.sql.ansi.enabled": str(settings.spark.ansi).lower(),
        "spark.sql.session.timeZone": settings.spark.timezone,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # Lineage reads _metadata; Parquet row order must not be shuffled by the reader.
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    }
    conf.update(abfs_conf(settings))
    return conf


def abfs_conf(settings: Settings) -> dict[str, str]:
    """Hadoop ABFS auth settings for the lake's account (never logged: may carry a secret)."""
    auth = settings.spark.auth
    account = settings.lake.account
    if settings.lake.kind != "azure" or auth.kind == "none" or not account:
        return {}
    host = f"{account}.dfs.core.windows.net"
    conf = {f"fs.azure.account.auth.type.{host}": "OAuth"}
    if auth.kind == "msi":
        conf[f"fs.azure.account.oauth.provider.type.{host}"] = (
            "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
        )
        if auth.client_id:
            conf[f"fs.azure.account.oauth2.client.id.{host}"] = auth.client_id
        return conf
    secret = settings.secret(auth.client_secret_env)
    if not (auth.tenant_id and auth.client_id and secret):
        from ingestion.core.errors import ConfigError

        raise ConfigError(
            "spark.auth.kind=oauth needs spark.auth.tenant_id, spark.auth.client_id and the "
            f"secret in ${auth.client_secret_env}"
        )
    conf.update(
        {
            f"fs.azure.account.oauth.provider.type.{host}": (
                "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
            ),
            f"fs.azure.account.oauth2.client.id.{host}": auth.client_id,
            f"fs.azure.account.oauth2.client.secret.{host}": secret.get_secret_value(),
            f"fs.azure.account.oauth2.client.endpoint.{host}": (
                f"https://login.microsoftonline.com/{auth.tenant_id}/oauth2/token"
            ),
        }
    )
    return conf


@contextmanager
def _jvm_output_to(log_file: Path | None) -> Iterator[None]:
    """Send the JVM's console output (Ivy resolution, Spark's WARN lines) to a file.

    The JVM inherits the process's stdout/stderr when it starts, so redirecting the two file
    descriptors around the launch moves all its later output too; Python's own streams are
    restored at once.
    """
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def get_spark(
    settings: Settings | None = None,
    *,
    warehouse: Path | None = None,
    jvm_log: Path | None = None,
) -> SparkSession:
    """The active session (cluster), or a new local one with Delta.

    Args:
        settings: the Spark settings for a new local session (master, memory, Delta jars);
            default :func:`get_settings`.
        warehouse: spark.sql.warehouse.dir for a new local session.
        jvm_log: file for the local JVM's console output (the CLI keeps the terminal clean).
    """
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    spark = SparkSession.getActiveSession()
    if spark is None:
        # Local workers must run this interpreter (a venv's), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(settings.spark.master)
            .appName(settings.spark.app_name)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", settings.spark.driver_memory)
            .config("spark.databricks.delta.snapshotPartitions", "2")
        )
        if warehouse is not None:
            builder = builder.config("spark.sql.warehouse.dir", str(warehouse))
        for key, value in DELTA_CONF.items():
            builder = builder.config(key, value)
        if settings.spark.jars_dir:
            builder = _with_jars(builder, Path(settings.spark.jars_dir))
            with _jvm_output_to(jvm_log):
                spark = builder.getOrCreate()
        else:
            from delta import configure_spark_with_delta_pip

            try:
                with _jvm_output_to(jvm_log):
                    spark = configure_spark_with_delta_pip(builder).getOrCreate()
            except Exception as err:
                from pyspark import SparkContext

                if SparkContext._active_spark_context is not None:  # not a launch failure
                    raise
                # Ivy could not resolve spark.jars.packages: fetch with Maven, pass spark.jars.
                from ingestion.core.spark.jars import delta_coordinates, fetch_delta_jars

                coords = delta_coordinates()[0].replace(":", "_")
                cache = Path.home() / ".cache" / "headwater" / "delta-jars" / coords
                log.warning(
                    "Spark could not resolve Delta's jars (%s); fetching them with Maven into %s",
                    type(err).__name__,
                    cache,
                )
                fetch_delta_jars(cache)
                builder = _with_jars(builder.config("spark.jars.packages", ""), cache)
                with _jvm_output_to(jvm_log):
                    spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    for key, value in runtime_conf(settings).items():
        spark.conf.set(key, value)
    return spark


def _with_jars(builder: SparkSession.Builder, folder: Path) -> SparkSession.Builder:
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars:
        from ingestion.core.errors import ConfigError

        raise ConfigError(f"no Delta jars in {folder}")
    return builder.config("spark.jars", ",".join(jars))
