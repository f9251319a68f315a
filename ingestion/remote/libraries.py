"""What a remote cluster installs for a run: headwater's wheel plus its pinned PyPI dependencies."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ingestion.core.config import Environment

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.config import Settings

NEVER = ("pyspark", "delta-spark")  # the cluster ships its own


def cluster_requirements() -> list[str]:
    """The pinned requirements (``name[extra]==version``) a cluster installs beside the wheel."""
    text = resources.files("ingestion.remote").joinpath("cluster-requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def cluster_environment(settings: Settings, env: Environment | str) -> dict[str, str]:
    """The ``HEADWATER_*`` variables a deployed job's driver and executors get.

    What a submitted run's job cluster (:mod:`ingestion.remote.databricks`) and a rendered
    deployment (:mod:`ingestion.deploy`) both get: the environment, and the lake (kind,
    account, containers) from ``settings``. Secrets are never among them: the cluster reaches
    the lake with its own identity.

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
    return dict(sorted(out.items()))
