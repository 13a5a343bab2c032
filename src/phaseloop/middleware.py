"""Middleware composition: koa's onion model, with Express's habits, for any asyncio program.

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

Express's habits work too, told apart by how many positional parameters
(without defaults) a middleware has — the rule Express applies to
``fn.length``, with N the number of arguments the chain was called with:

- ``next()`` called and not awaited (a plain ``def`` middleware, as every
  Express middleware is written): the rest of the chain runs when the
  middleware returns.
- ``next(err)``: skip to the next *error-handling* middleware, one with N + 2
  parameters, ``(err, req, res, next)``; it handles the error, or passes it
  on with ``next(err)``, or goes back to the normal middlewares with
  ``next()``. An exception raised by a middleware goes the same way. With
  no error-handling middleware left, the error is raised from the composed
  call (``phaseloop.http.App`` answers it 500), so koa-style
  ``try: await next()`` upstream still sees it. Error-handling middlewares
  are skipped while there is no error.
- A middleware with N parameters — a final handler ``(req, res)`` — is
  called without ``next``.

Errors propagate: an exception raised anywhere below, and not handled by an
error-handling middleware after it, comes out of every upstream
``await next()`` and finally out of the composed call.
"""
from __future__ import annotations

import inspect
import types
from typing import Any, Awaitable, Callable, Iterable

__all__ = ["compose", "Middleware"]

Middleware = Callable[..., Any]

_NO_ERROR: Any = None

def _arity(fn: Middleware) -> int:
    """Positional parameters without a default (Express's fn.length); -1 for
    one that takes ``*args`` or cannot be inspected (always given ``next``)."""
    if isinstance(fn, _Chain):
        return -1
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    count = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return -1
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            count += 1
    return count


# What a layer is for a call with N arguments (see _Chain._kinds).
_WITH_NEXT, _FINAL, _ERROR_HANDLER = 0, 1, 2


class _Chain:
    """The composed callable (see compose)."""

    __slots__ = ("_middlewares", "_arities", "_kinds_by_n")

    def __init__(self, middlewares: tuple[Middleware, ...]) -> None:
        self._middlewares = middlewares
        self._arities = tuple(_arity(m) for m in middlewares)
        self._kinds_by_n: dict[int, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        names = ", ".join(getattr(m, "__qualname__", repr(m)) for m in self._middlewares)
        return f"<composed middleware [{names}]>"

    def _kinds(self, n: int) -> tuple[int, ...]:
        """Each layer's kind for a call with n arguments, computed once per n."""
        kinds = self._kinds_by_n.get(n)
        if kinds is None:
            kinds = self._kinds_by_n[n] = tuple(
                _ERROR_HANDLER if a == n + 2 else _FINAL if a == n else _WITH_NEXT
                for a in self._arities)
        return kinds

    async def __call__(self, *args: Any) -> Any:
        # Called as a layer of an outer chain, the last argument is the
        # outer next(): the end of this chain continues there.
        outer_next = None
        if args and isinstance(args[-1], _Next):
            outer_next = args[-1]
            args = args[:-1]
        return await _Next(self._middlewares, self._kinds(len(args)), 0, args,
                           outer_next)._run(_NO_ERROR)


_STARTED: Any = object()   # _Next._pending once the rest of the chain runs


class _Next:
    """``next`` for the layers from ``index`` on: runs the next one that
    fits (a normal middleware, or with an error an error-handling one)."""

    # _escaped (the exception the rest of the chain raised) is set only then.
    __slots__ = ("_middlewares", "_kinds", "_index", "_args", "_outer", "_pending", "_escaped")

    def __init__(self, middlewares: tuple[Middleware, ...], kinds: tuple[int, ...], index: int,
                 args: tuple[Any, ...], outer: "_Next | None") -> None:
        self._middlewares = middlewares
        self._kinds = kinds
        self._index = index
        self._args = args
        self._outer = outer
        self._pending: Any = None    # the coroutine next() returned, then _STARTED

    def __call__(self, err: BaseException | None = _NO_ERROR) -> Awaitable[Any]:
        """Run the rest of the chain (awaitable; if it is not awaited, it runs
        when the calling middleware returns). ``next(err)``: go to the
        error-handling middlewares with ``err``."""
        if self._pending is not None:
            raise RuntimeError("next() called multiple times")
        if err is not None and not isinstance(err, BaseException):
            raise TypeError(f"next() takes an exception (or nothing), got {type(err).__name__}")
        self._pending = coro = self._run(err)
        return coro

    async def _run(self, err: BaseException | None) -> Any:
        self._pending = _STARTED
        try:
            middlewares = self._middlewares
            kinds = self._kinds
            index = self._index
            while index < len(kinds):
                kind = kinds[index]
                if (kind == _ERROR_HANDLER) is (err is None):
                    index += 1     # an error handler and no error, or the reverse
                    continue
                following = _Next(middlewares, kinds, index + 1, self._args, self._outer)
                try:
                    if kind == _WITH_NEXT:
                        result = middlewares[index](*self._args, following)
                    elif kind == _FINAL:
                        result = middlewares[index](*self._args)   # a final (req, res) handler
                    else:
                        result = middlewares[index](err, *self._args, following)
                    # A coroutine is the common case: test its type before the general check.
                    if type(result) is types.CoroutineType or inspect.isawaitable(result):
                        result = await result
                    pending = following._pending
                    if pending is not None and pending is not _STARTED:
                        await pending      # next() called, never awaited: Express's way
                    return result
                except Exception as exc:
                    if exc is getattr(following, "_escaped", None):
                        raise              # came up from below: already routed
                    err = exc              # Express: on to the error handlers
                    index += 1
            if self._outer is not None:
                return await self._outer(err)
            if err is not None:
                raise err
            return None
        except BaseException as exc:
            # Raised with no error-handling middleware after its origin:
            # upstream layers let it through (koa's onion) without routing it
            # again to the error handlers between them and its origin.
            self._escaped = exc
            raise


def compose(middlewares: Iterable[Middleware]) -> Callable[..., Awaitable[Any]]:
    """Compose middlewares into one async callable (koa's onion order, and
    Express's ``next()``/``next(err)``/error-handler conventions: see the
    module's docstring).

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
