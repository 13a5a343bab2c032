"""The cluster's own events (``cluster.on("exit", fn)``) and how an exit's signal prints."""
from __future__ import annotations

import enum
import signal
from typing import Any, Callable

from ..emitter import EventEmitter

__all__ = ["ExitSignal", "off", "on", "once"]


class _SignalEnum(enum.IntEnum):
    """Prints as the signal's name, as Node passes 'SIGKILL' (a plain
    signal.Signals prints as its number from Python 3.11 on)."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


#: What ``exit`` listeners get and ``Worker.signal_code`` holds: equal to the
#: ``signal.Signals`` member of the same number (``sig == signal.SIGKILL``),
#: printed by name (``f"{sig}"`` is ``SIGKILL``).
ExitSignal = _SignalEnum("ExitSignal", [(s.name, int(s)) for s in signal.Signals],
                         module=__name__)

_events = EventEmitter()
_events.event_source = "cluster"


def on(event: str, fn: Callable[..., Any] | None = None) -> Any:
    """Listen to a cluster event in the primary, as ``cluster.on`` in Node:
    ``fork`` (worker), ``online`` (worker), ``message`` (worker, obj),
    ``disconnect`` (worker), ``exit`` (worker, code, signal). ``code`` is the exit
    status or None; ``signal`` the :data:`ExitSignal` that ended it (prints as
    ``SIGKILL``, equals ``signal.SIGKILL``) or None. Returns ``fn``; without
    ``fn``, a decorator: ``@cluster.on("exit")``."""
    return _events.on(event, fn)


def once(event: str, fn: Callable[..., Any] | None = None) -> Any:
    """Like :func:`on`, for the next event only."""
    return _events.once(event, fn)


def off(event_or_fn: Any, fn: Callable[..., Any] | None = None) -> bool:
    """Remove a listener added with :func:`on` or :func:`once`: ``off(event,
    fn)``, or ``off(fn)`` from every event. True if one was removed."""
    return _events.off(event_or_fn, fn)


def emit(event: str, *args: Any) -> None:
    _events.emit(event, *args)


def remove_all_listeners() -> None:
    """A new worker starts with none of the primary's listeners."""
    _events.remove_all_listeners()
