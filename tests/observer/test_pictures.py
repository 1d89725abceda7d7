"""The dashboard's pictures.js, run by node outside a browser: the node map's colours and the
chart's axis and lines (the browser test, test_dashboard.py, shows them drawn)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

PICTURES = (
    Path(__file__).resolve().parents[2] / "services/observer/kpng_observer/static/pictures.js"
)


def run(expression: str) -> Any:
    """The JSON value of ``expression`` evaluated after pictures.js (no DOM is touched)."""
    node = shutil.which("node")
    assert node, "no node: `make test-deps` installs nodejs (tools/system-deps.sh)"
    tail = f";globalThis.out = JSON.stringify({expression});"
    script = (
        "const vm = require('vm'); const fs = require('fs'); const context = {};"
        f"vm.runInNewContext(fs.readFileSync({json.dumps(str(PICTURES))}, 'utf8') + "
        f"{json.dumps(tail)}, context);"
        "console.log(context.out);"
    )
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _hue_lightness(colour: str) -> tuple[int, int]:
    hue, _, lightness = colour.removeprefix("hsl(").removesuffix(")").split(",")
    return int(hue), int(lightness.strip().removesuffix("%"))


def test_lagging_nodes_go_from_amber_to_red_as_the_lag_grows() -> None:
    colours = run(
        "[0, 10, 30, 60, 600].map(s => nodeColour({state: 'lagging', lag: {seconds: s}}))"
    )
    hues = [_hue_lightness(c)[0] for c in colours]
    assert hues[0] == 40 and hues[-1] == hues[-2] == 5  # amber; red from a minute on
    assert hues == sorted(hues, reverse=True) and len(set(hues)) == 4
    lightness = [_hue_lightness(c)[1] for c in colours]
    assert lightness == sorted(lightness, reverse=True)  # darker as it lags


def test_each_state_has_its_own_colour() -> None:
    states = ["ok", "syncing", "diverged", "failed", "silent", "unknown"]
    colours = run(f"{json.dumps(states)}.map(s => nodeColour({{state: s, lag: null}}))")
    assert len(set(colours)) == len(states)
    assert _hue_lightness(colours[0])[0] == 137  # ok is green
    assert run("nodeColour({state: 'whatever', lag: null})") == colours[-1]  # unknown: grey


def test_the_chart_breaks_its_line_where_no_change_was_applied() -> None:
    points = [
        {"start": 0, "p50": 0.1},
        {"start": 10, "p50": None},
        {"start": 20, "p50": 0.2},
        {"start": 30, "p50": 0.3},
    ]
    d = run(f"linePath({json.dumps(points)}, 'p50', t => t, v => v * 100)")
    assert d == "M0.0,10.0M20.0,20.0L30.0,30.0"


def test_the_y_axis_ends_on_a_round_number() -> None:
    assert run("[0.0004, 0.13, 0.2, 0.21, 3, 0].map(niceCeiling)") == [
        0.0005,
        0.2,
        0.2,
        0.5,
        5,
        0.1,
    ]
