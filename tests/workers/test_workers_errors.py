"""Errors: an entry point that raises, a message that cannot be unpickled, an "error"
nobody listens to, and phaseloop.errors hooks inside a worker — on both kinds."""
from __future__ import annotations

import json

import pytest

from phaseloop import workers
from workers_support import (KINDS, BreaksOnArrival, loop_errors, next_event,  # noqa: F401
                             no_leaks, run, run_script)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", KINDS)
def test_an_exception_from_the_entry_point_is_an_error_event_and_exit_1(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:raises_value_error", kind=kind)
        order = []
        w.on("error", lambda exc: order.append(("error", exc)))
        w.on("exit", lambda code: order.append(("exit", code)))
        code = await w.wait()
        return code, order

    code, order = run(parent)
    assert code == 1 and [name for name, _ in order] == ["error", "exit"]
    exc = order[0][1]
    assert type(exc) is ValueError and str(exc) == "boom in the worker"
    note = exc.__notes__[-1]
    assert note.startswith("Traceback in worker ")
    assert "in raises_value_error" in note and "ValueError: boom in the worker" in note


@pytest.mark.parametrize("kind", KINDS)
def test_an_exception_that_does_not_pickle_arrives_as_worker_error(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:raises_unpicklable", kind=kind)
        (exc,) = await next_event(w, "error")
        return exc, await w.wait()

    exc, code = run(parent)
    assert code == 1
    assert isinstance(exc, workers.WorkerError)
    assert exc.type_name == "workers_support.Unpicklable"
    assert str(exc) == "workers_support.Unpicklable: cannot cross"
    assert "raise Unpicklable" in exc.__notes__[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_nobody_listens_to_goes_to_the_loop_exception_handler(kind, no_leaks):
    async def parent():
        reported = loop_errors()
        w = workers.Worker("workers_support:raises_value_error", kind=kind)
        return await w.wait(), reported

    code, reported = run(parent)
    assert code == 1 and len(reported) == 1
    assert "no 'error' listener" in reported[0]["message"]
    assert isinstance(reported[0]["exception"], ValueError)


@pytest.mark.parametrize("kind", KINDS)
def test_messageerror_in_both_directions_never_kills_the_worker(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:post_breaking_then_echo", kind=kind)
        parent_side = []
        w.on("messageerror", parent_side.append)
        w.post_message(BreaksOnArrival())                 # fails on the worker's side
        w.post_message("after")
        reply = await w.receive()       # after the worker's own bad message, skipped
        await w.terminate()
        return parent_side, reply

    parent_side, reply = run(parent)
    assert len(parent_side) == 1
    assert isinstance(parent_side[0], RuntimeError)
    assert "refused to unpickle" in str(parent_side[0])
    assert reply == ("after", ["RuntimeError"])       # the worker saw its messageerror


@pytest.mark.parametrize("kind", KINDS)
def test_messageerror_with_no_listener_is_reported_and_receive_goes_on(kind, no_leaks):
    async def parent():
        reported = loop_errors()
        w = workers.Worker("workers_support:post_breaking_then_echo", kind=kind)
        w.post_message("x")
        reply = await w.receive()                 # skips the broken message
        await w.terminate()
        return reply, reported

    reply, reported = run(parent)
    assert reply == ("x", [])
    assert len(reported) == 1 and "messageerror" in reported[0]["message"]


ERRORS_IN_A_WORKER = """
import json
import phaseloop
from phaseloop import workers

async def main():
    w = workers.Worker("errors_hooks_entry:entry", kind=KIND)
    seen = [msg async for msg in w]
    print(json.dumps({"seen": seen, "code": await w.wait()}))

phaseloop.run(main())
"""

ERRORS_ENTRY = '''
import asyncio
from phaseloop import errors, workers

async def entry():
    errors.install("log")
    port = workers.parent_port

    def uncaught(exc, context):
        port.post_message(["uncaught", type(exc).__name__, str(exc)])

    def rejected(exc, context):
        port.post_message(["rejected", type(exc).__name__, str(exc)])

    errors.on_uncaught_exception(uncaught)
    errors.on_unhandled_rejection(rejected)
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: 1 / 0)

    async def fails():
        raise KeyError("nobody awaits me")
    loop.create_task(fails())
    await asyncio.sleep(0.2)
    port.post_message(["still running"])
'''


@pytest.mark.parametrize("kind", KINDS)
def test_errors_hooks_work_inside_a_worker(kind, tmp_path):
    """errors.install() and its handlers, called inside the worker: a callback's
    exception and a rejection are seen there, and the worker goes on (log mode).
    In a fresh interpreter: the hooks are process-wide."""
    (tmp_path / "errors_hooks_entry.py").write_text(ERRORS_ENTRY)
    body = f"sys.path.insert(0, {str(tmp_path)!r})\nKIND = {kind!r}\n" + ERRORS_IN_A_WORKER
    done = run_script(body)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert ["uncaught", "ZeroDivisionError", "division by zero"] in result["seen"]
    assert ["rejected", "KeyError", "'nobody awaits me'"] in result["seen"]
    assert result["seen"][-1] == ["still running"]
