"""A Databricks Asset Bundle (``databricks.yml``) with one job per dataset pipeline.

``databricks bundle deploy -t <env>`` builds headwater's wheel (the ``headwater`` artifact), uploads
it and creates or updates one job per dataset, ``headwater-pipeline-<dataset>``: a single
``python_wheel_task`` calling the wheel's ``headwater-job pipeline --dataset <dataset>`` (exit code
= the job's), with the wheel and the pinned PyPI requirements of
:func:`~ingestion.remote.libraries.cluster_requirements` as libraries (never pyspark or
delta-spark: the runtime ships them), ``max_concurrent_runs: 1`` with queueing (a second trigger
waits instead of being skipped; the pipeline's leases would refuse it anyway) and
``settings.submit.databricks.timeout_seconds`` as the job's timeout.

Cluster: a job cluster from ``settings.submit.databricks`` (``spark_version``, ``node_type_id``,
``num_workers``), or ``existing_cluster_id`` when that is set (as ``runs/submit`` does). No Delta
session conf is set: the Databricks Runtime configures Delta itself. The job cluster's
``spark_env_vars`` carry ``HEADWATER_ENV=${bundle.target}`` and the lake settings, the variables
:mod:`ingestion.remote.databricks` gives a submitted run.

Workspace host, per target: ``--host ENV=URL`` for that environment, else ``--host URL`` for
every environment, else ``settings.submit.databricks.host`` (``HEADWATER_SUBMIT__DATABRICKS__HOST``).
With none, rendering is refused: a bundle cannot take ``workspace.host`` from a ``${var...}``
variable (the CLI authenticates before it interpolates), and leaving it out would deploy to
whatever workspace the deploying shell's profile points at, prod included. The other settings
(lake, cluster size) are the current ones for every target: render once per environment, with
that environment's ``HEADWATER_*`` settings, when environments differ in more than the host.

Paths: the artifact's ``path`` and the library's ``whl`` are relative to the bundle file, so they
point from the output folder back to the project (``.`` and ``./dist/*.whl`` when the bundle is
written at the project's root, ``../..`` and ``../../dist/*.whl`` for ``deploy/databricks``).

Validation: every job is round-tripped through databricks-sdk's
``databricks.sdk.service.jobs.JobSettings`` (``from_dict`` then ``as_dict``) and must come back
equal: ``from_dict`` silently drops keys it does not know, so any difference is a misspelled key,
and the bundle is refused (nothing is written). ``from_dict`` keeps a value of the wrong type as it
is (``"3600"`` for an integer, an enum's misspelled value), so every value is also checked against
its field's declared type. Bundle-only job keys
(resource keys of a bundle job that are not ``JobSettings`` fields) are listed in
:data:`BUNDLE_ONLY_KEYS`: ``permissions`` only, split off before the round trip and checked on its
own. The bundle's own mappings (``bundle``, ``artifacts``, ``targets``...) are checked against the
keys this renderer means to write.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ingestion.core.config import Environment, Settings
from ingestion.deploy.common import DeployError, diff, job_args, job_name
from ingestion.remote.libraries import (
    ENTRY_POINT,
    NEVER,
    PACKAGE,
    TASK_KEY,
    cluster_environment,
    cluster_requirements,
)

BUNDLE_FILE = "databricks.yml"
BUNDLE_NAME = "headwater"
ARTIFACT = "headwater"
CLUSTER_KEY = "pipeline"
ALL_ENVS = "*"  # the key of a ``--host URL`` meant for every environment
# Job resource keys a bundle accepts that are not JobSettings fields (checked apart from the round trip).
BUNDLE_ONLY_KEYS = ("permissions",)
_PERMISSION_LEVELS = {"CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"}
_PRINCIPALS = {"user_name", "group_name", "service_principal_name"}
_HOST_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$")
# What this renderer writes outside the jobs: a typo here is not caught by any SDK model.
_BUNDLE_KEYS = {"bundle", "artifacts", "resources", "targets"}
_ARTIFACT_KEYS = {"type", "build", "path"}
_TARGET_KEYS = {"workspace"}
_WORKSPACE_KEYS = {"host"}


def parse_hosts(values: Sequence[str]) -> dict[str, str]:
    """``--host`` values: ``ENV=URL`` for one environment, a bare ``URL`` for every one.

    Args:
        values: the option's values.

    Returns:
        Environment name (or :data:`ALL_ENVS`) -> URL.

    Raises:
        DeployError: an unknown environment, a URL given twice for one, or not an https URL.
    """
    out: dict[str, str] = {}
    for value in values:
        env, sep, url = value.partition("=")
        key = env if sep else ALL_ENVS
        url = url if sep else value
        if sep and env not in {e.value for e in Environment}:
            raise DeployError(f"--host {value!r}: unknown environment {env!r} (known: dev, qa, prod)")
        if key in out:
            raise DeployError(f"--host {value!r}: a host is given twice for {key}")
        out[key] = _check_host(url, f"--host {value!r}")
    return out


def _check_host(url: str, what: str) -> str:
    if not _HOST_RE.match(url):
        raise DeployError(
            f"{what}: {url!r} is not a workspace URL (https://adb-<id>.<n>.azuredatabricks.net)"
        )
    return url.rstrip("/")


def resolve_hosts(
    envs: Sequence[Environment], settings: Settings, hosts: Mapping[str, str] | None = None
) -> dict[Environment, str]:
    """Each environment's workspace host (see the module docstring for the precedence).

    Args:
        envs: the environments rendered.
        settings: ``settings.submit.databricks.host`` is the default.
        hosts: :func:`parse_hosts`'s result.

    Returns:
        Environment -> host.

    Raises:
        DeployError: an environment has no host, or a host names an environment not rendered.
    """
    hosts = dict(hosts or {})
    stray = sorted(k for k in hosts if k != ALL_ENVS and Environment(k) not in envs)
    if stray:
        raise DeployError(f"--host given for {', '.join(stray)}, which is not rendered (add --env)")
    default = hosts.get(ALL_ENVS) or settings.submit.databricks.host
    out: dict[Environment, str] = {}
    for env in envs:
        host = hosts.get(env.value) or default
        if not host:
            raise DeployError(
                f"no Databricks workspace host for {env.value}: pass --host {env.value}=https://... "
                "or set HEADWATER_SUBMIT__DATABRICKS__HOST"
            )
        out[env] = _check_host(host, f"host of {env.value}")
    return out


def _libraries(project: str) -> list[dict[str, Any]]:
    reqs = cluster_requirements()
    shipped = [r for r in reqs if re.split(r"[\[=<>!~ ;]", r, maxsplit=1)[0].lower() in NEVER]
    if shipped:  # the runtime's own pyspark/Delta must never be replaced by a wheel's pin
        raise DeployError(f"cluster requirements list {', '.join(shipped)}, which the cluster ships")
    return [{"whl": f"{project}/dist/*.whl"}] + [{"pypi": {"package": req}} for req in reqs]


def pipeline_job(dataset: str, settings: Settings, *, project: str = ".") -> dict[str, Any]:
    """The bundle job running ``dataset``'s pipeline (a ``resources.jobs`` value).

    Args:
        dataset: the dataset.
        settings: ``settings.submit.databricks`` (cluster, timeout) and the lake settings.
        project: the project folder, relative to the bundle file (where ``dist/`` is built).

    Returns:
        The job, as JobSettings' JSON shape.
    """
    db = settings.submit.databricks
    task: dict[str, Any] = {
        "task_key": TASK_KEY,
        "python_wheel_task": {
            "package_name": PACKAGE,
            "entry_point": ENTRY_POINT,
            "parameters": job_args(dataset),
        },
        "libraries": _libraries(project),
    }
    job: dict[str, Any] = {
        "name": job_name(dataset),
        "max_concurrent_runs": 1,
        "queue": {"enabled": True},
        "timeout_seconds": db.timeout_seconds,
        "tags": {"headwater-dataset": dataset, "headwater-job": "pipeline"},
        "tasks": [task],
    }
    if db.existing_cluster_id:
        task["existing_cluster_id"] = db.existing_cluster_id
    else:
        task["job_cluster_key"] = CLUSTER_KEY
        job["job_clusters"] = [
            {
                "job_cluster_key": CLUSTER_KEY,
                "new_cluster": {
                    "spark_version": db.spark_version,
                    "node_type_id": db.node_type_id,
                    "num_workers": db.num_workers,
                    "spark_env_vars": cluster_environment(settings, "${bundle.target}"),
                },
            }
        ]
    return job


def _check_permissions(key: str, permissions: Any) -> list[str]:
    if not isinstance(permissions, list):
        return ["permissions: not a list"]
    problems = []
    for i, perm in enumerate(permissions):
        where = f"permissions[{i}]"
        if not isinstance(perm, Mapping):
            problems.append(f"{where}: not a mapping")
            continue
        unknown = sorted(set(perm) - _PRINCIPALS - {"level"})
        principals = sorted(set(perm) & _PRINCIPALS)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)}")
        if perm.get("level") not in _PERMISSION_LEVELS:
            problems.append(
                f"{where}.level: {perm.get('level')!r} is not one of {sorted(_PERMISSION_LEVELS)}"
            )
        if len(principals) != 1:
            problems.append(f"{where}: needs exactly one of {sorted(_PRINCIPALS)}")
    return problems


def _type_problems(tp: Any, value: Any, path: str) -> list[str]:
    """Where ``value`` is not of the SDK's declared type ``tp``: ``from_dict`` keeps a wrong type as is."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if (
        origin is typing.Union or origin is types.UnionType
    ):  # Optional[X]: None is dropped by as_dict, and so caught by the diff
        return _type_problems(next(a for a in args if a is not type(None)), value, path)
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for i, item in enumerate(value) for p in _type_problems(args[0], item, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, Mapping):
            return [f"{path}: {value!r} is not a mapping"]
        return [p for k, item in value.items() for p in _type_problems(args[1], item, f"{path}.{k}")]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            return [f"{path}: {value!r} is not a mapping ({tp.__name__})"]
        hints = typing.get_type_hints(tp)
        return [
            p
            for k, item in value.items()
            if k in hints
            for p in _type_problems(hints[k], item, f"{path}.{k}")
        ]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = sorted(str(e.value) for e in tp)
        return [] if value in allowed else [f"{path}: {value!r} is not one of {', '.join(allowed)}"]
    # bool is an int in Python, not in JSON: neither stands for the other.
    if tp is bool and not isinstance(value, bool):
        return [f"{path}: {value!r} is not a boolean"]
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{path}: {value!r} is not an integer"]
    if tp is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [f"{path}: {value!r} is not a number"]
    if tp is str and not isinstance(value, str):
        return [f"{path}: {value!r} is not a string"]
    return []


def check_job(key: str, job: Mapping[str, Any]) -> None:
    """Refuse a bundle job that databricks-sdk's ``JobSettings`` does not take exactly as written.

    Args:
        key: the job's key under ``resources.jobs`` (named in the error).
        job: the job.

    Raises:
        DeployError: a value is not of the field's declared type (``from_dict`` keeps it as is),
            the round trip differs (a misspelled key), or a bundle-only key is malformed; the
            message names the job and every differing key.
    """
    from databricks.sdk.service.jobs import JobSettings

    settings = {k: v for k, v in job.items() if k not in BUNDLE_ONLY_KEYS}
    problems = _check_permissions(key, job["permissions"]) if "permissions" in job else []
    types = [p.lstrip(".") for p in _type_problems(JobSettings, settings, "")]
    problems += types
    try:
        problems += diff(settings, JobSettings.from_dict(settings).as_dict())
    except (AttributeError, TypeError, ValueError) as err:  # from_dict fails on some wrong types
        if not types:
            problems.append(f"not a JobSettings: {err}")
    if problems:
        raise DeployError(
            f"bundle job {key!r} does not round-trip through JobSettings: " + "; ".join(problems)
        )


def _check_keys(where: str, mapping: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise DeployError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def check_bundle(bundle: Mapping[str, Any]) -> None:
    """Refuse a bundle with a key this renderer does not mean to write, or a job that does not round-trip.

    Args:
        bundle: the ``databricks.yml`` document.

    Raises:
        DeployError: names the mapping or job and the keys.
    """
    _check_keys("bundle", bundle, _BUNDLE_KEYS)
    for name, artifact in bundle.get("artifacts", {}).items():
        _check_keys(f"artifacts.{name}", artifact, _ARTIFACT_KEYS)
    for name, target in bundle.get("targets", {}).items():
        _check_keys(f"targets.{name}", target, _TARGET_KEYS)
        _check_keys(f"targets.{name}.workspace", target.get("workspace", {}), _WORKSPACE_KEYS)
    _check_keys("resources", bundle.get("resources", {}), {"jobs"})
    for key, job in bundle.get("resources", {}).get("jobs", {}).items():
        check_job(key, job)


def bundle(
    datasets: Sequence[str],
    envs: Sequence[Environment],
    settings: Settings,
    *,
    hosts: Mapping[str, str] | None = None,
    project: str = ".",
) -> dict[str, Any]:
    """The ``databricks.yml`` document, checked (:func:`check_bundle`).

    Args:
        datasets: the datasets, one job each.
        envs: the environments, one target each.
        settings: cluster, timeout, default host and lake settings.
        hosts: :func:`parse_hosts`'s result.
        project: the project folder relative to the bundle file.

    Returns:
        The document.

    Raises:
        DeployError: a host is missing or malformed, or the document does not check.
    """
    resolved = resolve_hosts(envs, settings, hosts)
    doc: dict[str, Any] = {
        "bundle": {"name": BUNDLE_NAME},
        "artifacts": {
            ARTIFACT: {"type": "whl", "build": "pip wheel --no-deps --wheel-dir dist .", "path": project}
        },
        "resources": {"jobs": {job_name(ds): pipeline_job(ds, settings, project=project) for ds in datasets}},
        "targets": {env.value: {"workspace": {"host": resolved[env]}} for env in envs},
    }
    check_bundle(doc)
    return doc


def relative_project(out: Path, project: Path) -> str:
    """The project folder as the bundle file in ``out`` reaches it (POSIX, ``.`` when the same).

    Raises:
        DeployError: ``project`` has no ``pyproject.toml`` (the wheel could not be built there).
    """
    if not (project / "pyproject.toml").is_file():
        raise DeployError(f"--project {str(project)!r}: no pyproject.toml there to build the wheel from")
    return Path(os.path.relpath(project.resolve(), out.resolve())).as_posix()


def render(
    datasets: Sequence[str],
    envs: Sequence[Environment],
    settings: Settings,
    *,
    hosts: Mapping[str, str] | None = None,
    project: str = ".",
) -> dict[str, str]:
    """The bundle's files: ``{"databricks.yml": text}`` (sorted keys, no timestamps: deterministic).

    Args:
        datasets: the datasets, one job each.
        envs: the environments, one target each.
        settings: see :func:`bundle`.
        hosts: see :func:`bundle`.
        project: see :func:`bundle`.

    Returns:
        File name (relative to the output folder) -> content.

    Raises:
        DeployError: see :func:`bundle`.
    """
    doc = bundle(datasets, envs, settings, hosts=hosts, project=project)
    header = "# Rendered by `headwater deploy render --target databricks`; re-render instead of editing.\n"
    return {BUNDLE_FILE: header + yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)}
