"""How the benchmarks print what they measured: numbers, tables, captions, JSON.

- numbers: :func:`format_rate` ('1.23M'), :func:`format_number`, :func:`format_ratio`
  ('1.23x'), :func:`format_size` ('1 KiB'), :func:`relative_spread` (the ``±`` after
  a median);
- tables: :func:`format_table`, aligned plain text or GitHub markdown, and
  :func:`ratio_pairs`, the ratio columns of a table of loops;
- captions, the line above a table that says how it was measured:
  :func:`machine_text` (Python and CPU), :func:`versions_text`, :func:`pinning_text`,
  printed with :func:`print_caption`; the notes under a table (missing loops, errors)
  with :func:`print_notes`;
- :func:`write_json`, the ``--json FILE`` copy of the results.
"""
from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.loops import REFERENCE_LOOPS

__all__ = [
    "cpu_model",
    "format_number",
    "format_rate",
    "format_ratio",
    "format_size",
    "format_table",
    "machine_text",
    "pinning_text",
    "print_caption",
    "print_notes",
    "ratio_pairs",
    "relative_spread",
    "versions_text",
    "write_json",
]


# --------------------------------------------------------------------------- numbers


def format_rate(value: float) -> str:
    """Operations per second with an SI suffix: '1.23M', '845k'."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def format_number(value: float | None, digits: int = 3) -> str:
    """'12.3', '1.23k'; '-' for None."""
    return "-" if value is None else format_rate(value) if value >= 1000 else f"{value:.{digits}g}"


def format_ratio(value: float | None) -> str:
    """A ratio as '1.23x', or '-' when either side is missing."""
    return "-" if value is None else f"{value:.2f}x"


def format_size(size: int) -> str:
    """1024 -> '1 KiB'."""
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def relative_spread(values: Sequence[float]) -> float:
    """Half the range of ``values`` relative to their median (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    median = statistics.median(values)
    if not median:
        return 0.0
    return (max(values) - min(values)) / 2 / median


# --------------------------------------------------------------------------- tables


def ratio_pairs(loops: Sequence[str]) -> list[tuple[str, str]]:
    """(loop, reference) pairs to show: every loop against uvloop, then against asyncio.

    A pair whose reverse is already shown is skipped (asyncio/uvloop, not also
    uvloop/asyncio).
    """
    pairs: list[tuple[str, str]] = []
    for reference in REFERENCE_LOOPS:
        if reference not in loops:
            continue
        for loop_name in loops:
            if loop_name != reference and (reference, loop_name) not in pairs:
                pairs.append((loop_name, reference))
    return pairs


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                 markdown: bool = False) -> str:
    """Render rows as aligned plain text, or as a GitHub markdown table."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:]))
        return "  ".join((first, *rest)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------- captions, notes


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo tells it (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_text() -> str:
    """'Python 3.11.7 on AMD EPYC': what ran the numbers."""
    return f"Python {platform.python_version()} on {cpu_model()}"


def versions_text(versions: Mapping[str, str]) -> str:
    """'phaseloop 0.1.0, uvloop 0.23.0': each name with its version."""
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def pinning_text(cpu: int | None, client_batch: bool, client: str) -> str:
    """How a server and its ``client`` (the load generator, wrk) shared the machine."""
    text = "not pinned" if cpu is None else f"server and {client} pinned to CPU {cpu}"
    return text + (f", {client} under SCHED_BATCH" if client_batch else "")


def print_caption(caption: str, *, markdown: bool) -> None:
    """The line above a table (in italics in markdown), and a blank line."""
    print(f"_{caption}_\n" if markdown else caption + "\n")


def print_notes(lines: Sequence[str], *, markdown: bool) -> None:
    """The lines under a table (a list in markdown), after a blank line; none: nothing."""
    if lines:
        print()
        print("\n".join(f"- {line}" if markdown else line for line in lines))


# --------------------------------------------------------------------------- JSON


def write_json(data: dict[str, Any], path: str) -> None:
    """Write ``data`` as JSON to ``path`` ('-' for stdout)."""
    text = json.dumps(data, indent=2)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")
