"""What a run on a cluster is: the wheel's entry point, what the cluster installs, what it gets.

The entry point and its arguments, the pinned PyPI dependencies installed beside the wheel, and
the environment and Spark conf the job receives. One place for all of them, so a submitted run
(spark-submit, Databricks, Synapse) and a rendered deployment (:mod:`ingestion.deploy`) start
the same job the same way.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ingestion.core.config import Environment

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings

NEVER = ("pyspark", "delta-spark")  # the cluster ships its own
PACKAGE = "headwater"  # the wheel's distribution name (python_wheel_task.package_name)
ENTRY_POINT = "headwater-job"  # [project.scripts] headwater-job = "jobs.launch:run"
TASK_KEY = "pipeline"  # the one task of a Databricks run or job


def job_args(job: str, dataset: str, *, traceparent: str | None = None) -> list[str]:
    """The arguments after ``headwater-job`` / ``launch.py``: ``<job> --dataset <dataset>``.

    Followed by ``--traceparent <W3C>`` when a trace is current (a Function invocation, a pipeline
    span) or ``traceparent`` is given, so the submitted run's spans continue that trace; a
    deployment rendered outside any trace gets none.
    """
    from ingestion.core.telemetry import current_traceparent

    args = [job, "--dataset", dataset]
    parent = traceparent or current_traceparent()
    if parent:
        args += ["--traceparent", parent]
    return args


def run_name(job: str, dataset: str) -> str:
    """The name of a run (or a deployed job) of ``job`` for ``dataset``: ``headwater-<job>-<dataset>``."""
    return f"headwater-{job}-{dataset}"


def cluster_requirements() -> list[str]:
    """The pinned requirements (``name[extra]==version``) a cluster installs beside the wheel."""
    text = resources.files("ingestion.remote").joinpath("cluster-requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def cluster_environment(settings: Settings, env: Environment | str) -> dict[str, str]:
    """The ``HEADWATER_*`` variables a deployed job's driver and executors get.

    What a submitted run's job cluster (:mod:`ingestion.remote.databricks`) and a rendered
    deployment (:mod:`ingestion.deploy`) both get: the environment, and the lake (kind,
    account, containers), the Azure ML workspace and the secret store from ``settings``. Secrets
    are never among them: the cluster reaches the lake and the store with its own identity.

    Args:
        settings: the lake settings to ship.
        env: the environment (or a bundle substitution such as ``${bundle.target}``).

    Returns:
        Name -> value, sorted by name.
    """
    lake = settings.lake
    out = {
        "HEADWATER_ENV": env.value if isinstance(env, Environment) else env,
        "HEADWATER_LAKE__KIND": lake.kind,
    }
    if lake.account:
        out["HEADWATER_LAKE__ACCOUNT"] = lake.account
    for zone, container in sorted(lake.containers.items()):
        out[f"HEADWATER_LAKE__CONTAINERS__{zone.upper()}"] = container
    # The profile's Azure ML workspace (register runs on the cluster) and secret store, which
    # the cluster cannot read from the project's files: names and URLs only, never a secret.
    for prefix, section in (("HEADWATER_ML__", settings.ml), ("HEADWATER_SECRETS__", settings.secrets)):
        for name, value in section.model_dump().items():
            if value is not None and not (prefix == "HEADWATER_SECRETS__" and value == "env"):
                out[f"{prefix}{name.upper()}"] = str(value)
    return dict(sorted(out.items()))


def yarn_job_conf(settings: Settings, env: Environment | str) -> dict[str, str]:
    """The Spark conf of a job on a YARN pool (Synapse): Delta's settings and the job environment.

    The cluster environment (:func:`cluster_environment`) goes to the driver (YARN's app
    master) and to the executors.

    Args:
        settings: the lake settings to ship.
        env: the environment.

    Returns:
        Conf key -> value, sorted by key.
    """
    from ingestion.core.spark.session import DELTA_CONF

    conf = dict(DELTA_CONF)
    for name, value in cluster_environment(settings, env).items():
        conf[f"spark.yarn.appMasterEnv.{name}"] = value
        conf[f"spark.executorEnv.{name}"] = value
    return dict(sorted(conf.items()))
