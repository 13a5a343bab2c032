"""Loop observability: Node's event loop utilization and event loop delay.

``loop.metrics()`` (on a phaseloop.Loop) gives the raw counters: iterations,
callbacks and seconds per phase, idle time, ready-queue high-water mark. On
top of them:

- ``event_loop_utilization(loop=None, previous=None)`` — Node's
  ``performance.eventLoopUtilization()``: seconds idle (blocked waiting for
  I/O) and active (running) while the loop ran, and ``active / (idle +
  active)``. Pass an earlier result as ``previous`` to get the change since::

      start = phaseloop.event_loop_utilization()
      await asyncio.sleep(1)
      print(phaseloop.event_loop_utilization(previous=start).utilization)

- ``monitor_event_loop_delay(resolution=0.01)`` — Node's
  ``perf_hooks.monitorEventLoopDelay()``: a timer every ``resolution``
  seconds records how late it fired; the histogram gives min, max, mean,
  stddev and percentiles, in seconds (Node reports nanoseconds)::

      monitor = phaseloop.monitor_event_loop_delay()
      monitor.enable()
      ...
      print(monitor.percentile(99), monitor.max)
      monitor.disable()
"""
from __future__ import annotations

import asyncio
import math
from typing import NamedTuple

from .loop import _Loop, _loop_idle_active

__all__ = ["EventLoopUtilization", "EventLoopDelayMonitor", "event_loop_utilization",
           "monitor_event_loop_delay"]


class EventLoopUtilization(NamedTuple):
    """Seconds idle and active, and the share of time active (0..1)."""
    idle: float
    active: float
    utilization: float


def _phaseloop(loop: asyncio.AbstractEventLoop | None) -> _Loop:
    if loop is None:
        loop = asyncio.get_running_loop()
    if not isinstance(loop, _Loop):
        raise TypeError(f"event loop metrics need a phaseloop.Loop, not {type(loop).__name__}")
    return loop


def event_loop_utilization(loop: asyncio.AbstractEventLoop | None = None,
                           previous: EventLoopUtilization | None = None) -> EventLoopUtilization:
    """Idle and active time of ``loop`` (the running loop by default) while
    it ran, and the utilization; relative to ``previous`` if given."""
    idle, active = _loop_idle_active(_phaseloop(loop))
    if previous is not None:
        idle -= previous.idle
        active -= previous.active
    total = idle + active
    return EventLoopUtilization(idle, active, active / total if total > 0 else 0.0)


# Histogram buckets grow by 1% (as an HDR histogram with two significant
# digits), from 1 µs; the memory is bounded whatever the run length.
_BUCKET_GROWTH = 1.01
_BUCKET_BASE = 1e-6
_LOG_GROWTH = math.log(_BUCKET_GROWTH)


class EventLoopDelayMonitor:
    """How late a periodic timer fires: a histogram of event loop delays (seconds)."""

    def __init__(self, resolution: float = 0.01, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not isinstance(resolution, (int, float)) or not resolution > 0:
            raise ValueError(f"resolution must be a positive number of seconds, got {resolution!r}")
        self.resolution = float(resolution)
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self.reset()

    def enable(self) -> bool:
        """Start sampling on the loop (the running one by default); False if already on."""
        if self._timer is not None:
            return False
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        self._loop = loop
        self._expected = loop.time() + self.resolution
        self._timer = loop.call_at(self._expected, self._tick)
        return True

    def disable(self) -> bool:
        """Stop sampling; False if it was not on."""
        if self._timer is None:
            return False
        self._timer.cancel()
        self._timer = None
        return True

    def _tick(self) -> None:
        loop = self._loop
        now = loop.time()
        self._record(max(now - self._expected, 0.0))
        self._expected = now + self.resolution
        self._timer = loop.call_at(self._expected, self._tick)

    def _record(self, delay: float) -> None:
        self.count += 1
        self._sum += delay
        self._sum_squares += delay * delay
        self.min = min(self.min, delay)
        self.max = max(self.max, delay)
        index = 0 if delay <= _BUCKET_BASE else int(math.log(delay / _BUCKET_BASE) / _LOG_GROWTH) + 1
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def reset(self) -> None:
        """Forget every sample."""
        self.count = 0
        self.min = math.inf
        self.max = 0.0
        self._sum = 0.0
        self._sum_squares = 0.0
        self._buckets: dict[int, int] = {}

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else math.nan

    @property
    def stddev(self) -> float:
        if not self.count:
            return math.nan
        mean = self.mean
        return math.sqrt(max(self._sum_squares / self.count - mean * mean, 0.0))

    def percentile(self, p: float) -> float:
        """The delay below which p percent of the samples fall (0 < p <= 100)."""
        if not 0 < p <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {p!r}")
        if not self.count:
            return math.nan
        rank = math.ceil(self.count * p / 100)
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                upper = _BUCKET_BASE * _BUCKET_GROWTH ** index if index else _BUCKET_BASE
                return min(max(upper, self.min), self.max)
        return self.max

    @property
    def percentiles(self) -> dict[float, float]:
        """The 50th, 75th, 90th, 99th and 100th percentiles."""
        return {p: self.percentile(p) for p in (50, 75, 90, 99, 100)}

    def __repr__(self) -> str:
        state = "enabled" if self._timer is not None else "disabled"
        return (f"<EventLoopDelayMonitor {state} count={self.count} "
                f"mean={self.mean:.6f} max={self.max:.6f}>")


def monitor_event_loop_delay(resolution: float = 0.01,
                             loop: asyncio.AbstractEventLoop | None = None) -> EventLoopDelayMonitor:
    """A delay monitor sampling every ``resolution`` seconds; call .enable() to start.

    Works on any asyncio loop (it is a timer); opt-in, unlike the counters.
    """
    return EventLoopDelayMonitor(resolution, loop)
