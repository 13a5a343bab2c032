"""A tiny EventEmitter, shared by ``phaseloop.cluster`` and ``phaseloop.workers``.

The listener shape of the whole project: ``on(event, fn) -> fn`` (also usable as a
decorator, ``@w.on("message")``), ``once(event, fn) -> fn``, ``off(event, fn)`` or
``off(fn)`` (from every event); registering takes effect at once, as in Node::

    class Job(EventEmitter):
        ...

    job = Job()

    @job.on("done")
    def report(result):
        print(result)

    job.emit("done", 42)
    job.off("done", report)

A listener that raises is reported to the running loop's exception handler (or the
module's logger outside a loop); the other listeners still run.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable, Iterable

__all__ = ["EventEmitter", "emit_to", "report_listener_error"]

logger = logging.getLogger("phaseloop")

Listener = Callable[..., Any]


class EventEmitter:
    """``on``/``once``/``off``/``emit``, Node's EventEmitter reduced to what we use."""

    #: Names the emitter in the report of a listener that raised ("cluster", "worker"...).
    event_source = "event"

    def __init__(self) -> None:
        self._events: dict[str, list[Listener]] = collections.defaultdict(list)

    def on(self, event: str, fn: Listener | None = None) -> Any:
        """Call ``fn`` on each ``event``; returns ``fn``. Without ``fn``, a decorator."""
        if fn is None:
            return lambda fn: self.on(event, fn)
        _check_listener(event, fn)
        self._events[event].append(fn)
        return fn

    def once(self, event: str, fn: Listener | None = None) -> Any:
        """Call ``fn`` on the next ``event`` only; returns ``fn``. ``off(fn)``
        removes it before it ran."""
        if fn is None:
            return lambda fn: self.once(event, fn)
        _check_listener(event, fn)

        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return fn(*args)
        wrapper.listener = fn  # type: ignore[attr-defined]
        self._events[event].append(wrapper)
        return fn

    def off(self, event_or_fn: Any, fn: Listener | None = None) -> bool:
        """Remove a listener added with ``on`` or ``once``: ``off(event, fn)``
        (Node's form), or ``off(fn)`` from every event.  True if one was
        removed; no error if it was not there."""
        if fn is None:
            fn, names = event_or_fn, list(self._events)
        else:
            names = [event_or_fn]
        removed = False
        for name in names:
            listeners = self._events.get(name, [])
            for i, registered in enumerate(listeners):
                # ==, not is: ``obj.method`` is a new bound method at each access
                if registered == fn or getattr(registered, "listener", None) == fn:
                    del listeners[i]
                    removed = True
                    break
        return removed

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every listener of ``event``, or of every event (Node's
        removeAllListeners)."""
        if event is None:
            self._events.clear()
        else:
            self._events.pop(event, None)

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has."""
        return len(self._events.get(event, ()))

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners of ``event`` in order; True if there were any."""
        listeners = self._events.get(event)
        if not listeners:
            return False
        return emit_to(listeners, event, args, self.event_source)


def _check_listener(event: Any, fn: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event must be a str, got {type(event).__name__}")
    if not callable(fn):
        raise TypeError(f"listener must be callable, got {type(fn).__name__}")


def emit_to(fns: Iterable[Listener], event: str, args: tuple, source: str = "event") -> bool:
    """Call each of ``fns`` with ``args`` (a snapshot: listeners added or removed by a
    listener take effect from the next event); True if there was any."""
    fns = list(fns)
    for fn in fns:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported, the others still run
            report_listener_error("%s %r listener %r raised" % (source, event, fn), exc)
    return bool(fns)


def report_listener_error(message: str, exc: BaseException) -> None:
    """Give ``exc`` to the running loop's exception handler, or log it outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        logger.error(message, exc_info=exc)
        return
    loop.call_exception_handler({"message": message, "exception": exc})
