"""The event loops the benchmarks compare, and how a process loads one by name.

Every benchmark takes its loops from ``LOOP_NAMES`` (``--loops``) and makes them
with :func:`load_loop_factory`, in the process that runs the loop: a micro-benchmark
child, a server of ``benchmarks.servers``, a TLS child.  A loop that does not import
raises :class:`LoopMissing`; the process then says so and exits with
``benchmarks.harness.EXIT_LOOP_MISSING``, and the tables show it as ``missing``.
"""
from __future__ import annotations

import asyncio
import importlib
import platform
from typing import Callable, Sequence

__all__ = [
    "LOOP_NAMES",
    "REFERENCE_LOOP",
    "REFERENCE_LOOPS",
    "LoopMissing",
    "load_loop_factory",
    "loop_versions",
]

#: Loops the benchmarks know, in the order they run and are printed.
LOOP_NAMES: tuple[str, ...] = ("phaseloop", "uvloop", "asyncio")
#: The loop the server benchmarks' ratio columns divide by.
REFERENCE_LOOP = "uvloop"
#: Loops every other loop is compared to in the micro-benchmark tables, when measured.
REFERENCE_LOOPS: tuple[str, ...] = ("uvloop", "asyncio")


class LoopMissing(Exception):
    """The loop's module cannot be imported."""


def load_loop_factory(name: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """Return ``(new_event_loop, version)`` for the loop called ``name``.

    Raises LoopMissing when its module does not import.
    """
    if name == "asyncio":
        return asyncio.new_event_loop, platform.python_version()
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise LoopMissing(f"{type(exc).__name__}: {exc}") from exc
    return module.new_event_loop, str(getattr(module, "__version__", "unknown"))


def loop_versions(loops: Sequence[str]) -> dict[str, str]:
    """Version of each loop that imports here (the servers import the same ones)."""
    versions = {}
    for name in loops:
        try:
            versions[name] = load_loop_factory(name)[1]
        except LoopMissing:
            pass
    return versions
