"""A program using phaseloop's public API with types: mypy --strict must pass.

tests/core/test_types.py runs mypy on it against the installed package
(its py.typed and the compiled module's loop.pyi)."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import phaseloop
from phaseloop import errors, middleware, streams


async def main() -> int:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, phaseloop.Loop)
    handle: phaseloop.Handle = loop.call_immediate(print, "immediate")
    handle.cancel()
    hook: phaseloop.PhaseHook = loop.add_check(lambda: None)
    hook.cancel()
    metrics = loop.metrics()
    iterations: int = metrics["iterations"]
    idle: float = metrics["idle_time"]
    loop.close_transports()

    @errors.on_uncaught_exception
    def report(exc: BaseException, context: dict[str, object]) -> None:
        print("uncaught", exc, context)

    errors.off(report)

    async def handler(ctx: dict[str, object], next_: Callable[[], Awaitable[None]]) -> None:
        await next_()

    chain = middleware.compose([handler])
    await chain({})

    chunks: list[bytes] = []
    sink = streams.Writable(write=chunks.append)
    await streams.pipeline([b"a", b"b"], streams.PassThrough(), sink)
    return iterations + int(idle)


def run() -> int:
    seen: list[phaseloop.Loop] = []
    phaseloop.on_new_loop(seen.append)
    try:
        return phaseloop.run(main())
    finally:
        phaseloop.off_new_loop(seen.append)


if __name__ == "__main__":
    print(run())
