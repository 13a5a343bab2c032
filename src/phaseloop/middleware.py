"""Middleware composition: koa's onion model for any asyncio program.

``compose(middlewares)`` turns a list of middlewares into one async callable.
Calling it with some arguments calls the first middleware with those
arguments plus ``next``; awaiting ``next()`` runs the rest of the chain and
returns what it returned. Code before ``await next()`` runs on the way down,
code after it on the way back up::

    async def timing(ctx, next):
        start = time.perf_counter()
        result = await next()
        ctx["ms"] = (time.perf_counter() - start) * 1000
        return result

    async def handler(ctx, next):
        return f"hello {ctx['user']}"

    app = compose([timing, handler])
    await app({"user": "ada"})            # -> "hello ada"

Both shapes work, because ``next`` is simply appended to the arguments:
``mw(ctx, next)`` (koa) and ``mw(req, res, next)`` (express). Plain
functions may stand beside ``async def`` ones (their return value is used as
is, or awaited if it is awaitable). A composed chain is itself a middleware:
put it in another list and it runs as one layer, calling the outer ``next``
when its own chain ends.

Errors propagate: an exception raised anywhere below comes out of every
upstream ``await next()`` and finally out of the composed call.
"""
from __future__ import annotations

import inspect
import types
from typing import Any, Awaitable, Callable, Iterable

__all__ = ["compose", "Middleware"]

Middleware = Callable[..., Any]


class _Chain:
    """The composed callable (see compose)."""

    __slots__ = ("_middlewares",)

    def __init__(self, middlewares: tuple[Middleware, ...]) -> None:
        self._middlewares = middlewares

    def __repr__(self) -> str:
        names = ", ".join(getattr(m, "__qualname__", repr(m)) for m in self._middlewares)
        return f"<composed middleware [{names}]>"

    async def __call__(self, *args: Any) -> Any:
        # Called as a layer of an outer chain, the last argument is the
        # outer next(): the end of this chain continues there.
        outer_next = None
        if args and isinstance(args[-1], _Next):
            outer_next = args[-1]
            args = args[:-1]
        return await _Next(self._middlewares, 0, args, outer_next)()


class _Next:
    """``next`` for layer ``index``: runs layer ``index`` (once)."""

    __slots__ = ("_middlewares", "_index", "_args", "_outer", "_called")

    def __init__(self, middlewares: tuple[Middleware, ...], index: int, args: tuple[Any, ...],
                 outer: "_Next | None") -> None:
        self._middlewares = middlewares
        self._index = index
        self._args = args
        self._outer = outer
        self._called = False

    async def __call__(self) -> Any:
        if self._called:
            raise RuntimeError("next() called multiple times")
        self._called = True
        middlewares = self._middlewares
        index = self._index
        if index == len(middlewares):
            return await self._outer() if self._outer is not None else None
        following = _Next(middlewares, index + 1, self._args, self._outer)
        result = middlewares[index](*self._args, following)
        # A coroutine is the common case: test its type before the general check.
        if type(result) is types.CoroutineType or inspect.isawaitable(result):
            result = await result
        return result


def compose(middlewares: Iterable[Middleware]) -> Callable[..., Awaitable[Any]]:
    """Compose middlewares into one async callable (koa's onion order).

    Raises TypeError at once for anything in the list that is not callable.

    >>> async def add_one(ctx, next):
    ...     ctx["n"] += 1
    ...     return await next()
    >>> run = compose([add_one, add_one, lambda ctx, next: ctx["n"]])
    >>> asyncio.run(run({"n": 0}))
    2
    """
    if isinstance(middlewares, (str, bytes)) or not isinstance(middlewares, Iterable):
        raise TypeError(f"compose() expects a list of middlewares, got {type(middlewares).__name__}")
    layers = tuple(middlewares)
    for i, layer in enumerate(layers):
        if not callable(layer):
            raise TypeError(f"middleware {i} must be callable, got {type(layer).__name__}: {layer!r}")
    return _Chain(layers)
