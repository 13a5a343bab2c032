"""Exception handler API; errors in callbacks; KeyboardInterrupt and SystemExit."""
import asyncio
import contextvars
import gc
import logging
import socket
import sys

import pytest


class Boom(Exception):
    pass


def raise_boom(text="boom"):
    raise Boom(text)


def run_until_stopped(loop, guard=5.0):
    """run_forever with a guard timer, so a test cannot hang if stop never comes."""
    guard_handle = loop.call_later(guard, loop.stop)
    try:
        loop.run_forever()
    finally:
        guard_handle.cancel()


@pytest.fixture
def reported(loop):
    """Contexts passed to a custom exception handler installed on `loop`."""
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append((lp, context)))
    return contexts


# ---- the handler API --------------------------------------------------------


def test_exception_handler_get_set(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, context):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_set_exception_handler_rejects_non_callable(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_call_exception_handler_calls_the_custom_handler(loop, reported):
    context = {"message": "custom report", "extra": 1}
    loop.call_exception_handler(context)
    assert len(reported) == 1
    handler_loop, seen = reported[0]
    assert handler_loop is loop
    assert seen["message"] == "custom report"
    assert seen["extra"] == 1


def test_default_exception_handler_logs(loop, caplog):
    error = Boom("logged by default")
    with caplog.at_level(logging.DEBUG):
        loop.default_exception_handler({"message": "something broke", "exception": error})
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert records
    assert "something broke" in caplog.text
    assert "logged by default" in caplog.text


def test_call_exception_handler_without_handler_logs(loop, caplog):
    with caplog.at_level(logging.DEBUG):
        loop.call_exception_handler({"message": "reported without handler"})
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    assert "reported without handler" in caplog.text


def test_handler_that_raises_is_logged_and_loop_continues(loop, caplog):
    def bad_handler(lp, context):
        raise RuntimeError("the handler itself failed")

    loop.set_exception_handler(bad_handler)
    calls = []
    loop.call_soon(raise_boom)
    loop.call_soon(calls.append, "after")
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG):
        run_until_stopped(loop)
    assert calls == ["after"]
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    assert "the handler itself failed" in caplog.text


# ---- exceptions escaping callbacks ------------------------------------------


def test_exception_in_call_soon_goes_to_handler(loop, reported):
    calls = []
    handle = loop.call_soon(raise_boom, "in call_soon")
    loop.call_soon(calls.append, "next callback runs")
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert calls == ["next callback runs"]
    assert len(reported) == 1
    handler_loop, context = reported[0]
    assert handler_loop is loop
    assert context["message"].startswith("Exception in callback")
    assert isinstance(context["exception"], Boom)
    assert str(context["exception"]) == "in call_soon"
    assert context["handle"] is handle


def test_exception_in_timer_goes_to_handler(loop, reported):
    calls = []
    handle = loop.call_later(0.001, raise_boom, "in timer")
    loop.call_later(0.002, calls.append, "later timer runs")
    loop.call_later(0.005, loop.stop)
    run_until_stopped(loop)
    assert calls == ["later timer runs"]
    assert len(reported) == 1
    context = reported[0][1]
    assert str(context["exception"]) == "in timer"
    assert context["handle"] is handle


def test_exception_in_reader_goes_to_handler(loop, reported):
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    received = []

    def on_readable():
        data = reader.recv(100)
        received.append(data)
        if data == b"first":
            raise Boom("in reader")
        loop.stop()

    try:
        loop.add_reader(reader, on_readable)
        writer.send(b"first")
        loop.call_later(0.01, writer.send, b"second")
        run_until_stopped(loop)
        # The reader stays registered after raising.
        assert received == [b"first", b"second"]
        assert len(reported) == 1
        context = reported[0][1]
        assert isinstance(context["exception"], Boom)
        assert "handle" in context
    finally:
        loop.remove_reader(reader)
        reader.close()
        writer.close()


# ---- the context the handler runs in -------------------------------------------

# From Python 3.12 a custom handler runs in the context of what failed (the
# task, the future, else the handle: CPython gh-96704); before, in the
# context that was current when the loop called it.
HANDLER_IN_FAILING_CONTEXT = sys.version_info >= (3, 12)
request_id = contextvars.ContextVar("request_id", default="loop")


def handler_context_seen(loop, schedule_failure):
    seen = []
    loop.set_exception_handler(lambda lp, context: seen.append(request_id.get()))

    async def main():
        schedule_failure()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    return seen


def test_handler_runs_in_the_failing_callbacks_context(loop):
    def callback():
        request_id.set("in the callback")
        raise Boom()

    seen = handler_context_seen(loop, lambda: loop.call_soon(callback))
    assert seen == ["in the callback" if HANDLER_IN_FAILING_CONTEXT else "loop"]


def test_handler_runs_in_the_failing_tasks_context(loop):
    async def task():
        request_id.set("in the task")
        raise Boom()

    def start():
        loop.create_task(task())
        gc.collect()

    def schedule():
        # The unretrieved exception is reported when the task is collected.
        loop.call_soon(start)

    seen = handler_context_seen(loop, schedule)
    gc.collect()
    assert seen == ["in the task" if HANDLER_IN_FAILING_CONTEXT else "loop"]


def test_handler_runs_in_the_context_of_a_reader_that_removed_itself(loop, socket_pair):
    a, b = socket_pair

    def on_readable():
        loop.remove_reader(a)       # the handle lets go of its fields here
        request_id.set("in the reader")
        raise Boom()

    ctx = contextvars.copy_context()
    ctx.run(loop.add_reader, a, on_readable)
    b.send(b"x")
    seen = handler_context_seen(loop, lambda: None)
    assert seen == ["in the reader" if HANDLER_IN_FAILING_CONTEXT else "loop"]


def test_exception_in_callback_logged_by_default(loop, caplog):
    loop.call_soon(raise_boom, "default handler sees this")
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.DEBUG):
        run_until_stopped(loop)
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    assert "Exception in callback" in caplog.text
    assert "default handler sees this" in caplog.text


def test_unretrieved_task_exception_is_reported(loop, reported):
    async def fail():
        raise Boom("never retrieved")

    task = loop.create_task(fail())
    loop.run_until_complete(asyncio.sleep(0.001))
    assert task.done()
    del task
    gc.collect()
    messages = [context["message"] for _, context in reported]
    assert any("never retrieved" in message for message in messages)
    [context] = [c for _, c in reported if "never retrieved" in c["message"]]
    assert str(context["exception"]) == "never retrieved"


# ---- KeyboardInterrupt / SystemExit -------------------------------------------


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_callback_propagates_from_run_forever(loop, reported, exc_type):
    calls = []

    def interrupt():
        raise exc_type()

    loop.call_soon(interrupt)
    loop.call_soon(calls.append, "pending")
    with pytest.raises(exc_type):
        run_until_stopped(loop)
    assert not loop.is_running()
    assert reported == []
    # The loop is still usable, and the callback queued behind the interrupt
    # was not lost.
    loop.call_soon(loop.stop)
    run_until_stopped(loop)
    assert calls == ["pending"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_timer_propagates_from_run_until_complete(loop, exc_type):
    def interrupt():
        raise exc_type()

    calls = []
    now = loop.time()
    # Both overdue: they are due in the same batch, and the interrupt must not
    # lose the timer behind it.
    loop.call_at(now - 0.002, interrupt)
    loop.call_at(now - 0.001, calls.append, "later timer")
    sleeper = loop.create_task(asyncio.sleep(1))
    with pytest.raises(exc_type):
        loop.run_until_complete(sleeper)
    assert not loop.is_running()
    assert not sleeper.done()
    sleeper.cancel()

    async def wait_a_bit():
        await asyncio.sleep(0.01)
        return "usable"

    assert loop.run_until_complete(wait_a_bit()) == "usable"
    assert calls == ["later timer"]
    assert sleeper.cancelled()


def test_keyboard_interrupt_in_reader_propagates(loop):
    reader, writer = socket.socketpair()
    reader.setblocking(False)

    def on_readable():
        reader.recv(100)
        raise KeyboardInterrupt

    try:
        loop.add_reader(reader, on_readable)
        writer.send(b"x")
        with pytest.raises(KeyboardInterrupt):
            run_until_stopped(loop)
        loop.remove_reader(reader)
        assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_task_propagates(loop, exc_type):
    async def interrupted():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(interrupted())
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"
