"""Deployment definitions for running headwater's pipeline jobs on Databricks or Synapse.

``headwater deploy render --target databricks|synapse --env ENV`` (:mod:`jobs.cli.deploy`) calls
:func:`render` then :func:`write`. Each renderer checks what it renders against its service's own
model (databricks-sdk's ``JobSettings``, azure-synapse-artifacts' ``SparkJobDefinitionResource``)
and refuses with :class:`DeployError` before anything is written. No pyspark here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ingestion.core.config import Environment, Settings
from ingestion.deploy.common import DeployError, check_datasets, job_name, parse_envs

TARGETS = ("databricks", "synapse")
# Files a render owns in its output folder: a stale one (a dataset since removed) is deleted.
_OWNED = {"databricks": ("databricks.yml",), "synapse": ("*/headwater-pipeline-*.json",)}


def check_target(target: str) -> str:
    """``target`` if it is one of :data:`TARGETS`.

    Raises:
        DeployError: another name.
    """
    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    return target


def render(
    target: str,
    datasets: Sequence[str],
    envs: Sequence[str | Environment],
    settings: Settings,
    *,
    out: Path,
    project: Path = Path("."),
    hosts: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every file of ``target``'s definitions, checked, in memory.

    Args:
        target: ``databricks`` or ``synapse``.
        datasets: the datasets to deploy a pipeline job for.
        envs: the environments (names or members).
        settings: the submit settings (cluster, pool...) and lake settings.
        out: the output folder (the bundle's paths are relative to it).
        project: the project folder with ``pyproject.toml`` (Databricks builds the wheel there).
        hosts: Databricks workspace hosts (``parse_hosts``); refused for Synapse.

    Returns:
        File path relative to ``out`` -> content.

    Raises:
        DeployError: bad input, or a definition its service's model refuses.
    """
    from ingestion.deploy import databricks_bundle, synapse_jobs

    check_target(target)
    if settings.lake.kind != "azure" or not settings.lake.account:
        # A remote cluster cannot reach a local lake: the jobs would write nowhere anyone reads.
        raise DeployError(
            f"the lake is {settings.lake.kind!r}{'' if settings.lake.account else ' with no account'}: "
            "a deployed job needs HEADWATER_LAKE__KIND=azure and HEADWATER_LAKE__ACCOUNT"
        )
    names = check_datasets(datasets)
    environments = parse_envs(envs)
    if target == "databricks":
        rel = databricks_bundle.relative_project(out, project)
        return databricks_bundle.render(names, environments, settings, hosts=hosts, project=rel)
    if hosts:
        raise DeployError("--host is for --target databricks (Synapse definitions name a pool, not a host)")
    return synapse_jobs.render(names, environments, settings)


def write(target: str, files: Mapping[str, str], out: Path) -> tuple[list[Path], list[Path]]:
    """Write ``files`` under ``out``, and delete the files of an earlier render no longer rendered.

    Only files this render owns are deleted (``databricks.yml``; ``<env>/headwater-pipeline-*.json``
    of the environments rendered now), so a dataset removed from the catalog loses its job
    definition instead of being deployed from a stale file.

    Args:
        target: the target rendered.
        files: :func:`render`'s result.
        out: the output folder (created).

    Returns:
        The paths written and the paths deleted, sorted.
    """
    written = []
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    envs = {Path(rel).parts[0] for rel in files if len(Path(rel).parts) > 1}
    stale = [
        p
        for pattern in _OWNED[check_target(target)]
        for p in out.glob(pattern)
        if p.is_file() and p not in written and (len(p.relative_to(out).parts) == 1 or p.parent.name in envs)
    ]
    for p in stale:
        p.unlink()
    return written, sorted(stale)


__all__ = ["TARGETS", "DeployError", "check_target", "job_name", "render", "write"]
