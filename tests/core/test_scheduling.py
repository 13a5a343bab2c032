"""call_soon, call_later, call_at, time() and the Handle / TimerHandle they return."""
import contextvars
import math
import sys
import time

import pytest

request_id = contextvars.ContextVar("request_id", default="unset")


def run_until_stopped(loop, guard=5.0):
    """run_forever with a guard timer, so a test cannot hang if stop never comes."""
    guard_handle = loop.call_later(guard, loop.stop)
    loop.run_forever()
    guard_handle.cancel()


def named_callback():
    pass


# ---- call_soon -------------------------------------------------------------


def test_call_soon_runs_callback_with_args(loop):
    calls = []
    handle = loop.call_soon(calls.append, "first")
    loop.call_soon(lambda *args: calls.append(args), 1, 2, 3)
    loop.call_soon(loop.stop)
    assert type(handle).__name__ == "Handle"
    assert not handle.cancelled()
    run_until_stopped(loop)
    assert calls == ["first", (1, 2, 3)]


def test_call_soon_is_fifo(loop):
    order = []
    for i in range(1000):
        loop.call_soon(order.append, i)
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert order == list(range(1000))


def test_call_soon_scheduled_from_callbacks_keeps_fifo(loop):
    order = []

    def first():
        order.append("first")
        loop.call_soon(order.append, "from first")

    def second():
        order.append("second")
        loop.call_soon(order.append, "from second")
        loop.call_soon(loop.stop)

    loop.call_soon(first)
    loop.call_soon(second)
    run_until_stopped(loop)
    assert order == ["first", "second", "from first", "from second"]


def test_cancelled_handle_does_not_run(loop):
    calls = []
    handle = loop.call_soon(calls.append, "cancelled")
    loop.call_soon(calls.append, "kept")
    handle.cancel()
    assert handle.cancelled()
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert calls == ["kept"]


def test_callback_cancels_a_later_callback_of_the_same_batch(loop):
    calls = []
    victim = None

    def killer():
        calls.append("killer")
        victim.cancel()

    loop.call_soon(killer)
    victim = loop.call_soon(calls.append, "victim")
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert calls == ["killer"]
    assert victim.cancelled()


def test_cancel_is_idempotent_and_harmless_after_run(loop):
    calls = []
    handle = loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert calls == [1]
    handle.cancel()
    handle.cancel()
    assert handle.cancelled()


# ---- call_later / call_at -----------------------------------------------


def test_call_later_runs_after_delay_with_args(loop):
    result = []
    start = loop.time()

    def fire(a, b):
        result.append((a, b, loop.time() - start))
        loop.stop()

    handle = loop.call_later(0.01, fire, "a", "b")
    assert type(handle).__name__ == "TimerHandle"
    run_until_stopped(loop)
    assert len(result) == 1
    a, b, elapsed = result[0]
    assert (a, b) == ("a", "b")
    assert elapsed >= 0.01


def test_call_later_zero_returns_timer_handle(loop):
    calls = []
    before = loop.time()
    handle = loop.call_later(0, calls.append, "zero")
    after = loop.time()
    assert type(handle).__name__ == "TimerHandle"
    assert before <= handle.when() <= after
    loop.call_later(0.001, loop.stop)
    run_until_stopped(loop)
    assert calls == ["zero"]


def test_call_at_when_matches_argument(loop):
    when = loop.time() + 0.005
    handle = loop.call_at(when, loop.stop)
    assert handle.when() == pytest.approx(when, abs=1e-6)
    run_until_stopped(loop)
    assert loop.time() >= when


def test_call_later_when_is_time_plus_delay(loop):
    before = loop.time()
    handle = loop.call_later(10, named_callback)
    after = loop.time()
    assert before + 10 - 1e-6 <= handle.when() <= after + 10 + 1e-6
    handle.cancel()


def test_negative_delay_is_due_now(loop):
    order = []
    loop.call_later(0.001, order.append, "positive")
    loop.call_later(0, order.append, "zero")
    loop.call_later(-5, order.append, "negative")
    loop.call_at(loop.time() - 100, order.append, "past call_at")
    loop.call_later(0.005, loop.stop)
    run_until_stopped(loop)
    assert order == ["past call_at", "negative", "zero", "positive"]


def test_inf_delay_never_fires(loop):
    calls = []
    handle = loop.call_later(math.inf, calls.append, "inf")
    at_handle = loop.call_at(math.inf, calls.append, "inf call_at")
    assert handle.when() == math.inf
    loop.call_later(0.02, loop.stop)
    run_until_stopped(loop)
    assert calls == []
    assert not handle.cancelled()
    handle.cancel()
    at_handle.cancel()
    assert handle.cancelled()


def test_timer_handle_cancel_prevents_run(loop):
    calls = []
    handle = loop.call_later(0.001, calls.append, "cancelled")
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()
    loop.call_later(0.01, loop.stop)
    run_until_stopped(loop)
    assert calls == []


# ---- time() ---------------------------------------------------------------


def test_time_is_monotonic_and_live(loop):
    t0 = loop.time()
    assert isinstance(t0, float)
    time.sleep(0.02)
    t1 = loop.time()
    assert t1 - t0 >= 0.02
    readings = [loop.time() for _ in range(1000)]
    assert readings == sorted(readings)


def test_time_is_live_inside_a_callback(loop):
    elapsed = []

    def measure():
        t0 = loop.time()
        time.sleep(0.02)
        elapsed.append(loop.time() - t0)
        loop.stop()

    loop.call_soon(measure)
    run_until_stopped(loop)
    assert elapsed[0] >= 0.02


def test_time_has_sub_microsecond_steps(loop):
    # A millisecond clock would give steps of 1e-3 at best.
    readings = [loop.time() for _ in range(10000)]
    steps = [b - a for a, b in zip(readings, readings[1:]) if b > a]
    assert steps, "loop.time() never advanced"
    assert min(steps) < 1e-5


# ---- context= ---------------------------------------------------------------


def test_call_soon_runs_in_a_copy_of_the_current_context(loop):
    seen = []
    token = request_id.set("at call_soon")
    try:
        handle = loop.call_soon(lambda: seen.append(request_id.get()))
    finally:
        request_id.reset(token)
    token = request_id.set("changed later")
    try:
        loop.call_soon(loop.stop)
        run_until_stopped(loop)
    finally:
        request_id.reset(token)
    assert seen == ["at call_soon"]


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_context_argument_is_used(loop, method):
    ctx = contextvars.Context()
    ctx.run(request_id.set, "explicit")
    seen = []

    def callback(arg):
        seen.append((arg, request_id.get()))
        request_id.set("set by callback")
        loop.stop()

    if method == "call_soon":
        handle = loop.call_soon(callback, "arg", context=ctx)
    elif method == "call_later":
        handle = loop.call_later(0, callback, "arg", context=ctx)
    else:
        handle = loop.call_at(loop.time(), callback, "arg", context=ctx)
    run_until_stopped(loop)
    assert seen == [("arg", "explicit")]
    # The callback ran inside ctx itself, not a copy of it.
    assert ctx.get(request_id) == "set by callback"
    assert request_id.get() == "unset"


def test_get_context(loop, loop_name):
    if loop_name == "asyncio" and sys.version_info < (3, 12):
        pytest.skip("Handle.get_context() is new in Python 3.12")
    ctx = contextvars.Context()
    assert loop.call_soon(named_callback, context=ctx).get_context() is ctx
    assert loop.call_later(1, named_callback, context=ctx).get_context() is ctx
    assert loop.call_at(loop.time(), named_callback, context=ctx).get_context() is ctx
    token = request_id.set("current")
    try:
        implicit = loop.call_soon(named_callback)
    finally:
        request_id.reset(token)
    assert implicit.get_context().get(request_id) == "current"


# ---- repr --------------------------------------------------------------------


def test_handle_repr(loop):
    handle = loop.call_soon(named_callback)
    assert "named_callback" in repr(handle)
    handle.cancel()
    assert "cancelled" in repr(handle)


def test_timer_handle_repr(loop):
    handle = loop.call_later(10, named_callback)
    text = repr(handle)
    assert "named_callback" in text
    assert "when=" in text
    handle.cancel()
    assert "cancelled" in repr(handle)


# ---- bad input ---------------------------------------------------------------


def test_none_delay_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, named_callback)
    with pytest.raises(TypeError):
        loop.call_at(None, named_callback)


def test_string_delay_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later("1", named_callback)


def test_non_callable_raises_type_error_in_debug_mode(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.call_soon(42)
    with pytest.raises(TypeError):
        loop.call_later(0, 42)
    with pytest.raises(TypeError):
        loop.call_at(loop.time(), 42)


def test_coroutine_function_is_rejected_in_debug_mode(loop):
    async def coroutine_function():
        pass

    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.call_soon(coroutine_function)


# phaseloop checks what asyncio checks only in debug mode, and rejects NaN
# (asyncio 3.11 accepts a NaN deadline): documented differences.


def test_phaseloop_non_callable_raises_type_error(phase_loop):
    assert not phase_loop.get_debug()
    with pytest.raises(TypeError):
        phase_loop.call_soon(42)
    with pytest.raises(TypeError):
        phase_loop.call_later(0, "not callable")
    with pytest.raises(TypeError):
        phase_loop.call_at(phase_loop.time(), None)
    with pytest.raises(TypeError):
        phase_loop.call_soon_threadsafe(42)


def test_phaseloop_string_deadline_raises_type_error(phase_loop):
    # asyncio stores the string and fails later, inside the loop.
    with pytest.raises(TypeError):
        phase_loop.call_at("1", named_callback)


@pytest.mark.parametrize("method", ["call_later", "call_at"])
def test_phaseloop_nan_raises_value_error(phase_loop, method):
    with pytest.raises(ValueError):
        getattr(phase_loop, method)(math.nan, named_callback)
