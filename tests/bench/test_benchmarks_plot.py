"""``python -m benchmarks --plot`` (benchmarks/plot.py): the chart of the README's tables.

A small chart JSON becomes a PNG with the bars drawn; a malformed one is refused with
the bad field named; and docs/benchmarks.json, which the README's chart is drawn from,
holds the numbers of the README's tables, row by row.
"""
import json
import math
import struct
import subprocess
import sys

import pytest

from support.paths import REPO_ROOT

pytestmark = pytest.mark.timeout(60)

SMALL_CHART = {
    "title": "a small chart",
    "measured": "today, this machine",
    "panels": [
        {"title": "three loops", "series": ["phaseloop", "uvloop", "asyncio"],
         "baseline": "uvloop",
         "rows": [{"label": "one", "values": [200, 100, 50]},
                  {"label": "two", "values": [3.5, 3.0, 1.0]}]},
        {"title": "two servers", "series": ["phaseloop", "uvicorn + uvloop"],
         "baseline": "uvicorn + uvloop",
         "rows": [{"label": "1 worker", "values": [11887, 10956]}]},
    ],
}
PHASELOOP_COLOR = (0x1b, 0x7f, 0x6b)


def plot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", "--plot", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=50, check=False)


def test_plot_writes_a_png_from_a_small_json(tmp_path):
    image = pytest.importorskip("matplotlib.image", reason="needs matplotlib (pip install .[bench])")
    data, out = tmp_path / "chart.json", tmp_path / "chart.png"
    data.write_text(json.dumps(SMALL_CHART))
    done = plot("--data", str(data), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    raw = out.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])  # the IHDR chunk
    assert width > 400 and height > 200
    pixels = image.imread(out)
    # phaseloop's bars are drawn: pixels of its colour (RGB in 0..1, alpha aside).
    target = [c / 255 for c in PHASELOOP_COLOR]
    close = (abs(pixels[..., :3] - target) < 0.02).all(axis=-1)
    assert close.sum() > 500


@pytest.mark.parametrize("change, message", [
    (lambda d: d["panels"][0].update(baseline="node"), "panels[0].baseline"),
    (lambda d: d["panels"][1]["rows"][0].update(values=[1, 0]), "panels[1].rows[0].values"),
    (lambda d: d["panels"][0]["rows"][1].update(values=[1, 2]), "panels[0].rows[1].values"),
    (lambda d: d.pop("measured"), "missing 'measured'"),
])
def test_plot_refuses_a_malformed_json(tmp_path, change, message):
    chart = json.loads(json.dumps(SMALL_CHART))
    change(chart)
    data, out = tmp_path / "chart.json", tmp_path / "chart.png"
    data.write_text(json.dumps(chart))
    done = plot("--data", str(data), "--out", str(out))
    assert done.returncode == 2 and message in done.stderr, done.stdout + done.stderr
    assert not out.exists()


def test_data_and_out_go_with_plot():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--out", "x.png"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 2 and "--data and --out go with --plot" in done.stderr


def readme_number(cell: str) -> float:
    """A README table cell as a number: ``1.88M``, ``87.9k``, ``11,887 (6.0 ms)``,
    ``51.8k/s``, ``47.8k req/s``."""
    text = cell.split("(")[0].split()[0].replace(",", "").removesuffix("/s")
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1.0)
    return float(text.rstrip("kM")) * scale


def test_chart_data_is_the_readme_tables():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    chart = json.loads((REPO_ROOT / "docs" / "benchmarks.json").read_text(encoding="utf-8"))
    checked = 0
    for panel in chart["panels"]:
        for row in panel["rows"]:
            lines = [line for line in readme if line.startswith(f"| {row['table']} |")]
            assert len(lines) == 1, f"README rows for {row['table']!r}: {lines}"
            cells = [c.strip() for c in lines[0].strip().strip("|").split("|")]
            numbers = [readme_number(c) for c in cells[1:1 + len(panel["series"])]]
            assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(numbers, row["values"])), (
                f"README {lines[0]!r} vs docs/benchmarks.json {row['values']}")
            checked += 1
    assert checked >= 20
