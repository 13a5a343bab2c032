"""phaseloop.middleware.compose with Express's habits: next() not awaited,
next(err) and error-handling middlewares (told by their arity, as Express
tells them by fn.length), a final (req, res) handler without next.

On phaseloop and on asyncio's loop (the `loop` fixture).
"""
import asyncio

import pytest

from phaseloop.middleware import compose


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 5))


def test_plain_def_middlewares_calling_next_without_await(loop):
    trace = []

    def logger(req, res, next):            # as every Express middleware is written
        trace.append("logger")
        next()

    def auth(req, res, next):
        trace.append("auth")
        req["user"] = "ada"
        next()

    def handler(req, res, next):
        trace.append("handler")
        res["body"] = f"hello {req['user']}"

    req, res = {}, {}
    run(loop, compose([logger, auth, handler])(req, res))
    assert trace == ["logger", "auth", "handler"]
    assert res == {"body": "hello ada"}


def test_an_async_middleware_that_calls_next_without_await(loop):
    trace = []

    async def mw(ctx, next):
        next()
        trace.append("mw returns")

    async def handler(ctx, next):
        trace.append("handler")

    run(loop, compose([mw, handler])({}))
    # The rest of the chain runs once the middleware has returned.
    assert trace == ["mw returns", "handler"]


def test_a_two_argument_final_handler(loop):
    def handler(req, res):
        res["status"] = 200
        return "done"

    res = {}
    assert run(loop, compose([lambda req, res, next: next(), handler])({}, res)) == "done"
    assert res == {"status": 200}


def test_next_err_skips_to_the_error_handler(loop):
    trace = []

    def check(req, res, next):
        trace.append("check")
        next(PermissionError("no token"))

    def never(req, res, next):
        trace.append("never")

    def not_yet(err, req, res, next):
        trace.append("error handler before the error")
        next(err)

    def on_error(err, req, res, next):      # four parameters: an error handler
        trace.append(f"on_error {type(err).__name__}: {err}")
        res["status"] = 403

    res = {}
    run(loop, compose([not_yet, check, never, on_error])({}, res))
    assert trace == ["check", "on_error PermissionError: no token"]
    assert res == {"status": 403}


def test_a_raised_exception_goes_to_the_error_handler_too(loop):
    async def lookup(req, res, next):
        return {}["missing"]

    async def on_error(err, req, res, next):
        return f"handled {type(err).__name__}"

    assert run(loop, compose([lookup, on_error])({}, {})) == "handled KeyError"


def test_error_handlers_pass_the_error_on_or_recover(loop):
    trace = []

    def fail(req, res, next):
        next(ValueError("bad"))

    def log_error(err, req, res, next):
        trace.append("logged")
        next(err)                            # on to the next error handler

    def recover(err, req, res, next):
        trace.append("recovered")
        next()                               # back to the normal middlewares

    def after(req, res, next):
        trace.append("after")

    run(loop, compose([fail, log_error, recover, after])({}, {}))
    assert trace == ["logged", "recovered", "after"]


def test_an_unhandled_next_err_is_raised_and_upstream_sees_it(loop):
    seen = []

    async def outer(req, res, next):
        try:
            await next()
        except LookupError as exc:
            seen.append(str(exc))
            raise

    def fail(req, res, next):
        next(LookupError("nobody handles me"))

    with pytest.raises(LookupError, match="nobody handles me"):
        run(loop, compose([outer, fail])({}, {}))
    assert seen == ["nobody handles me"]


def test_an_error_after_an_error_handler_is_not_handled_by_it(loop):
    async def on_error(err, req, res, next):
        return "handled"

    async def fail(req, res, next):
        raise ValueError("too late")

    with pytest.raises(ValueError, match="too late"):
        run(loop, compose([on_error, fail])({}, {}))


def test_koa_shape_error_handler_has_three_parameters(loop):
    async def fail(ctx, next):
        raise KeyError("k")

    async def on_error(err, ctx, next):
        ctx["error"] = repr(err)

    ctx = {}
    run(loop, compose([fail, on_error])(ctx))
    assert ctx == {"error": "KeyError('k')"}


def test_an_error_in_a_nested_chain_reaches_the_outer_error_handler(loop):
    async def fail(req, res, next):
        raise RuntimeError("inner")

    async def on_error(err, req, res, next):
        return f"outer handled {err}"

    inner = compose([fail])
    assert run(loop, compose([inner, on_error])({}, {})) == "outer handled inner"


def test_next_takes_an_exception_or_nothing(loop):
    async def bad(req, res, next):
        await next("route")

    with pytest.raises(TypeError, match=r"next\(\) takes an exception"):
        run(loop, compose([bad])({}, {}))
