"""phaseloop.middleware.compose: koa/express-style onion composition.

Each test runs its chain on phaseloop and on asyncio's loop (the `loop`
fixture): composition must not depend on the loop.
"""
import asyncio

import pytest

from phaseloop.middleware import compose


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 5))


def test_onion_order_koa_style(loop):
    trace = []

    def layer(name):
        async def mw(ctx, next):
            trace.append(f"{name} down")
            result = await next()
            trace.append(f"{name} up")
            return result
        return mw

    async def handler(ctx, next):
        trace.append("handler")
        return ctx["value"] * 2

    app = compose([layer("a"), layer("b"), handler])
    assert run(loop, app({"value": 21})) == 42
    assert trace == ["a down", "b down", "handler", "b up", "a up"]


def test_express_style_arguments(loop):
    async def auth(req, res, next):
        req["user"] = "ada"
        await next()
        res["headers"]["x-user"] = req["user"]

    async def handler(req, res, next):
        res["body"] = f"hello {req['user']}"

    req, res = {}, {"headers": {}}
    assert run(loop, compose([auth, handler])(req, res)) is None
    assert res == {"body": "hello ada", "headers": {"x-user": "ada"}}


def test_next_returns_what_the_rest_returned_and_upstream_can_change_it(loop):
    async def wrap(ctx, next):
        return {"wrapped": await next()}

    async def handler(ctx, next):
        return "inner"

    assert run(loop, compose([wrap, handler])({})) == {"wrapped": "inner"}


def test_plain_functions_beside_async_ones(loop):
    def sync_mw(ctx, next):
        ctx.append("sync")
        return next()          # returns the awaitable; the chain awaits it

    async def async_mw(ctx, next):
        ctx.append("async")
        return await next()

    def last(ctx, next):
        ctx.append("last")
        return "done"

    ctx = []
    assert run(loop, compose([sync_mw, async_mw, last])(ctx)) == "done"
    assert ctx == ["sync", "async", "last"]


def test_end_of_chain_next_returns_none(loop):
    async def only(ctx, next):
        return ("end", await next())

    assert run(loop, compose([only])({})) == ("end", None)
    assert run(loop, compose([])({})) is None


def test_next_called_twice_raises(loop):
    async def twice(ctx, next):
        await next()
        await next()

    with pytest.raises(RuntimeError, match=r"^next\(\) called multiple times$"):
        run(loop, compose([twice, lambda ctx, next: None])({}))


def test_errors_propagate_through_every_upstream_next(loop):
    seen = []

    def layer(name):
        async def mw(ctx, next):
            try:
                return await next()
            except ValueError as exc:
                seen.append((name, str(exc)))
                raise
        return mw

    async def boom(ctx, next):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run(loop, compose([layer("outer"), layer("inner"), boom])({}))
    assert seen == [("inner", "bad input"), ("outer", "bad input")]


def test_an_upstream_layer_can_handle_the_error(loop):
    async def error_handler(ctx, next):
        try:
            return await next()
        except KeyError:
            return 404

    async def lookup(ctx, next):
        return {}["missing"]

    assert run(loop, compose([error_handler, lookup])({})) == 404


@pytest.mark.parametrize("bad", [None, 42, "text", object()])
def test_non_callable_is_a_type_error_at_compose_time(bad):
    with pytest.raises(TypeError, match="middleware 1 must be callable"):
        compose([lambda ctx, next: None, bad])


def test_compose_needs_a_list():
    with pytest.raises(TypeError):
        compose(None)
    with pytest.raises(TypeError):
        compose("abc")


def test_a_composed_chain_is_a_middleware(loop):
    trace = []

    def layer(name):
        async def mw(ctx, next):
            trace.append(name)
            return await next()
        return mw

    async def handler(ctx, next):
        trace.append("handler")
        return "ok"

    inner = compose([layer("inner-1"), layer("inner-2")])
    app = compose([layer("outer"), inner, handler])
    assert run(loop, app({})) == "ok"
    assert trace == ["outer", "inner-1", "inner-2", "handler"]


def test_a_layer_that_does_not_call_next_short_circuits(loop):
    called = []

    async def gate(ctx, next):
        return "denied"

    async def handler(ctx, next):
        called.append(True)

    assert run(loop, compose([gate, handler])({})) == "denied"
    assert called == []


def test_chains_run_concurrently_without_sharing_state(loop):
    async def slow(ctx, next):
        await asyncio.sleep(0.01 * ctx["n"])
        return await next()

    async def handler(ctx, next):
        return ctx["n"]

    app = compose([slow, handler])

    async def main():
        return await asyncio.gather(*(app({"n": n}) for n in (3, 1, 2)))

    assert run(loop, main()) == [3, 1, 2]
