"""The Spark session headwater runs on: the cluster's own, or a local one with Delta.

On Databricks and Synapse a session already exists and has Delta; we only set what our code
relies on (ANSI mode, UTC) and the ABFS auth. Under spark-submit the JVM exists before Python
starts: its master, memory and jars are spark-submit's, and we only add Delta's SQL settings it
did not give. Otherwise we build a local one with delta-spark's jars from Maven Central
(``spark.jars.packages``), or from a folder of pre-fetched jars.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
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
    secret = settings.secret(auth.client_secret_name)
    if not (auth.tenant_id and auth.client_id and secret):
        from ingestion.core.errors import ConfigError

        raise ConfigError(
            "spark.auth.kind=oauth needs spark.auth.tenant_id, spark.auth.client_id and the "
            f"secret in ${auth.client_secret_name}"
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


# Decided by whoever launched the JVM (spark-submit, a cluster): never overridden by headwater.
LAUNCH_KEYS = ("spark.master", "spark.driver.memory", "spark.jars", "spark.jars.packages")


def submitted_conf() -> dict[str, str] | None:
    """The Spark conf spark-submit (or an existing SparkContext) decided, or None for neither.

    Under spark-submit the JVM is already running and pyspark connects to it; its conf
    (``spark.master``, memory, ``spark.jars``...) is read from that JVM.

    Returns:
        The launched context's conf, or None when this process is to launch its own JVM.
    """
    from pyspark import SparkConf, SparkContext

    from ingestion.core.config import launched_by_spark_submit

    active = SparkContext._active_spark_context
    if active is not None:
        return dict(active.getConf().getAll())
    if not launched_by_spark_submit():
        return None
    SparkContext._ensure_initialized()  # connects to spark-submit's JVM, launches nothing
    return dict(SparkConf().getAll())


DEFAULT_WAREHOUSE = Path(tempfile.gettempdir()) / "headwater" / "spark-warehouse"


def session_options(
    settings: Settings, *, submitted: dict[str, str] | None, warehouse: Path | None = None
) -> dict[str, str]:
    """The options headwater gives a new session's builder.

    Args:
        settings: headwater settings (master and driver memory for a local session).
        submitted: the conf spark-submit decided (:func:`submitted_conf`), or None for a local
            session this process launches.
        warehouse: spark.sql.warehouse.dir.

    Returns:
        For a local session: master, app name, driver memory, UI off, Delta's SQL settings.
        Under spark-submit: only Delta's SQL settings it did not set itself; master, memory
        and jars are left as spark-submit decided (the Delta jars come from its ``--packages``
        or ``--jars``).
    """
    opts: dict[str, str] = {}
    if submitted is None:
        opts.update(
            {
                "spark.master": settings.spark.master,
                "spark.app.name": settings.spark.app_name,
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.driver.memory": settings.spark.driver_memory,
            }
        )
    defaults = {**DELTA_CONF, "spark.databricks.delta.snapshotPartitions": "2"}
    # headwater addresses tables by path and never uses managed ones; Spark would still create
    # `spark-warehouse/` in the working directory (the project root) unless told otherwise.
    defaults["spark.sql.warehouse.dir"] = str(warehouse or DEFAULT_WAREHOUSE)
    for key, value in defaults.items():
        if submitted is None or key not in submitted:
            opts[key] = value
    return opts


def get_spark(
    settings: Settings | None = None,
    *,
    warehouse: Path | None = None,
    jvm_log: Path | None = None,
) -> SparkSession:
    """The active session (cluster), the one spark-submit launched, or a new local one with Delta.

    Under spark-submit the master, memory and jars are what its command line said: a job
    submitted to a cluster runs there, never quietly on ``local[2]``.

    Args:
        settings: the Spark settings for a new local session (master, memory, Delta jars);
            default :func:`get_settings`.
        warehouse: spark.sql.warehouse.dir for a new session.
        jvm_log: file for the local JVM's console output (the CLI keeps the terminal clean).

    Returns:
        The session, with headwater's runtime settings (ANSI, UTC, ABFS auth) applied.
    """
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    spark = SparkSession.getActiveSession()
    if spark is None:
        submitted = submitted_conf()
        builder = SparkSession.builder
        for key, value in session_options(settings, submitted=submitted, warehouse=warehouse).items():
            builder = builder.config(key, value)
        if submitted is not None:
            spark = builder.getOrCreate()
            log.info("using the session spark-submit launched (master %s)", submitted.get("spark.master"))
        else:
            spark = _launch_local(builder, settings, jvm_log)
        spark.sparkContext.setLogLevel("ERROR")
    for key, value in runtime_conf(settings).items():
        spark.conf.set(key, value)
    return spark


def _launch_local(builder: SparkSession.Builder, settings: Settings, jvm_log: Path | None) -> SparkSession:
    """Launch a local JVM with Delta's jars (pre-fetched folder, Ivy, or Maven as a fallback)."""
    # Local workers must run this interpreter (a venv's), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark.jars_dir:
        builder = _with_jars(builder, Path(settings.spark.jars_dir))
        with _jvm_output_to(jvm_log):
            return builder.getOrCreate()
    from delta import configure_spark_with_delta_pip

    try:
        with _jvm_output_to(jvm_log):
            return configure_spark_with_delta_pip(builder).getOrCreate()
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
            return builder.getOrCreate()


def _with_jars(builder: SparkSession.Builder, folder: Path) -> SparkSession.Builder:
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars:
        from ingestion.core.errors import ConfigError

        raise ConfigError(f"no Delta jars in {folder}")
    return builder.config("spark.jars", ",".join(jars))
