"""How phaseloop loops are made: new_event_loop, run, Policy, and the hooks
run on every new loop.

Switch an asyncio program to phaseloop with one line, any of::

    phaseloop.run(main())
    asyncio.run(main(), loop_factory=phaseloop.new_event_loop)   # 3.12+
    asyncio.Runner(loop_factory=phaseloop.new_event_loop)
    asyncio.set_event_loop_policy(phaseloop.Policy())

A layer that must see every loop (phaseloop.errors hooks each one) registers
a function with :func:`on_new_loop`; the factory knows nothing of it.
"""
from __future__ import annotations

import asyncio
from asyncio import events as _events
from typing import Any, Callable, Coroutine, TypeVar

from .loop import Loop

__all__ = ["Policy", "new_event_loop", "off_new_loop", "on_new_loop", "run"]

_T = TypeVar("_T")
NewLoopHook = Callable[[Loop], Any]
_new_loop_hooks: list[NewLoopHook] = []


def on_new_loop(fn: NewLoopHook) -> NewLoopHook:
    """Call ``fn(loop)`` for every loop :func:`new_event_loop` makes from now
    on (and so every loop of :func:`run` and :class:`Policy`); returns
    ``fn``, so it can be used as a decorator.  A hook that raises makes the
    factory close the loop and raise."""
    if not callable(fn):
        raise TypeError(f"a new-loop hook must be callable, not {type(fn).__name__}")
    if fn not in _new_loop_hooks:
        _new_loop_hooks.append(fn)
    return fn


def off_new_loop(fn: NewLoopHook) -> None:
    """Stop calling ``fn`` for new loops (nothing happens if it was not registered)."""
    try:
        _new_loop_hooks.remove(fn)
    except ValueError:
        pass


def new_event_loop() -> Loop:
    """Return a new phaseloop.Loop: the zero-argument loop factory for
    asyncio.Runner, asyncio.run(loop_factory=...) and uvicorn's --loop."""
    loop = Loop()
    try:
        for hook in list(_new_loop_hooks):
            hook(loop)
    except BaseException:
        loop.close()
        raise
    return loop


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new phaseloop.Loop and close it, like asyncio.run.

    >>> async def main():
    ...     return 42
    >>> phaseloop.run(main())
    42
    """
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
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
