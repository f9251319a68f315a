"""The drift report is one self-contained page: verdict first, charts for moved columns."""

from __future__ import annotations

import re

from transforms.assets.report import bars_svg, render_report

DRIFT = {
    "verdict": "drift",
    "thresholds": {"warn": 0.1, "drift": 0.25},
    "rows": 120,
    "prev_rows": 100,
    "row_change": 0.2,
    "columns": {
        "amount": {
            "kind": "numeric",
            "type": "double",
            "verdict": "drift",
            "psi": 0.9,
            "ks": 0.4,
            "edges": [10.0, 20.0],
            "prev_bins": [0.3, 0.4, 0.3],
            "cur_bins": [0.1, 0.2, 0.7],
            "prev_mean": 15.0,
            "cur_mean": 25.0,
            "null_rate": 0.0,
            "prev_null_rate": 0.0,
        },
        "country": {
            "kind": "categorical",
            "type": "string",
            "verdict": "ok",
            "psi": 0.01,
            "categories": ["DE", "<FR>", "__other__"],
            "prev_bins": [0.5, 0.5, 0.0],
            "cur_bins": [0.52, 0.48, 0.0],
            "new_categories": [],
            "vanished_categories": ["<FR>"],
            "null_rate": 0.0,
            "prev_null_rate": 0.0,
        },
        "id": {"kind": "skipped", "type": "string", "verdict": "skipped", "note": "key"},
    },
}


def test_report_is_self_contained_and_leads_with_the_verdict():
    html = render_report(asset="f:2", previous="f:1", drift=DRIFT, tags={"delta_version": "5"})

    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html)  # nothing fetched from elsewhere
    assert html.index("drift</div>") < html.index("<svg")  # verdict before the charts
    assert "1 of 3 columns moved: amount" in html
    assert "100 → 120 rows (+20.0%)" in html
    assert html.count("<svg") == 1  # only the moved column gets a chart
    assert "&lt;FR&gt;" in html  # values are escaped


def test_stable_version_still_shows_the_largest_changes():
    stable = dict(
        DRIFT,
        verdict="stable",
        columns={
            k: dict(v, verdict="ok") if v["verdict"] == "drift" else v for k, v in DRIFT["columns"].items()
        },
    )
    html = render_report(asset="f:2", previous="f:1", drift=stable, tags={})
    assert "Largest changes (none beyond thresholds)" in html and "<svg" in html


def test_baseline_report_has_no_comparison():
    base = {
        "verdict": "baseline",
        "thresholds": {"warn": 0.1, "drift": 0.25},
        "rows": 10,
        "prev_rows": None,
        "row_change": None,
        "columns": {},
    }
    html = render_report(asset="f:1", previous=None, drift=base, tags={})
    assert "first version" in html and "<svg" not in html


def test_bars_scale_to_the_largest_fraction():
    svg = bars_svg(["a", "b"], [0.5, 0.5], [0.25, 0.75])
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert max(heights) == heights[3] and abs(heights[1] - heights[3] / 3) < 0.1  # 0.25 vs 0.75
