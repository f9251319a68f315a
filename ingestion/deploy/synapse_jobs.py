"""Synapse Spark job definitions: one ``headwater-pipeline-<dataset>.json`` per dataset and environment.

Each file is a ``SparkJobDefinition`` artifact as a Synapse workspace's Git integration stores it
(``{"name": ..., "properties": {...}}``; publish it from Synapse Studio, or with
``az synapse spark-job-definition create --file @<file>`` which takes the ``properties``). It runs
``settings.submit.synapse.launcher`` (``jobs/launch.py`` of the wheel, on ADLS) with
``pipeline --dataset <dataset>`` on the pool ``settings.submit.synapse.pool``, sized by the
driver/executor settings. The wheel itself is a workspace or pool package, as for Livy runs.

The Spark conf turns Delta on (``spark.sql.extensions`` and ``spark.sql.catalog.spark_catalog``:
Synapse pools ship Delta's jars but do not configure the session) and passes
``HEADWATER_ENV=<environment>`` and the lake settings to the driver (``spark.yarn.appMasterEnv.*``)
and the executors (``spark.executorEnv.*``). Definitions are written per environment,
``<out>/<env>/``, in the Synapse folder ``headwater/<env>``; the other settings (pool, launcher,
sizes, lake) are the current ones for every environment, so render once per environment with that
environment's ``HEADWATER_*`` settings when they differ.

Validation: each definition is deserialized into
``azure.synapse.artifacts.models.SparkJobDefinitionResource`` and serialized back, and must come
back equal; a key the model does not know is refused too (the msrest models keep unknown keys in
``additional_properties`` instead of failing), as are a missing required field and a pool
reference of another type. A refused definition is named with every problem, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ingestion.core.config import Environment, Settings
from ingestion.deploy.common import DeployError, diff, job_args, job_name
from ingestion.remote.libraries import yarn_job_conf

POOL_REFERENCE = "BigDataPoolReference"


def definition(dataset: str, env: Environment, settings: Settings) -> dict[str, Any]:
    """The job definition running ``dataset``'s pipeline in ``env`` (not yet checked).

    Args:
        dataset: the dataset.
        env: the environment (the job's ``HEADWATER_ENV`` and its Synapse folder).
        settings: ``settings.submit.synapse`` (pool, launcher, sizes) and the lake settings.

    Returns:
        The artifact, in Synapse's JSON shape.

    Raises:
        DeployError: the pool or the launcher is not set.
    """
    syn = settings.submit.synapse
    missing = [
        var
        for var, value in (
            ("HEADWATER_SUBMIT__SYNAPSE__POOL", syn.pool),
            ("HEADWATER_SUBMIT__SYNAPSE__LAUNCHER", syn.launcher),
        )
        if not value
    ]
    if missing:
        raise DeployError(
            f"Synapse job definitions need {' and '.join(missing)} (the Spark pool, jobs/launch.py on ADLS)"
        )
    name = job_name(dataset)
    return {
        "name": name,
        "properties": {
            "description": f"headwater pipeline of dataset {dataset} ({env.value}): headwater-job pipeline --dataset {dataset}",
            "folder": {"name": f"headwater/{env.value}"},
            "language": "python",
            "targetBigDataPool": {"referenceName": syn.pool, "type": POOL_REFERENCE},
            "jobProperties": {
                "name": name,
                "file": syn.launcher,
                "args": job_args(dataset),
                "conf": yarn_job_conf(settings, env),
                "driverMemory": syn.driver_memory,
                "driverCores": syn.driver_cores,
                "executorMemory": syn.executor_memory,
                "executorCores": syn.executor_cores,
                "numExecutors": syn.executors,
            },
        },
    }


def _bad_values(cls: Any, data: Any, path: str) -> list[str]:
    """The keys whose values the model cannot deserialize (its own error names no key)."""
    from azure.core.exceptions import DeserializationError
    from azure.synapse.artifacts import models
    from azure.synapse.artifacts._serialization import Deserializer

    if not isinstance(data, dict):
        return [f"{path or 'definition'}: {data!r} is not an object"]
    deserialize = Deserializer({k: v for k, v in vars(models).items() if isinstance(v, type)})
    problems: list[str] = []
    for spec in cls._attribute_map.values():
        key, kind = spec["key"], spec["type"]
        if not key or key not in data:
            continue
        sub = f"{path}.{key}" if path else key
        nested = getattr(models, kind, None)
        if hasattr(nested, "_attribute_map"):
            problems += _bad_values(nested, data[key], sub)
            continue
        try:  # the one field alone, through the models' own deserializer
            deserialize(kind, data[key])
        except DeserializationError:
            problems.append(f"{sub}: {data[key]!r} is not of type {kind}")
    return problems


def _walk(model: Any, path: str) -> list[str]:
    """Unknown keys (``additional_properties``) and missing required fields, through nested models."""
    problems: list[str] = []
    extra = getattr(model, "additional_properties", None) or {}
    problems += [f"{path}.{key}: unknown key" if path else f"{key}: unknown key" for key in sorted(extra)]
    for attr, spec in type(model)._attribute_map.items():
        if attr == "additional_properties":
            continue
        sub = f"{path}.{spec['key']}" if path else spec["key"]
        value = getattr(model, attr, None)
        rules = type(model)._validation.get(attr, {})
        if value is None and rules.get("required") and not rules.get("readonly"):
            problems.append(f"{sub}: required, missing")
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if hasattr(type(item), "_attribute_map"):
                problems += _walk(item, f"{sub}[{i}]" if isinstance(value, list) else sub)
    return problems


def check_definition(doc: dict[str, Any]) -> None:
    """Refuse a job definition ``SparkJobDefinitionResource`` does not take exactly as written.

    Args:
        doc: the artifact (``{"name": ..., "properties": {...}}``).

    Raises:
        DeployError: an unknown or missing key, a value of the wrong type, a pool reference of
            another type, or any difference after the round trip; names the definition and keys.
    """
    from azure.core.exceptions import DeserializationError
    from azure.synapse.artifacts.models import SparkJobDefinitionResource

    name = doc.get("name", "?")
    try:
        model = SparkJobDefinitionResource.deserialize(doc)
    except DeserializationError:
        where = "; ".join(_bad_values(SparkJobDefinitionResource, doc, "")) or "a value of the wrong type"
        raise DeployError(f"Synapse job definition {name!r}: not a SparkJobDefinition: {where}") from None
    problems = _walk(model, "")
    pool = model.properties.target_big_data_pool if model.properties else None
    if pool is not None and pool.type != POOL_REFERENCE:
        problems.append(f"properties.targetBigDataPool.type: {pool.type!r} is not {POOL_REFERENCE!r}")
    problems += diff(doc, model.serialize(keep_readonly=True))
    if problems:
        raise DeployError(
            f"Synapse job definition {name!r} does not round-trip: " + "; ".join(sorted(set(problems)))
        )


def render(datasets: Sequence[str], envs: Sequence[Environment], settings: Settings) -> dict[str, str]:
    """Every definition, checked: ``{"<env>/headwater-pipeline-<dataset>.json": text}``.

    Args:
        datasets: the datasets.
        envs: the environments (one folder each).
        settings: see :func:`definition`.

    Returns:
        File path (relative to the output folder) -> JSON text (sorted keys, deterministic).

    Raises:
        DeployError: see :func:`definition` and :func:`check_definition`.
    """
    files: dict[str, str] = {}
    for env in envs:
        for ds in datasets:
            doc = definition(ds, env, settings)
            check_definition(doc)
            files[f"{env.value}/{job_name(ds)}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return files
