"""phaseloop: an asyncio event loop that runs Node.js's phased loop in C.

Switch an asyncio program to it with one line, any of::

    phaseloop.run(main())
    asyncio.Runner(loop_factory=phaseloop.new_event_loop)
    asyncio.set_event_loop_policy(phaseloop.Policy())

Beyond asyncio's API, a phaseloop.Loop has Node's phase hooks:
``call_immediate`` (setImmediate), ``add_idle``/``add_prepare``/``add_check``
and ``run_once``. See docs/phases.md for the order of one iteration.
"""
from __future__ import annotations

import asyncio as _asyncio
from asyncio import events as _events
from typing import Any, Coroutine, TypeVar

from .loop import (BACKEND, DatagramTransport, Handle, PhaseHook, ReadPipeTransport, Server,
                   SocketTransport, SSLTransport, SubprocessTransport, TimerHandle,
                   WritePipeTransport, _Loop, _PipeMethods, _ProcessMethods, _ServerMethods,
                   _TCPMethods, _TLSMethods, _UDPMethods, _UnixMethods)
from . import errors as _errors
from .metrics import (EventLoopDelayMonitor, EventLoopUtilization, event_loop_utilization,
                      monitor_event_loop_delay)

__all__ = ["BACKEND", "DatagramTransport", "EventLoopDelayMonitor", "EventLoopUtilization",
           "Handle", "Loop", "PhaseHook", "Policy", "ReadPipeTransport", "Server",
           "SSLTransport", "SocketTransport", "SubprocessTransport", "TimerHandle",
           "WritePipeTransport", "event_loop_utilization", "monitor_event_loop_delay", "new_event_loop", "run"]
__version__ = "0.1.0"

_T = TypeVar("_T")


class Loop(_Loop, _ServerMethods, _TCPMethods, _UnixMethods, _TLSMethods, _UDPMethods,
           _PipeMethods, _ProcessMethods, _asyncio.AbstractEventLoop):
    """An asyncio event loop on phaseloop's C phase engine.

    Everything asyncio.AbstractEventLoop offers, plus call_immediate,
    add_idle, add_prepare, add_check and run_once.
    """


def new_event_loop() -> Loop:
    """Return a new phaseloop.Loop: the zero-argument loop factory for
    asyncio.Runner, asyncio.run(loop_factory=...) and uvicorn's --loop."""
    return _errors._attach_new_loop(Loop())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new phaseloop.Loop and close it, like asyncio.run.

    >>> async def main():
    ...     return 42
    >>> phaseloop.run(main())
    42
    """
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


# Python 3.14 renamed the base policy (and deprecated policies): take the
# base class directly so importing phaseloop never warns.
_BasePolicy = getattr(_events, "_BaseDefaultEventLoopPolicy", None) or getattr(
    _events, "BaseDefaultEventLoopPolicy")


class Policy(_BasePolicy):  # type: ignore[misc, valid-type]
    """An asyncio event loop policy whose loops are phaseloop.Loop.

    >>> asyncio.set_event_loop_policy(phaseloop.Policy())
    """

    def _loop_factory(self) -> Loop:
        return new_event_loop()
