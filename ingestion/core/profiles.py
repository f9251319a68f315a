"""Where settings come from, and the loud failures when they are wrong.

Precedence, lowest first: the defaults in :mod:`ingestion.core.config` < the project file
(``headwater.toml`` in the project folder) < the environment's profile
(``environments/<env>.toml``, ``<env>`` from ``HEADWATER_ENV``, default ``dev``) < environment
variables (``HEADWATER_*``) < arguments given in code. Every layer is checked before it is used:
an unknown name (a mistyped variable or key) fails naming the closest valid one, and an invalid
value fails in one line naming the setting, the value and what is allowed.

The project folder is ``HEADWATER_PROJECT`` when set, else the nearest folder at or above the
working directory holding ``headwater.toml``. Relative paths in the files (``lake.root``...) are
relative to the project folder, so every command finds the same lake from any sub-folder.
"""

from __future__ import annotations

import difflib
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from ingestion.core.config import (
    FILE_LAYERS,
    Environment,
    Settings,
)
from ingestion.core.errors import SettingsError
from ingestion.core.redact import REDACTED, is_secret_setting, looks_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the platform floor (Python 3.10)
    import tomli as tomllib

PREFIX = "HEADWATER_"
PROJECT_FILE = "headwater.toml"
PROFILES = "environments"
# Read before any setting: which project (and so which files) the settings come from.
PROJECT_VARIABLE = "HEADWATER_PROJECT"
ENV_VARIABLE = "HEADWATER_ENV"

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name, its values (nested) and how each value was written.

    Attributes:
        name: ``headwater.toml``, ``environments/qa.toml``, ``environment`` or ``arguments``.
        data: nested values, keys in lower case as the settings name them.
        origins: leaf path -> where the user wrote it: the variable (``HEADWATER_LAKE__ROOT``)
            or the file (``environments/qa.toml``).
        file: whether the layer is a file (its origins name the file, not the setting).
    """

    name: str
    data: dict[str, Any]
    origins: dict[Path_, str] = field(default_factory=dict)
    file: bool = False


@dataclass(frozen=True)
class Resolved:
    """Settings with where each value came from.

    Attributes:
        settings: the validated settings.
        project: the project folder, or None when there is none (a cluster, a bare checkout).
        profile: the profile file that was read, or None.
        layers: the layers read, lowest precedence first (defaults are not a layer).
    """

    settings: Settings
    project: Path | None
    profile: Path | None
    layers: tuple[Layer, ...]

    def source(self, path: Path_) -> str:
        """Where the value at ``path`` came from: the highest layer that sets it or a parent.

        Args:
            path: a dotted setting split into parts, e.g. ``("lake", "root")``.

        Returns:
            ``default``, or the origin of the value as the user wrote it.
        """
        for layer in reversed(self.layers):
            for n in range(len(path), 0, -1):
                origin = layer.origins.get(path[:n])
                if origin is not None:
                    return origin
        return "default"


# --- the schema walk: which names exist -------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (settings are never unions of two real types)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _closest(word: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_part(path: Path_, model: type[BaseModel] = Settings) -> tuple[int, str | None] | None:
    """Whether ``path`` names a setting; if not, where it goes wrong and the closest valid part.

    Dict settings (``lake.containers``, ``batching.datasets``...) take any key at their level.

    Args:
        path: the setting's parts in lower case.
        model: the settings model to walk.

    Returns:
        None when the path names a setting (or a part of one); else ``(index, suggestion)``:
        the index of the first unknown part and the closest valid name at that level (or None).
    """
    current: Any = model
    i = 0
    while i < len(path):
        if not _is_model(current):
            return i, None  # a plain value has no parts below it
        fields = current.model_fields
        part = path[i]
        if part not in fields:
            return i, _closest(part, list(fields))
        annotation = _unwrap(fields[part].annotation)
        i += 1
        if typing.get_origin(annotation) is dict and i < len(path):
            i += 1  # any key (a zone, a dataset)
            annotation = _unwrap(typing.get_args(annotation)[1])
        current = annotation
    return None


def _path_fields(model: type[BaseModel], prefix: Path_ = ()) -> dict[Path_, Any]:
    """Every leaf path of ``model`` typed as a file path (relative ones resolve to the project)."""
    out: dict[Path_, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _unwrap(info.annotation)
        if annotation is Path:
            out[prefix + (name,)] = annotation
        elif _is_model(annotation):
            out.update(_path_fields(annotation, prefix + (name,)))
    return out


PATH_SETTINGS = frozenset(_path_fields(Settings))


# --- the layers --------------------------------------------------------------------------------
def find_project(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The project folder: ``HEADWATER_PROJECT``, else the nearest with ``headwater.toml``.

    Args:
        start: where to start looking (default: the working directory).
        environ: the environment (default: this process's).

    Returns:
        The folder, or None when no project file is found.

    Raises:
        SettingsError: ``HEADWATER_PROJECT`` names a folder without a project file.
    """
    environ = os.environ if environ is None else environ
    named = environ.get(PROJECT_VARIABLE)
    if named:
        folder = Path(named)
        folder = folder.parent if folder.name == PROJECT_FILE else folder
        if not (folder / PROJECT_FILE).is_file():
            raise SettingsError([f"{PROJECT_VARIABLE}={named!r}: no {PROJECT_FILE} there"])
        return folder.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def _flatten(data: Mapping[str, Any], prefix: Path_ = ()) -> dict[Path_, Any]:
    out: dict[Path_, Any] = {}
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _unknown_message(written: str, path: Path_, spell: typing.Callable[[Path_], str]) -> str | None:
    wrong = unknown_part(path)
    if wrong is None:
        return None
    index, suggestion = wrong
    if suggestion is None:
        return f"unknown setting {written}"
    # Keep the parts after the fix when they then name a setting (LAK__ROOT -> LAKE__ROOT).
    fixed = (*path[:index], suggestion, *path[index + 1 :])
    return f"unknown setting {written}; did you mean {spell(fixed if unknown_part(fixed) is None else fixed[: index + 1])}?"


def file_layer(file: Path, project: Path, *, label: str | None = None) -> Layer:
    """One TOML file's settings, checked name by name, with relative paths made absolute.

    Args:
        file: ``headwater.toml`` or a profile.
        project: the folder relative paths are relative to.
        label: how messages name the file (default: its path relative to the project).

    Returns:
        The layer.

    Raises:
        SettingsError: the file is not valid TOML, or names an unknown setting.
    """
    if label is None:
        label = str(file.relative_to(project)) if file.is_relative_to(project) else str(file)
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingsError([f"{label}: cannot be read as TOML: {err}"]) from None
    problems: list[str] = []
    origins: dict[Path_, str] = {}
    for path, value in _flatten(data).items():
        dotted = ".".join(path)
        if path[0] == "env":
            problems.append(f"{label} sets 'env'; the environment is chosen with {ENV_VARIABLE}")
            continue
        message = _unknown_message(f"{dotted!r} in {label}", path, lambda p: repr(".".join(p)))
        if message:
            problems.append(message)
            continue
        origins[path] = label
        if path in PATH_SETTINGS and isinstance(value, str) and not Path(value).is_absolute():
            _set(data, path, str(project / value))
    if problems:
        raise SettingsError(problems)
    return Layer(label, data, origins, file=True)


def _set(data: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def environment_layer(environ: Mapping[str, str]) -> tuple[Layer, dict[str, str]]:
    """The ``HEADWATER_*`` variables as a layer, and those that name no setting.

    Values stay as written (pydantic-settings parses them); the layer records which variable set
    which setting.

    Args:
        environ: the environment.

    Returns:
        The layer, and variable -> message for each name that is not a setting (the caller
        allows the ones settings name as holding a secret).
    """
    unknown: dict[str, str] = {}
    origins: dict[Path_, str] = {}
    data: dict[str, Any] = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper == PROJECT_VARIABLE:
            continue
        path = tuple(upper[len(PREFIX) :].lower().split("__"))
        message = _unknown_message(name, path, lambda p: PREFIX + "__".join(p).upper())
        if message:
            unknown[upper] = message
            continue
        origins[path] = name
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = environ[name]
    return Layer("environment", data, origins), unknown


def secret_variables(settings: Settings) -> set[str]:
    """The environment variables settings name as holding a secret (not settings themselves).

    Args:
        settings: the settings.

    Returns:
        Upper-case variable names.
    """
    names = {settings.lake.connection_string_env}
    if settings.secrets.kind == "env":  # otherwise the name is the secret's in a vault or scope
        names.add(settings.spark.auth.client_secret_name)
    return {n.upper() for n in names if n}


def variable_is_set(name: str) -> bool:
    """Whether the environment variable ``name`` holds a value (never what it holds).

    Args:
        name: a variable a setting names as holding a secret.

    Returns:
        True when set and not empty.
    """
    return bool(os.environ.get(name))


# --- loading -----------------------------------------------------------------------------------
def _origin(layers: list[Layer], path: Path_) -> tuple[str, str]:
    """How a message names the setting at ``path``: its variable, or its key and its file."""
    for layer in reversed(layers):
        for n in range(len(path), 0, -1):
            if path[:n] in layer.origins:
                where = layer.origins[path[:n]]
                return (".".join(path), f" in {where}") if layer.file else (where, "")
    return ".".join(path), ""


def _describe(err: ValidationError, layers: list[Layer]) -> list[str]:
    """One line per invalid value: the setting as the user wrote it, the value, what is allowed."""
    lines = []
    for problem in err.errors():
        path = tuple(str(p) for p in problem["loc"])
        name, where = _origin(layers, path)
        expected = (problem.get("ctx") or {}).get("expected")
        value = problem.get("input")
        shown = "" if isinstance(value, dict) else f"={value!r}"
        if is_secret_setting(path) or looks_secret(str(value)):
            shown = f"={REDACTED}"  # an error names the setting, never a secret's value
        why = f"expected {expected}" if expected else str(problem["msg"]).lower()
        lines.append(f"{name}{shown}{where} is not valid: {why}")
    return lines


def _build(files: list[Layer], overrides: dict[str, Any]) -> Settings:
    """Settings from the file layers (lowest first), the environment and the overrides."""
    token = FILE_LAYERS.set(tuple(layer.data for layer in reversed(files)))
    try:
        return Settings(**overrides)
    finally:
        FILE_LAYERS.reset(token)


def resolve(
    *, env: str | Environment | None = None, project: Path | None = None, **overrides: Any
) -> Resolved:
    """Read, check and merge every layer into settings, remembering where each value came from.

    Args:
        env: the environment whose profile to read (default: ``HEADWATER_ENV``, else ``dev``).
        project: the project folder (default: :func:`find_project`).
        **overrides: settings given in code (highest precedence).

    Returns:
        The resolved settings.

    Raises:
        SettingsError: an unknown name, an invalid value, a missing profile or an unreadable
            file; the message names each.
    """
    environ = dict(os.environ)
    project = project if project is not None else find_project()
    if env is None:
        name, where = environ.get(ENV_VARIABLE, Environment.dev.value), ENV_VARIABLE
    else:
        name, where = (env.value if isinstance(env, Environment) else str(env)), "--env"
    if name not in {e.value for e in Environment}:
        allowed = ", ".join(repr(e.value) for e in Environment)
        raise SettingsError([f"{where}={name!r} is not valid: expected one of {allowed}"])
    files: list[Layer] = []
    profile: Path | None = None
    if project is not None:
        files.append(file_layer(project / PROJECT_FILE, project))
        candidate = project / PROFILES / f"{name}.toml"
        if candidate.is_file():
            profile = candidate
            files.append(file_layer(candidate, project))
        elif name != Environment.dev.value:
            have = ", ".join(sorted(p.stem for p in (project / PROFILES).glob("*.toml"))) or "none"
            raise SettingsError(
                [f"{where}={name!r}: no profile {PROFILES}/{name}.toml in {project} (profiles: {have})"]
            )
    env_layer, unknown = environment_layer(environ)
    overrides = {"env": name, **overrides}
    code = Layer("arguments", overrides, {(k,): f"{k} (argument)" for k in overrides if k != "env"})
    code.origins[("env",)] = where if (env is not None or ENV_VARIABLE in environ) else "default"
    layers = [*files, env_layer, code]
    try:
        settings = _build(files, overrides)
    except ValidationError as err:
        # A name below a plain value (HEADWATER_LAKE__ROOT__X) fails validation before the name
        # check: the unknown name is the cause to report. The defaults' secret variables are known.
        default_named = secret_variables(Settings.model_construct())
        typos = [message for variable, message in unknown.items() if variable not in default_named]
        raise SettingsError(typos or _describe(err, layers)) from None
    # Variables that settings name as holding a secret are not settings: allow exactly those.
    named = secret_variables(settings)
    problems = [message for variable, message in unknown.items() if variable not in named]
    problems += [
        f"{variable} still holds a Key Vault reference: the Function App could not resolve it"
        " (check its identity's access to the vault)"
        for variable in sorted(named)
        if environ.get(variable, "").startswith("@Microsoft.KeyVault(")
    ]
    if problems:
        raise SettingsError(problems)
    return Resolved(settings, project, profile, tuple(layers))


def load_settings(*, env: str | Environment | None = None, project: Path | None = None) -> Settings:
    """The settings of this process, from every layer, checked.

    Args:
        env: the environment (default: ``HEADWATER_ENV``, else ``dev``).
        project: the project folder (default: found from the working directory).

    Returns:
        The settings.

    Raises:
        SettingsError: see :func:`resolve`.
    """
    return resolve(env=env, project=project).settings


__all__ = [
    "ENV_VARIABLE",
    "PROFILES",
    "PROJECT_FILE",
    "PROJECT_VARIABLE",
    "Layer",
    "Resolved",
    "SettingsError",
    "file_layer",
    "find_project",
    "load_settings",
    "resolve",
    "unknown_part",
]
