"""The measured points of the server benchmarks (echo, HTTP, real frameworks).

A :class:`Point` is one server on one loop (at one message size, for one app...)
measured ``--repeat`` times: its samples, or why it has none.  :func:`run_point`
starts the server, lets a benchmark measure it once and records the sample or the
failure; :func:`ratio`, :func:`point_text` and :func:`notes` turn points into table
cells and the lines under a table.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from benchmarks.harness import (
    Server,
    ServerUnavailable,
    describe_exit,
    start_server,
    stop_server,
)
from benchmarks.tables import format_number, relative_spread

__all__ = ["Point", "notes", "point_text", "ratio", "run_point"]


@dataclass
class Point:
    """All repeats of one measured point (one server on one loop at one size)."""

    status: str = "ok"  # "ok", "missing", "unsupported" or "error"
    detail: str = ""
    samples: list[dict[str, float]] = field(default_factory=list)

    def median(self, metric: str) -> float | None:
        """Median of ``metric`` over the repeats; None without samples."""
        values = [s[metric] for s in self.samples if s.get(metric) is not None]
        return statistics.median(values) if self.status == "ok" and values else None

    def spread(self, metric: str) -> float:
        """Half the range of ``metric`` relative to its median."""
        return relative_spread([s[metric] for s in self.samples])

    def fail(self, status: str, detail: str) -> None:
        self.status, self.detail = status, detail


def ratio(point: Point | None, reference: Point | None, metric: str) -> float | None:
    """``point``'s median of ``metric`` over ``reference``'s; None when one is missing."""
    if point is None or reference is None:
        return None
    value, base = point.median(metric), reference.median(metric)
    return value / base if value is not None and base else None


def point_text(point: Point, metric: str, *, spread: bool = False) -> str:
    """A table cell: the median (and spread), or the point's status."""
    if point.status != "ok":
        return point.status
    text = format_number(point.median(metric))
    if spread and len(point.samples) > 1:
        text += f" ±{point.spread(metric):.0%}"
    return text


def notes(points: dict[Any, Point], label: Callable[[Any], str]) -> list[str]:
    """One line per failed point, and one per reason a loop or style has no numbers."""
    lines: list[str] = []
    reasons: set[tuple[str, str]] = set()
    for key, point in points.items():
        if point.status == "ok" or (point.status, point.detail) in reasons:
            continue
        if point.status != "error":
            reasons.add((point.status, point.detail))
        lines.append(f"{label(key)}: {point.status} ({point.detail})")
    return lines


def run_point(command: Sequence[str], point: Point, cpu: int | None,
              work: Callable[[Server], dict[str, float]]) -> str:
    """Start a server, do ``work`` on it, stop it; record the sample or the failure.

    Returns a short description for the progress log.
    """
    try:
        server = start_server(command, cpu)
    except ServerUnavailable as exc:
        point.fail(exc.status, exc.detail)
        return f"{exc.status}: {exc.detail}"
    try:
        sample = work(server)
    except (RuntimeError, OSError) as exc:
        crashed = server.process.poll()
        stop_server(server)
        why = f"server {describe_exit(crashed)}: {server.error_text()}" if crashed is not None \
            else str(exc)
        point.fail("error", why)
        return f"error: {why}"
    crashed = stop_server(server)
    if crashed is not None:
        point.fail("error", f"server {describe_exit(crashed)}: {server.error_text()}")
        return f"error: {point.detail}"
    point.samples.append(sample)
    return ", ".join(f"{k}={format_number(v)}" for k, v in sample.items() if v is not None)
