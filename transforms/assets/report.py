"""The drift report: one self-contained HTML page per asset version (inline CSS and SVG only).

Read at a glance: the verdict first, then the columns that moved with before/after bars, then the
full table. No scripts, no external fonts or images: it opens the same from a lake, a mail or
an Azure ML artifact.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
from typing import Any

COLOURS = {
    "drift": "#c62828",
    "warn": "#ef6c00",
    "ok": "#2e7d32",
    "stable": "#2e7d32",
    "baseline": "#1565c0",
    "skipped": "#757575",
}
PREV, CUR = "#9e9e9e", "#1565c0"

CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#212121;margin:0;background:#fafafa}
main{max-width:980px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px}
.sub{color:#616161;margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.verdict{display:flex;gap:18px;align-items:center;background:#fff;border:1px solid #e0e0e0;border-left:6px solid var(--c);border-radius:6px;padding:14px 18px}
.verdict .big{font-size:26px;font-weight:700;color:var(--c);text-transform:uppercase}
.kpis{display:flex;gap:28px;flex-wrap:wrap}.kpi b{display:block;font-size:18px}.kpi span{color:#616161;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e0e0e0}
th,td{padding:6px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-size:12px;text-transform:uppercase;color:#616161;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:8px;border-radius:2px;vertical-align:middle;margin-left:6px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.chart{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 12px}
.chart h3{font-size:14px;margin:0 0 2px}.chart p{margin:0 0 6px;color:#616161;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
footer{margin-top:28px;color:#757575;font-size:12px}
code{background:#eee;padding:0 4px;border-radius:3px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _badge(verdict: str) -> str:
    return f'<span class="badge" style="background:{COLOURS.get(verdict, "#757575")}">{_e(verdict)}</span>'


def _value(x: float, kind: str) -> str:
    """A bin edge or mean for people: dates and timestamps as such, numbers to 4 digits."""
    if kind == "date":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=round(x))).strftime("%b %d")
    if kind == "timestamp":
        return dt.datetime.fromtimestamp(x, tz=dt.timezone.utc).strftime("%b %d %H:%M")
    return f"{x:.4g}"


def _bin_labels(entry: dict[str, Any]) -> list[str]:
    if entry["kind"] == "categorical":
        return [str(c) for c in entry["categories"]]
    edges = entry.get("edges") or []
    if not edges:
        return ["all"]
    kind = entry["kind"]
    labels = [f"≤{_value(edges[0], kind)}"]
    labels += [f"{_value(a, kind)}–{_value(b, kind)}" for a, b in itertools.pairwise(edges)]
    labels.append(f">{_value(edges[-1], kind)}")
    return labels


def bars_svg(
    labels: list[str], prev: list[float], cur: list[float], *, width: int = 440, height: int = 200
) -> str:
    """Grouped bars of two distributions (fractions), previous grey, current blue."""
    left, bottom, top = 40, 62, 10
    n = max(len(labels), 1)
    plot_w, plot_h = width - left - 28, height - bottom - top
    peak = max([*prev, *cur, 0.01])
    group = plot_w / n
    bw = max(min(group * 0.38, 22), 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'viewBox="0 0 {width} {height}" font-size="10" font-family="sans-serif">'
    ]
    for k in range(5):  # grid and y labels
        v = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{width - 28}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#757575">{v * 100:.0f}%</text>'
        )
    for i, label in enumerate(labels):
        x0 = left + group * i + group / 2
        for j, (vals, colour) in enumerate(((prev, PREV), (cur, CUR))):
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / peak
            x = x0 - bw + j * bw
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{_e(label)}: {v * 100:.1f}%</title></rect>"
            )
        short = label if len(label) <= 16 else label[:15] + "…"
        parts.append(
            f'<text transform="translate({x0:.1f},{top + plot_h + 8}) rotate(35)" fill="#424242">{_e(short)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{width - 28}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#9e9e9e"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _notes(entry: dict[str, Any]) -> str:
    notes = []
    if entry.get("note"):
        notes.append(entry["note"])
    if entry.get("new_categories"):
        notes.append("new: " + ", ".join(map(str, entry["new_categories"][:5])))
    if entry.get("vanished_categories"):
        notes.append("vanished: " + ", ".join(map(str, entry["vanished_categories"][:5])))
    if entry.get("prev_mean") is not None and entry.get("cur_mean") is not None:
        kind = entry.get("kind", "numeric")
        notes.append(f"mean {_value(entry['prev_mean'], kind)} → {_value(entry['cur_mean'], kind)}")
    return "; ".join(notes)


def render_report(
    *,
    asset: str,
    previous: str | None,
    drift: dict[str, Any],
    tags: dict[str, str],
    generated_at: dt.datetime | None = None,
) -> str:
    """The HTML page for one asset version's drift against its previous version."""
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    verdict = drift["verdict"]
    colour = COLOURS.get(verdict, "#757575")
    th = drift["thresholds"]
    cols = drift["columns"]
    order = {"drift": 0, "warn": 1, "ok": 2, "skipped": 3}
    ranked = sorted(cols.items(), key=lambda kv: (order.get(kv[1]["verdict"], 4), -(kv[1].get("psi") or 0)))
    flagged = [n for n, c in ranked if c["verdict"] in ("drift", "warn")]
    rows_line = (
        f"{drift['prev_rows']:,} → {drift['rows']:,} rows ({drift['row_change'] * 100:+.1f}%)"
        if drift.get("prev_rows") is not None and drift.get("row_change") is not None
        else f"{drift['rows']:,} rows"
    )
    out = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Drift {_e(asset)}</title>'
        f"<style>{CSS}</style></head><body><main>"
    ]
    out.append(f"<h1>Drift report · {_e(asset)}</h1>")
    against = (
        f"compared with <b>{_e(previous)}</b>"
        if previous
        else "first version: the baseline for later comparisons"
    )
    out.append(
        f'<p class="sub">{against} · Delta version {_e(tags.get("delta_version", "?"))} · '
        f"thresholds PSI warn {th['warn']}, drift {th['drift']}</p>"
    )
    summary = (
        (f"{len(flagged)} of {len(cols)} columns moved: " + ", ".join(flagged))
        if flagged
        else ("no column moved beyond the thresholds" if previous else "profile stored for the next version")
    )
    out.append(
        f'<div class="verdict" style="--c:{colour}"><div class="big">{_e(verdict)}</div>'
        f'<div class="kpis"><div class="kpi"><b>{_e(rows_line)}</b><span>row count</span></div>'
        f'<div class="kpi"><b>{_e(summary)}</b><span>columns</span></div></div></div>'
    )

    if previous:
        charted = [n for n in flagged if cols[n].get("prev_bins")] or [
            n for n, c in ranked if c.get("prev_bins")
        ][:2]
        if charted:
            title = "Columns that moved" if flagged else "Largest changes (none beyond thresholds)"
            out.append(f"<h2>{title}</h2>")
            out.append(
                f'<p class="legend"><span style="background:{PREV}"></span>{_e(previous)} (previous)'
                f'<span style="background:{CUR}"></span>{_e(asset)} (this version)</p>'
            )
            out.append('<div class="charts">')
            for n in charted:
                c = cols[n]
                stats = f"PSI {_fmt(c.get('psi'))}" + (
                    f" · KS {_fmt(c.get('ks'))}" if c.get("ks") is not None else ""
                )
                out.append(
                    f'<div class="chart"><h3>{_e(n)} {_badge(c["verdict"])}</h3><p>{_e(stats)} · {_e(_notes(c))}</p>'
                    f"{bars_svg(_bin_labels(c), c['prev_bins'], c['cur_bins'])}</div>"
                )
            out.append("</div>")

    out.append(
        "<h2>All columns</h2><table><thead><tr><th>column</th><th>type</th><th>verdict</th>"
        "<th>PSI</th><th>KS</th><th>null rate</th><th>notes</th></tr></thead><tbody>"
    )
    for n, c in ranked:
        p = c.get("psi")
        bar = ""
        if p is not None:
            w = min(p / max(th["drift"] * 2, 1e-9), 1.0) * 80
            bar = f'<span class="bar" style="width:{w:.0f}px;background:{COLOURS.get(c["verdict"], "#757575")}"></span>'
        nulls = (
            f"{_pct(c.get('prev_null_rate'))} → {_pct(c.get('null_rate'))}"
            if c.get("null_rate") is not None
            else "–"
        )
        out.append(
            f"<tr><td><b>{_e(n)}</b></td><td>{_e(c['type'])}</td><td>{_badge(c['verdict'])}</td>"
            f'<td class="num">{_fmt(p)}{bar}</td><td class="num">{_fmt(c.get("ks"))}</td>'
            f"<td>{_e(nulls)}</td><td>{_e(_notes(c))}</td></tr>"
        )
    out.append("</tbody></table>")

    keep = ["delta_version", "table_uri", "row_count", "schema_hash", "run_id", "environment", "code_version"]
    out.append("<h2>Version</h2><table><tbody>")
    for k in keep:
        if k in tags:
            out.append(f"<tr><th>{_e(k)}</th><td><code>{_e(tags[k])}</code></td></tr>")
    out.append("</tbody></table>")
    out.append(
        f"<footer>Numeric PSI over 10 bins from the previous version's deciles (ε-smoothed); KS at the "
        f"previous version's 101 quantile points; categorical PSI over the union of categories. "
        f"Generated {generated_at:%Y-%m-%d %H:%M UTC} by headwater.</footer>"
    )
    out.append("</main></body></html>")
    return "".join(out)
