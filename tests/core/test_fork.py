"""A phaseloop loop and os.fork().

The child inherits the parent's epoll and eventfd descriptors; using them
would corrupt the parent's loop, so a loop used in a child must refuse with
a RuntimeError that says why.  A fresh phaseloop.new_event_loop() in the
child works.  The child reports through a pipe as JSON and always leaves
with os._exit, so it never runs pytest's code.
"""
import asyncio
import json
import os
import select
import socket
import threading
import time

import pytest

import phaseloop

WAIT = 10.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_in_child(child):
    """Fork; run child() there; return what it returned (a JSON value)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(r)
            try:
                report = {"result": child()}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                report = {"crash": "%s: %s" % (type(exc).__name__, exc)}
            os.write(w, json.dumps(report).encode())
        except BaseException:  # noqa: BLE001
            status = 70
        finally:
            os._exit(status)
    os.close(w)
    data = b""
    deadline = time.monotonic() + WAIT
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([r], [], [], max(remaining, 0))
            if not ready:
                break
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        status = _reap(pid)
    assert status == 0, "child exited with status %r" % status
    report = json.loads(data.decode() or '{"crash": "no report"}')
    assert "crash" not in report, report["crash"]
    return report["result"]


def _reap(pid):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return "killed after %ss" % WAIT


def outcome(fn, *args):
    """('ok', value) or ('raises', type name, message)."""
    try:
        return ["ok", repr(fn(*args))]
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        return ["raises", type(exc).__name__, str(exc)]


async def small_program():
    loop = asyncio.get_running_loop()
    order = []
    fut = loop.create_future()
    loop.call_soon(order.append, "soon")
    loop.call_later(0.01, fut.set_result, 42)
    value = await fut
    await asyncio.sleep(0)
    return order + [value]


# ---- the parent's loop in the child ---------------------------------------------------


def test_parent_loop_in_child_raises_mentioning_fork(phase_loop):
    phase_loop.run_until_complete(small_program())  # the loop has run in the parent

    def child():
        return outcome(phase_loop.run_until_complete, asyncio.sleep(0))

    result = run_in_child(child)
    assert result[:2] == ["raises", "RuntimeError"], result
    assert "fork" in result[2].lower(), result


def test_parent_loop_run_forever_in_child_raises(phase_loop):
    def child():
        phase_loop.call_soon(phase_loop.stop)
        return outcome(phase_loop.run_forever)

    result = run_in_child(child)
    assert result[:2] == ["raises", "RuntimeError"], result
    assert "fork" in result[2].lower(), result


def test_new_loop_in_child_works(phase_loop):
    phase_loop.run_until_complete(small_program())

    def child():
        lp = phaseloop.new_event_loop()
        try:
            return [type(lp).__name__, lp.run_until_complete(small_program())]
        finally:
            lp.close()

    assert run_in_child(child) == ["Loop", ["soon", 42]]


def test_new_loop_in_child_does_io_and_threads(phase_loop):
    def child():
        lp = phaseloop.new_event_loop()
        a, b = socket.socketpair()
        try:
            fut = lp.create_future()
            lp.add_reader(a.fileno(), lambda: fut.set_result(a.recv(10)))
            threading.Timer(0.05, lp.call_soon_threadsafe, (b.send, b"hi")).start()
            data = lp.run_until_complete(asyncio.wait_for(fut, 5))
            lp.remove_reader(a.fileno())
            return data.decode()
        finally:
            a.close()
            b.close()
            lp.close()

    assert run_in_child(child) == "hi"


def test_phaseloop_run_in_child(phase_loop):
    def child():
        return phaseloop.run(small_program())

    assert run_in_child(child) == ["soon", 42]


# ---- the parent's loop is unharmed ---------------------------------------------------


def test_parent_loop_keeps_working_after_child_touched_it(phase_loop):
    """The child tries everything on the inherited loop; the parent must not notice.

    The parent's reader is registered before the fork: a child that
    unregistered it from the shared epoll, or drained the shared eventfd,
    would break the parent's reader or its wakeups.
    """
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        got = []
        phase_loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
        phase_loop.run_until_complete(asyncio.sleep(0.01))

        def child():
            results = {}
            results["remove_reader"] = outcome(phase_loop.remove_reader, a.fileno())
            results["add_writer"] = outcome(phase_loop.add_writer, a.fileno(), lambda: None)
            results["threadsafe"] = outcome(phase_loop.call_soon_threadsafe, lambda: None)
            results["run"] = outcome(phase_loop.run_until_complete, asyncio.sleep(0))
            results["close"] = outcome(phase_loop.close)
            return results

        results = run_in_child(child)
        assert results["run"][:2] == ["raises", "RuntimeError"], results

        # Parent: the reader registered before the fork still fires...
        b.send(b"after fork")
        deadline = phase_loop.time() + WAIT
        while not got and phase_loop.time() < deadline:
            phase_loop.run_until_complete(asyncio.sleep(0.01))
        assert got == [b"after fork"]

        # ...timers and coroutines still run...
        assert phase_loop.run_until_complete(small_program()) == ["soon", 42]

        # ...and another thread can still wake the loop out of poll.
        woke = phase_loop.create_future()
        far = phase_loop.call_later(30, woke.cancel)
        threading.Timer(0.1, phase_loop.call_soon_threadsafe,
                        (woke.set_result, "woken")).start()
        assert phase_loop.run_until_complete(asyncio.wait_for(woke, WAIT)) == "woken"
        far.cancel()
        assert phase_loop.remove_reader(a.fileno()) is True
    finally:
        a.close()
        b.close()


def test_parent_loop_works_after_child_exits(phase_loop):
    def child():
        return os.getpid()

    child_pid = run_in_child(child)
    assert child_pid != os.getpid()
    assert phase_loop.run_until_complete(small_program()) == ["soon", 42]
    assert not phase_loop.is_closed()
