"""Gold and asset commands: publish, register, assets list|show|drift|archive, vacuum, trace."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import typer
from rich.tree import Tree

from jobs.cli.app import (
    Context,
    app,
    console,
    emit,
    exit_with,
    run_app,
    run_cli,
    status_section,
    table,
)

JSON = typer.Option(False, "--json", help="Machine-readable output.")
assets_app = typer.Typer(help="Registered asset versions: list, show, drift, archive.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")
_ASSET_REF = re.compile(r"^[a-z][a-z0-9_]*:\d+$")


def _registry(ctx: Context) -> Any:
    from transforms.assets import open_registry

    return open_registry(ctx.settings, ctx.storage)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _register_table(result: dict[str, Any]) -> Any:
    rows = [
        [
            result["outcome"],
            result["asset"],
            result["delta_version"],
            result["verdict"],
            ", ".join(result["drifted"]) or "-",
            result["report"] or result["reason"],
        ]
    ]
    return table(
        "register", ["outcome", "asset", "Delta version", "drift", "drifted columns", "report / reason"], rows
    )


def _publish_table(rec: dict[str, Any]) -> Any:
    d = rec["details"]
    return table(
        "publish",
        ["status", "gold", "Delta version", "silver pins", "changed", "rows", "ins/upd/del"],
        [
            [
                rec["status"],
                d.get("gold"),
                rec["output_version"],
                ", ".join(f"{k}@{v}" for k, v in sorted((d.get("inputs") or {}).items())),
                d.get("changed"),
                d.get("rows", "-"),
                f"{d.get('inserted', 0)}/{d.get('updated', 0)}/{d.get('deleted', 0)}",
            ]
        ],
    )


@run_app.command("publish")
def run_publish_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose gold to publish."),
    no_register: bool = typer.Option(False, "--no-register", help="Publish only."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if silver is unchanged."),
    as_json: bool = JSON,
) -> None:
    """Publish gold from silver, then register a new asset version if gold changed."""
    from transforms.assets import publish_and_register

    ctx = Context()

    def body() -> None:
        release = publish_and_register(
            ctx.spark,
            ctx.storage,
            ctx.catalog,
            dataset,
            settings=ctx.settings,
            register_asset=not no_register,
            force=force,
        )
        out = release.as_dict()
        if as_json:
            emit(out, as_json=True)
        else:
            console.print(_publish_table(out["publish"]))
            if "register" in out:
                console.print(_register_table(out["register"]))
        exit_with(release.status)

    run_cli(body)


def _register(dataset: str, as_json: bool) -> None:
    from transforms.assets import register

    ctx = Context()

    def body() -> None:
        res = register(ctx.spark, ctx.storage, ctx.catalog, dataset, settings=ctx.settings).as_dict()
        emit(res, as_json=as_json, table=_register_table(res))
        exit_with(res["status"])

    run_cli(body)


@app.command("register")
def register_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset (or gold name) to register."),
    as_json: bool = JSON,
) -> None:
    """Register gold's current Delta version as asset version N+1 (nothing if unchanged)."""
    _register(dataset, as_json)


@run_app.command("register")
def run_register_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset (or gold name) to register."),
    as_json: bool = JSON,
) -> None:
    """Same as `headwater register`."""
    _register(dataset, as_json)


@assets_app.command("list")
def assets_list_cmd(as_json: bool = JSON) -> None:
    """Every registered asset version, newest last."""
    ctx = Context()

    def body() -> None:
        reg = _registry(ctx)
        items = [a for name in reg.names() for a in reg.versions(name)]
        rows = [
            [
                a.label,
                a.delta_version,
                a.tags.get("row_count"),
                a.tags.get("drift_verdict"),
                (a.tags.get("drift_columns") or "-").replace(",", ", "),
                "live" if a.is_live() else "archived",
                _when(a.registered_at)[:16],
            ]
            for a in items
        ]
        t = table(
            "assets",
            ["asset", "Delta v", "rows", "drift", "drifted columns", "state", "registered (UTC)"],
            rows,
        )
        emit([json.loads(a.to_json()) for a in items], as_json=as_json, table=t)

    run_cli(body)


@assets_app.command("show")
def assets_show_cmd(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    as_json: bool = JSON,
) -> None:
    """One asset version: where it points, its tags, how to load it."""
    from transforms.assets import parse_ref

    ctx = Context()

    def body() -> None:
        name, version = parse_ref(ref)
        a = _registry(ctx).get(name, version)
        if as_json:
            emit(json.loads(a.to_json()), as_json=True)
            return
        rows = [
            ["asset", a.label],
            ["type", a.asset_type],
            ["path", a.asset_uri],
            ["Delta version", a.delta_version],
            ["table", a.table_uri],
            ["registry", a.registry],
            ["registered (UTC)", _when(a.registered_at)],
            ["live", a.is_live()],
            ["run id", a.run_id],
        ]
        rows += [[f"tag {k}", v] for k, v in sorted(a.tags.items())]
        console.print(table(a.label, ["field", "value"], rows))
        if a.asset_type == "mltable":
            console.print(f"load: [bold]mltable.load({a.asset_uri!r}).to_pandas_dataframe()[/]")

    run_cli(body)


@assets_app.command("drift")
def assets_drift_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION (or NAME for the latest)."),
    as_json: bool = JSON,
) -> None:
    """How a version's data moved since the previous version, and the report's path."""
    from transforms.assets import parse_ref
    from transforms.assets.register import local_of

    ctx = Context()

    def body() -> None:
        name, version = parse_ref(ref)
        reg = _registry(ctx)
        a = reg.get(name, version)
        local = local_of(reg)
        drift = local.read_json(a.name, a.version, "drift.json") or {}
        report = f"system/registry/{a.name}/{a.version:06d}/drift.html"
        report_file = (
            str(ctx.storage.root / report) if hasattr(ctx.storage, "root") else ctx.storage.uri(report)
        )
        if as_json:
            emit({"asset": a.label, "report": report_file, **drift}, as_json=True)
            return
        prev = reg.previous(a)
        rows = []
        order = {"drift": 0, "warn": 1, "ok": 2, "skipped": 3}
        for col, c in sorted(
            (drift.get("columns") or {}).items(),
            key=lambda kv: (order.get(kv[1]["verdict"], 4), -(kv[1].get("psi") or 0)),
        ):
            extra = []
            if c.get("new_categories"):
                extra.append("new: " + ", ".join(c["new_categories"][:5]))
            if c.get("vanished_categories"):
                extra.append("vanished: " + ", ".join(c["vanished_categories"][:5]))
            if c.get("note"):
                extra.append(c["note"])
            null = (
                f"{c['prev_null_rate']:.1%} -> {c['null_rate']:.1%}"
                if c.get("null_rate") is not None
                else "-"
            )
            rows.append([col, c["verdict"], _fmt(c.get("psi")), _fmt(c.get("ks")), null, "; ".join(extra)])
        title = f"{a.label} vs {prev.label if prev else '(first version)'}: {drift.get('verdict', '?')}"
        if drift.get("prev_rows") is not None:
            title += f"  rows {drift['prev_rows']} -> {drift['rows']}"
        console.print(table(title, ["column", "verdict", "PSI", "KS", "null rate", "notes"], rows))
        console.print(f"report: {report_file}")

    run_cli(body)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


@assets_app.command("archive")
def assets_archive_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION to archive (it no longer holds files from vacuum)."),
    restore: bool = typer.Option(False, "--restore", help="Make an archived version live again."),
) -> None:
    """Archive an asset version in the local registry (vacuum may then remove its files)."""
    from transforms.assets import AssetError, parse_ref
    from transforms.assets.register import local_of

    ctx = Context()

    def body() -> None:
        name, version = parse_ref(ref)
        if version is None:
            raise AssetError(f"{ref!r}: name the version to archive (NAME:VERSION)")
        a = local_of(_registry(ctx)).set_archived(name, version, not restore)
        console.print(f"{a.label}: {'archived' if a.archived else 'live'}")

    run_cli(body)


@app.command("vacuum")
def vacuum_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset (or gold name) whose gold to vacuum."),
    retain_hours: float | None = typer.Option(
        None, "--retain-hours", help="Keep removed files younger than this (default: the asset lifetime)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    as_json: bool = JSON,
) -> None:
    """VACUUM gold, refusing to delete any file a live asset version still reads."""
    from transforms.assets.vacuum import vacuum

    ctx = Context()

    def body() -> None:
        res = vacuum(
            ctx.spark,
            ctx.storage,
            ctx.catalog,
            dataset,
            registry=_registry(ctx),
            retain_hours=retain_hours,
            dry_run=dry_run,
        )
        t = table(
            "vacuum",
            [
                "table",
                "retain (h)",
                "files " + ("to delete" if dry_run else "deleted"),
                "live versions checked",
            ],
            [[res.table, res.retain_hours, len(res.deleted), ", ".join(res.protected) or "-"]],
        )
        emit(res.as_dict(), as_json=as_json, table=t)

    run_cli(body)


def _run(run_id: Any) -> str:
    return f"run {run_id}" if run_id else "run -"


def _file_tree(trace: dict[str, Any]) -> Tree:
    root = Tree(f"[bold]{trace['path']}[/] ({trace['dataset']})")
    for chain in trace["landings"]:
        led = chain["ledger"]
        node = root.add(
            f"ledger: etag {led['etag']} status {led['status']} batch {led['batch']}"
            + (f" ({led['reason']})" if led.get("reason") else "")
        )
        if "batch" in chain:
            b = chain["batch"]
            node = node.add(
                f"batch {b['batch']} ({b['status']}, {b['disposition']}, {b['rows']} rows) {_run(b['run_id'])}"
            )
        if "bronze" in chain:
            node = node.add(f"{chain['bronze']['table']} version {chain['bronze']['version']}")
        if "silver" in chain:
            s = chain["silver"]
            node = node.add(
                f"{s['table']} version {s['version']} {_run(s['run_id'])}"
                + (f" (still in {len(s['later_versions'])} later version(s))" if s["later_versions"] else "")
            )
        for g in chain.get("gold", []):
            gnode = node.add(f"{g['table']} version {g['version']} {_run(g['run_id'])}")
            for a in g["assets"]:
                gnode.add(f"[bold]{a['asset']}[/] (Delta v{a['delta_version']}) {_run(a['run_id'])}")
    return root


def _asset_tree(trace: dict[str, Any]) -> Tree:
    root = Tree(f"[bold]{trace['asset']}[/] {_run(trace['run_id'])}")
    g = trace["gold"]
    gnode = root.add(f"{g['table']} version {g['version']} {_run(g['run_id'])}")
    for item in trace["inputs"]:
        s = item["silver"]
        snode = gnode.add(
            f"silver/{item['dataset']} version {s['version']} {_run(s['run_id'])} "
            f"(bronze up to version {item['bronze_end_version']})"
        )
        for b in item["batches"]:
            bnode = snode.add(
                f"batch {b['batch']} -> bronze version {b['bronze_version']} {_run(b['run_id'])}"
            )
            for f in b["files"]:
                bnode.add(f"{f['path']} ({f['rows']} rows, sha256 {str(f['sha256'])[:12]})")
    return root


@app.command("trace")
def trace_cmd(
    target: str = typer.Argument(..., help="A landing path (orders/2026/a.csv) or an asset NAME:VERSION."),
    as_json: bool = JSON,
) -> None:
    """Follow a landed file to the asset versions holding it, or an asset version to its files."""
    from transforms.assets.trace import trace_asset, trace_file

    ctx = Context()

    def body() -> None:
        reg = _registry(ctx)
        if _ASSET_REF.match(target):
            out = trace_asset(ctx.spark, ctx.storage, ctx.catalog, target, registry=reg)
            emit(out, as_json=as_json) if as_json else console.print(_asset_tree(out))
        else:
            out = trace_file(ctx.spark, ctx.storage, ctx.catalog, target, registry=reg)
            emit(out, as_json=as_json) if as_json else console.print(_file_tree(out))

    run_cli(body)


@status_section
def _assets_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from transforms.assets.registry import LocalRegistry

    reg = LocalRegistry(ctx.storage)
    data = []
    for name in reg.names():
        latest = reg.latest(name)
        if latest is None or (dataset and dataset not in (latest.dataset, name)):
            continue
        data.append(
            {
                "asset": latest.label,
                "delta_version": latest.delta_version,
                "drift": latest.tags.get("drift_verdict"),
                "registered": _when(latest.registered_at),
            }
        )
    t = table(
        "assets (latest versions)",
        ["asset", "Delta version", "drift", "registered (UTC)"],
        [[d["asset"], d["delta_version"], d["drift"], d["registered"]] for d in data],
    )
    return "assets", t, data
