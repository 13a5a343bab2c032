"""Threads: call_soon_threadsafe, executors, DNS helpers and debug mode."""
import asyncio
import concurrent.futures
import contextvars
import logging
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest

WAIT = 5.0

request_id = contextvars.ContextVar("request_id", default="unset")


def run_until(loop, fut):
    return loop.run_until_complete(asyncio.wait_for(fut, WAIT))


def in_thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# ---- call_soon_threadsafe -------------------------------------------------------


def test_threadsafe_call_wakes_loop_blocked_on_far_timer(loop):
    """The loop sleeps in poll until a 10 s timer; only the wakeup can end it early."""
    times = {}
    loop_started = threading.Event()

    def from_thread():
        assert loop_started.wait(WAIT)
        time.sleep(0.2)  # the loop is now blocked in poll
        times["called"] = time.monotonic()
        loop.call_soon_threadsafe(on_wakeup, "arg")

    def on_wakeup(arg):
        times["ran"] = time.monotonic()
        times["arg"] = arg
        loop.stop()

    far = loop.call_later(10, loop.stop)
    loop.call_soon(loop_started.set)
    thread = in_thread(from_thread)
    started = time.monotonic()
    loop.run_forever()
    thread.join(WAIT)
    far.cancel()
    assert times["arg"] == "arg"
    assert time.monotonic() - started < 5
    assert times["ran"] - times["called"] < 1.0


def test_threadsafe_call_wakes_loop_with_nothing_scheduled(loop):
    """No timer at all: the loop would wait forever without the wakeup."""
    done = []
    safety = threading.Timer(WAIT, lambda: loop.call_soon_threadsafe(loop.stop))
    safety.start()

    def from_thread():
        time.sleep(0.1)
        loop.call_soon_threadsafe(done.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    thread = in_thread(from_thread)
    try:
        loop.run_forever()
    finally:
        safety.cancel()
        thread.join(WAIT)
    assert done == ["woken"]


def test_threadsafe_call_with_context(loop):
    fut = loop.create_future()
    ctx = contextvars.copy_context()
    ctx.run(request_id.set, "from-context")

    def read_var():
        fut.set_result(request_id.get())

    thread = in_thread(lambda: loop.call_soon_threadsafe(read_var, context=ctx))
    assert run_until(loop, fut) == "from-context"
    thread.join(WAIT)
    assert request_id.get() == "unset"


def test_threadsafe_returns_cancellable_handle(loop):
    calls = []
    handles = []
    thread = in_thread(lambda: handles.append(loop.call_soon_threadsafe(calls.append, 1)))
    thread.join(WAIT)
    handles[0].cancel()
    assert handles[0].cancelled()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert calls == []


def test_many_threads_many_calls_all_run_in_order(loop):
    threads_n, calls_n = 8, 1000
    total = threads_n * calls_n
    received = []
    go = threading.Event()

    def record(tid, i):
        received.append((tid, i))
        if len(received) == total:
            loop.stop()

    def producer(tid):
        go.wait(WAIT)
        for i in range(calls_n):
            loop.call_soon_threadsafe(record, tid, i)

    threads = [in_thread(producer, t) for t in range(threads_n)]
    safety = loop.call_later(20, loop.stop)
    loop.call_soon(go.set)
    loop.run_forever()
    safety.cancel()
    for thread in threads:
        thread.join(WAIT)
    assert len(received) == total
    for tid in range(threads_n):
        assert [i for t, i in received if t == tid] == list(range(calls_n))


def test_call_soon_threadsafe_on_closed_loop_raises(loop):
    loop.close()
    errors = []

    def target():
        try:
            loop.call_soon_threadsafe(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    in_thread(target).join(WAIT)
    assert len(errors) == 1


# ---- executors ------------------------------------------------------------------


def test_run_in_executor_default(loop):
    def blocking(a, b):
        time.sleep(0.01)
        return a + b, threading.get_ident()

    result, tid = loop.run_until_complete(
        asyncio.wait_for(loop.run_in_executor(None, blocking, 2, 3), WAIT))
    assert result == 5
    assert tid != threading.get_ident()


def test_run_in_executor_exception_propagates(loop):
    def fails():
        raise LookupError("in a worker")

    with pytest.raises(LookupError, match="in a worker"):
        loop.run_until_complete(asyncio.wait_for(loop.run_in_executor(None, fails), WAIT))


def test_run_in_executor_returns_awaitable_future(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, 2, n) for n in range(10)]
        assert all(isinstance(f, asyncio.Future) for f in futs)
        return await asyncio.gather(*futs)

    assert loop.run_until_complete(asyncio.wait_for(main(), WAIT)) == [2 ** n for n in range(10)]


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom-pool") as pool:
        name = loop.run_until_complete(asyncio.wait_for(
            loop.run_in_executor(pool, lambda: threading.current_thread().name), WAIT))
    assert name.startswith("custom-pool")


def test_set_default_executor(loop):
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="my-default")
    try:
        loop.set_default_executor(pool)
        name = loop.run_until_complete(asyncio.wait_for(
            loop.run_in_executor(None, lambda: threading.current_thread().name), WAIT))
        assert name.startswith("my-default")
    finally:
        pool.shutdown(wait=True)


class InlineExecutor(concurrent.futures.Executor):
    """An Executor that is not a ThreadPoolExecutor."""

    def submit(self, fn, *args, **kwargs):
        fut = concurrent.futures.Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def _set_default_executor_outcome(lp):
    """('raises', type) or ('warns', [categories]) or ('accepts', [])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lp.set_default_executor(InlineExecutor())
        except Exception as exc:  # noqa: BLE001 - the type is what we compare
            return ("raises", type(exc))
    categories = [w.category for w in caught]
    return ("warns" if categories else "accepts", categories)


def test_set_default_executor_rejects_non_thread_pool_like_asyncio(loop):
    ref = asyncio.new_event_loop()
    try:
        expected = _set_default_executor_outcome(ref)
    finally:
        ref.close()
    assert expected[0] in ("raises", "warns")  # asyncio 3.11 raises TypeError
    assert _set_default_executor_outcome(loop) == expected


def test_shutdown_default_executor_then_run_in_executor_raises(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), WAIT))
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, int)


def test_shutdown_default_executor_waits_for_work(loop):
    finished = []

    def work():
        time.sleep(0.1)
        finished.append(1)

    loop.run_in_executor(None, work)
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), WAIT))
    assert finished == [1]


def _skip_timeout_on_old_asyncio(loop_name, since=(3, 12)):
    # asyncio added timeout= in 3.12, but only 3.13 bounds the wait for
    # the workers with it (3.12 applies it to the final join alone).
    if loop_name == "asyncio" and sys.version_info < since:
        pytest.skip("asyncio's shutdown_default_executor(timeout=) needs "
                    "Python %d.%d" % since)


def test_shutdown_default_executor_timeout_returns_early(loop, loop_name):
    """A worker stuck past the timeout: shutdown warns and returns anyway."""
    _skip_timeout_on_old_asyncio(loop_name, since=(3, 13))
    release = threading.Event()
    loop.run_in_executor(None, release.wait, 10)
    started = time.monotonic()
    try:
        with pytest.warns(RuntimeWarning):
            loop.run_until_complete(asyncio.wait_for(
                loop.shutdown_default_executor(timeout=0.2), WAIT))
        assert time.monotonic() - started < 3
    finally:
        release.set()


def test_shutdown_default_executor_timeout_with_quick_work(loop, loop_name):
    _skip_timeout_on_old_asyncio(loop_name)
    finished = []
    loop.run_in_executor(None, lambda: finished.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loop.run_until_complete(asyncio.wait_for(
            loop.shutdown_default_executor(timeout=5), WAIT))
    assert finished == [1]


# ---- DNS helpers ------------------------------------------------------------------


def test_getaddrinfo_numeric_host(loop):
    infos = loop.run_until_complete(asyncio.wait_for(
        loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM), WAIT))
    expected = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert sorted(infos) == sorted(expected)
    assert (socket.AF_INET, socket.SOCK_STREAM) == infos[0][:2]
    assert infos[0][4] == ("127.0.0.1", 80)


def test_getaddrinfo_all_types(loop):
    infos = loop.run_until_complete(asyncio.wait_for(loop.getaddrinfo("127.0.0.1", 80), WAIT))
    assert sorted(infos) == sorted(socket.getaddrinfo("127.0.0.1", 80))


def test_getaddrinfo_error_is_gaierror(loop):
    with pytest.raises(socket.gaierror):
        loop.run_until_complete(asyncio.wait_for(
            loop.getaddrinfo("127.0.0.1", 80, flags=socket.AI_NUMERICHOST,
                             family=socket.AF_INET6), WAIT))


def test_getnameinfo(loop):
    got = loop.run_until_complete(asyncio.wait_for(
        loop.getnameinfo(("127.0.0.1", 80)), WAIT))
    assert got == socket.getnameinfo(("127.0.0.1", 80), 0)
    numeric = loop.run_until_complete(asyncio.wait_for(
        loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
        WAIT))
    assert numeric == ("127.0.0.1", "80")


# ---- debug mode ---------------------------------------------------------------------


def test_set_debug_get_debug(loop):
    ref = asyncio.new_event_loop()
    try:
        assert loop.get_debug() == ref.get_debug()
    finally:
        ref.close()
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_debug_call_soon_from_other_thread_raises(loop):
    loop.set_debug(True)
    errors = {}

    def from_thread():
        for name, call in (("call_soon", lambda: loop.call_soon(lambda: None)),
                           ("call_later", lambda: loop.call_later(0.01, lambda: None))):
            try:
                call()
            except RuntimeError:
                errors[name] = RuntimeError
            except Exception as exc:  # noqa: BLE001
                errors[name] = type(exc)
            else:
                errors[name] = None
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(in_thread, from_thread)
    safety = loop.call_later(WAIT, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert errors == {"call_soon": RuntimeError, "call_later": RuntimeError}


def test_debug_call_soon_threadsafe_from_other_thread_works(loop):
    loop.set_debug(True)
    fut = loop.create_future()
    loop.call_soon(in_thread,
                   lambda: loop.call_soon_threadsafe(fut.set_result, "ok"))
    assert run_until(loop, fut) == "ok"


def test_without_debug_call_soon_from_other_thread_does_not_raise(loop):
    """Without debug mode the check is skipped (asyncio's documented cost trade-off)."""
    loop.set_debug(False)
    errors = []

    def from_thread():
        try:
            loop.call_soon(lambda: None)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(in_thread, from_thread)
    safety = loop.call_later(WAIT, loop.stop)
    loop.run_forever()
    safety.cancel()
    assert errors == []


def test_default_slow_callback_duration(loop):
    assert loop.slow_callback_duration == 0.1


def _executing_messages(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and "Executing" in r.getMessage()]


def test_debug_slow_callback_logs_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    with caplog.at_level(logging.WARNING):
        loop.call_soon(time.sleep, 0.15)
        loop.call_soon(loop.stop)
        loop.run_forever()
    messages = _executing_messages(caplog)
    assert len(messages) == 1, messages
    assert "sleep" in messages[0]


def test_debug_slow_coroutine_step_logs_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05

    async def slow_step():
        time.sleep(0.1)

    with caplog.at_level(logging.WARNING):
        loop.run_until_complete(slow_step())
    assert _executing_messages(caplog)


def test_debug_fast_callbacks_do_not_log(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            loop.call_soon(lambda: None)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert _executing_messages(caplog) == []


def test_slow_callback_without_debug_does_not_log(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING):
        loop.call_soon(time.sleep, 0.05)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert _executing_messages(caplog) == []


# ---- call_soon_threadsafe racing close() ---------------------------------------

# Another thread calls call_soon_threadsafe while the loop's thread closes the
# loop (anyio's worker threads report results this way at a test's end).  In
# debug mode making the handle runs Python code (the stack capture), so the
# GIL can pass to the closing thread between the closed check and the push:
# phaseloop pushed onto a freed core and crashed.  Now: RuntimeError, as on
# asyncio.  In a child process, so that a crash fails this test alone.
RACE_PROGRAM = """
import asyncio, sys, threading
import phaseloop
sys.setswitchinterval(1e-6)
factory = {"phaseloop": phaseloop.new_event_loop, "asyncio": asyncio.new_event_loop}[sys.argv[1]]
closed_errors = 0
for _ in range(150):
    loop = factory()
    loop.set_debug(True)
    def spin():
        global closed_errors
        while True:
            try:
                loop.call_soon_threadsafe(int)
            except RuntimeError as exc:
                assert "closed" in str(exc), exc
                closed_errors += 1
                return
    thread = threading.Thread(target=spin)
    thread.start()
    loop.run_until_complete(asyncio.sleep(0.001))
    loop.close()
    thread.join()
print(closed_errors)
"""


def test_call_soon_threadsafe_racing_close_raises(loop_name):
    proc = subprocess.run([sys.executable, "-c", RACE_PROGRAM, loop_name],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "150"
