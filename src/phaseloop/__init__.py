"""phaseloop: an asyncio event loop that runs Node.js's phased loop in C.

Switch an asyncio program to it with one line, any of::

    phaseloop.run(main())
    asyncio.run(main(), loop_factory=phaseloop.new_event_loop)   # 3.12+
    asyncio.Runner(loop_factory=phaseloop.new_event_loop)
    asyncio.set_event_loop_policy(phaseloop.Policy())

Beyond asyncio's API, a phaseloop.Loop has Node's phase hooks:
``call_immediate`` (setImmediate), ``add_idle``/``add_prepare``/``add_check``
and ``run_once``. See docs/phases.md for the order of one iteration.
"""
from __future__ import annotations

from .loop import (BACKEND, DatagramTransport, Handle, Loop, PhaseHook, ReadPipeTransport,
                   Server, SocketTransport, SSLTransport, SubprocessTransport, TimerHandle,
                   WritePipeTransport)
from .factory import Policy, new_event_loop, off_new_loop, on_new_loop, run
from .metrics import (EventLoopDelayMonitor, EventLoopUtilization, event_loop_utilization,
                      monitor_event_loop_delay)
from . import errors  # noqa: F401  (phaseloop.errors after a plain `import phaseloop`)

__all__ = ["BACKEND", "DatagramTransport", "EventLoopDelayMonitor", "EventLoopUtilization",
           "Handle", "Loop", "PhaseHook", "Policy", "ReadPipeTransport", "Server",
           "SSLTransport", "SocketTransport", "SubprocessTransport", "TimerHandle",
           "WritePipeTransport", "event_loop_utilization", "monitor_event_loop_delay",
           "new_event_loop", "off_new_loop", "on_new_loop", "run"]
__version__ = "0.1.0"
