"""What a remote cluster installs for a run: headwater's wheel plus its pinned PyPI dependencies."""

from __future__ import annotations

from importlib import resources

NEVER = ("pyspark", "delta-spark")  # the cluster ships its own


def cluster_requirements() -> list[str]:
    """The pinned requirements (``name[extra]==version``) a cluster installs beside the wheel."""
    text = resources.files("ingestion.remote").joinpath("cluster-requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
