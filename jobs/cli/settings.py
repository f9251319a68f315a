"""``headwater settings show``: the resolved settings, where each value came from, secrets redacted."""

from __future__ import annotations

import json
from typing import Any

import typer

from ingestion.core.profiles import Resolved, SettingsError, resolve, secret_variables, variable_is_set
from ingestion.core.redact import REDACTED, is_secret_setting, looks_secret
from jobs.cli.app import app, emit, fail, table

settings_app = typer.Typer(help="The settings in effect, layer by layer.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict) and data:
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*prefix, str(key)))]
    return [(prefix, data)]


def rows(resolved: Resolved) -> list[dict[str, Any]]:
    """One row per setting: dotted name, value (redacted where secret) and source."""
    out = []
    named = secret_variables(resolved.settings)
    for path, value in _leaves(resolved.settings.model_dump(mode="json")):
        shown = value if isinstance(value, str) else json.dumps(value)
        if is_secret_setting(path) or looks_secret(shown):
            value = REDACTED
        row = {"setting": ".".join(path), "value": value, "source": resolved.source(path)}
        if isinstance(value, str) and value.upper() in named:
            # The setting names the variable holding a secret: say whether it is there, never what.
            row["note"] = "names a secret: " + ("set" if variable_is_set(value) else "not set")
        out.append(row)
    return out


@settings_app.command("show")
def show(
    env: str | None = typer.Option(
        None, "--env", help="Show another environment's settings (dev, qa, prod)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the resolved settings with the source of each value (defaults < headwater.toml < profile < environment)."""
    try:
        resolved = resolve(env=env)
    except SettingsError as err:
        raise fail(f"{err} [{err.code}]", 2) from None
    data = rows(resolved)
    head = {
        "env": resolved.settings.env.value,
        "project": str(resolved.project) if resolved.project else None,
        "profile": str(resolved.profile) if resolved.profile else None,
    }
    title = (
        f"settings · env {head['env']} · project {head['project'] or '-'} · profile {head['profile'] or '-'}"
    )
    shown = table(
        title,
        ["setting", "value", "source"],
        [
            [r["setting"], f"{r['value']}  ({r['note']})" if "note" in r else r["value"], r["source"]]
            for r in data
        ],
    )
    emit({**head, "settings": data}, as_json=as_json, table=shown)
