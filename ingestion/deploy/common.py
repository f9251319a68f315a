"""What both renderers share: the refusal error, job names, input checks, round-trip diffs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.core.config import Environment
from ingestion.core.errors import ConfigError
from ingestion.remote import libraries

JOB = "pipeline"  # the job module each definition runs: ``headwater-job pipeline --dataset D``


class DeployError(ConfigError):
    """A deployment definition cannot be rendered: bad input, or a definition its service's model refuses.

    A ``ConfigError``, so the CLI refuses with exit code 2 and writes nothing.
    """


def job_name(dataset: str) -> str:
    """The name of the job (Databricks) or job definition (Synapse) running ``dataset``'s pipeline."""
    return libraries.run_name(JOB, dataset)


def job_args(dataset: str) -> list[str]:
    """The arguments after ``headwater-job`` / ``launch.py``: ``pipeline --dataset <dataset>``."""
    return libraries.job_args(JOB, dataset)


def parse_envs(values: Iterable[str | Environment]) -> list[Environment]:
    """The environments named, in the order given, each once.

    Args:
        values: environment names (``dev``, ``qa``, ``prod``) or members.

    Returns:
        The environments, duplicates dropped.

    Raises:
        DeployError: a name is not an environment, or none is given.
    """
    out: list[Environment] = []
    for value in values:
        try:
            env = value if isinstance(value, Environment) else Environment(value)
        except ValueError:
            known = ", ".join(e.value for e in Environment)
            raise DeployError(f"unknown environment {value!r} (known: {known})") from None
        if env not in out:
            out.append(env)
    if not out:
        raise DeployError("no environment given (--env dev|qa|prod)")
    return out


def check_datasets(datasets: Iterable[str]) -> list[str]:
    """The dataset names, sorted; an empty catalog is refused (there would be nothing to deploy).

    Raises:
        DeployError: no dataset.
    """
    names = sorted(set(datasets))
    if not names:
        raise DeployError(
            "no datasets in the catalog: nothing to deploy (is HEADWATER_SCHEMAS_PACKAGE right?)"
        )
    return names


def diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` (a round-tripped definition) differs from ``expected`` (the one rendered).

    Args:
        expected: the rendered dict/list/value.
        actual: what the service's model made of it.
        path: the dotted path of ``expected`` (for the messages).

    Returns:
        One line per difference, e.g. ``tasks[0].python_wheel_taks: dropped (unknown key)``.
    """
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: dropped (unknown key)")
            elif key not in expected:
                out.append(f"{sub}: added by the model ({actual[key]!r})")
            else:
                out.extend(diff(expected[key], actual[key], sub))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items became {len(actual)}"]
        return [
            line
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for line in diff(e, a, f"{path}[{i}]")
        ]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path}: {expected!r} became {actual!r}"]
    return []
