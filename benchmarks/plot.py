"""Draw the README's benchmark tables as one PNG: ``python -m benchmarks --plot``.

The numbers come from a JSON file, by default ``docs/benchmarks.json``, which holds
the tables of the top-level README (tests/bench/test_benchmarks_plot.py checks that
every number in it is the README's); the chart is written to ``docs/benchmarks.png``,
which the README shows above the tables.  Each panel is one table: for each row a
bar per loop, as throughput relative to the panel's baseline (uvloop, where it is in
the table), so rows with different units share one axis; the first loop's bar is
labelled with its ratio.

The JSON::

    {"title": "...", "measured": "date, machine, versions",
     "panels": [{"title": "...", "series": ["phaseloop", "uvloop", "asyncio"],
                 "baseline": "uvloop",
                 "rows": [{"label": "call_soon batch", "table": "`call_soon` batch ...",
                           "values": [1880000, 908000, 381000]}]}]}

``values`` are throughputs (higher is better) in the order of ``series``; ``table``
is the first cell of the README row the numbers come from.  A malformed file is
reported with the path of the bad field and exit status 2.

    python -m benchmarks --plot [--data docs/benchmarks.json] [--out docs/benchmarks.png]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "docs" / "benchmarks.json"
DEFAULT_OUT = REPO_ROOT / "docs" / "benchmarks.png"

# phaseloop stands out; the loops it is compared with are greys, darkest for the
# baseline, so the eye goes to the bar the chart is about and to the 1.0 line.  A
# loop keeps its colour in every panel; one legend serves them all.
COLORS = {"phaseloop": "#1b7f6b", "uvloop": "#6e7b88", "uvicorn + uvloop": "#3f4a55",
          "asyncio": "#c9d1d9"}
OTHER_COLORS = ("#e0b45c", "#9c6ad6", "#d9725b")


class ChartDataError(ValueError):
    """The chart JSON is not in the expected shape; the message names the field."""


@dataclass
class Panel:
    title: str
    series: list[str]
    baseline: str
    labels: list[str]
    values: list[list[float]]

    def ratios(self) -> list[list[float]]:
        """Each row's values divided by its baseline's value."""
        at = self.series.index(self.baseline)
        return [[v / row[at] for v in row] for row in self.values]


@dataclass
class Chart:
    title: str
    measured: str
    panels: list[Panel]


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ChartDataError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind in (list, str) and not value):
        raise ChartDataError(f"{where}.{key}: expected a non-empty {kind.__name__}")
    return value


def parse_chart(data: Any) -> Chart:
    """Check ``data`` (the loaded JSON) field by field and build the Chart."""
    panels = []
    for i, raw in enumerate(_field(data, "panels", list, "chart")):
        where = f"panels[{i}]"
        series = _field(raw, "series", list, where)
        baseline = _field(raw, "baseline", str, where)
        if baseline not in series:
            raise ChartDataError(f"{where}.baseline: {baseline!r} is not one of {series}")
        labels, values = [], []
        for j, row in enumerate(_field(raw, "rows", list, where)):
            row_where = f"{where}.rows[{j}]"
            labels.append(_field(row, "label", str, row_where))
            numbers = _field(row, "values", list, row_where)
            if len(numbers) != len(series) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                    for v in numbers):
                raise ChartDataError(f"{row_where}.values: expected {len(series)} positive "
                                     f"numbers (one per series), got {numbers!r}")
            values.append([float(v) for v in numbers])
        panels.append(Panel(_field(raw, "title", str, where), series, baseline, labels, values))
    return Chart(_field(data, "title", str, "chart"), _field(data, "measured", str, "chart"),
                 panels)


def load_chart(path: Path) -> Chart:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ChartDataError(f"{path}: not JSON: {exc}") from None
    return parse_chart(data)


def _colors(chart: Chart) -> dict[str, str]:
    """A colour per loop, the same in every panel."""
    names = list(dict.fromkeys(name for panel in chart.panels for name in panel.series))
    extra = iter(OTHER_COLORS * len(names))
    return {name: COLORS.get(name) or next(extra) for name in names}


def draw(chart: Chart, out: Path) -> None:
    """Write the chart as a PNG to ``out``: the panels in two columns, balanced by rows."""
    import matplotlib
    matplotlib.use("Agg")  # no display: the chart only goes to a file
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    def weight(panel: Panel) -> float:
        return len(panel.labels) + 1.5  # its rows, and room for its title and axis

    columns: list[list[Panel]] = [[], []]
    for panel in chart.panels:  # in order, each into the column with fewer rows so far
        min(columns, key=lambda col: sum(map(weight, col))).append(panel)
    columns = [col for col in columns if col]
    colors = _colors(chart)
    height = max(sum(map(weight, col)) for col in columns) * 0.3 + 1.2
    fig = plt.figure(figsize=(6.5 * len(columns), height), dpi=110, layout="constrained")
    # A panel's height follows its number of rows, so bars are about as thick in every panel.
    grid = fig.add_gridspec(1, len(columns))
    for c, column in enumerate(columns):
        cells = grid[0, c].subgridspec(len(column), 1,
                                       height_ratios=[len(p.labels) for p in column])
        for i, panel in enumerate(column):
            _draw_panel(fig.add_subplot(cells[i, 0]), panel, colors)
    fig.suptitle(chart.title, fontsize=12, fontweight="bold")
    fig.legend(handles=[Patch(color=c, label=name) for name, c in colors.items()],
               loc="outside lower center", ncols=len(colors), fontsize=8, frameon=False,
               title=chart.measured, title_fontsize=8)
    fig.savefig(out, format="png")
    plt.close(fig)


def _draw_panel(ax: Any, panel: Panel, colors: dict[str, str]) -> None:
    ratios = panel.ratios()
    n = len(panel.series)
    bar = 0.8 / n
    for s, name in enumerate(panel.series):
        ys = [r + (s - (n - 1) / 2) * bar for r in range(len(panel.labels))]
        xs = [row[s] for row in ratios]
        ax.barh(ys, xs, height=bar, color=colors[name])
        if s == 0:
            for y, x in zip(ys, xs):
                ax.text(x, y, f" {x:.2f}×", va="center", fontsize=7, color=colors[name],
                        fontweight="bold")
    ax.axvline(1.0, color="#333", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(panel.labels)), panel.labels, fontsize=8)
    ax.set_ylim(len(panel.labels) - 0.5, -0.5)  # inverted: the table's first row on top
    ax.set_xlim(0, max(max(row) for row in ratios) * 1.15)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(panel.title, fontsize=9, loc="left")
    ax.set_xlabel(f"throughput ÷ {panel.baseline}", fontsize=7, labelpad=1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the chart JSON (default: docs/benchmarks.json)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the PNG to write (default: docs/benchmarks.png)")
    args = parser.parse_args(argv)
    try:
        chart = load_chart(args.data)
    except (OSError, ChartDataError) as exc:
        print(f"benchmarks --plot: {exc}", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401 (only to say what is missing before drawing)
    except ImportError:
        print("benchmarks --plot needs matplotlib: pip install \".[bench]\"", file=sys.stderr)
        return 2
    draw(chart, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
