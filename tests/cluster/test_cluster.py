"""phaseloop.cluster, low level: fork, events, messages, kill and disconnect.

Each test forks real worker processes from a coroutine on a phaseloop loop (the
primary's side) and waits for every one of them to be reaped: after a test,
``os.waitpid(pid, WNOHANG)`` must say the pid is no child of ours any more (no zombie).
"""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

import phaseloop
from phaseloop import cluster
from support.cluster import (WAIT, assert_reaped, end_a_sleeping_worker, exit_future,
                             run_primary)

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(20)]

@pytest.fixture(autouse=True)
def clean_cluster():
    """Cluster listeners are process-wide: drop the ones a test added."""
    yield
    cluster.events._events.remove_all_listeners()
    cluster.settings.update(target=None, serialization="json")
    assert not cluster.workers, "a test left workers behind: %r" % cluster.workers


def test_primary_flags():
    assert cluster.is_primary is True
    assert cluster.is_worker is False
    assert cluster.worker is None


def test_fork_online_messages_env_and_exit_code():
    async def child():
        assert cluster.is_worker and not cluster.is_primary
        got = asyncio.get_running_loop().create_future()
        cluster.worker.on("message", lambda m: got.done() or got.set_result(m))
        cluster.worker.send({"pid": os.getpid(), "env": os.environ.get("CLUSTER_T"),
                             "id": cluster.worker.id})
        cluster.worker.send({"echo": await got})
        return 7

    async def primary():
        events = []
        messages = []
        done = asyncio.get_running_loop().create_future()
        cluster.on("fork", lambda w: events.append("fork"))
        cluster.on("online", lambda w: events.append("online"))
        cluster.on("disconnect", lambda w: events.append("disconnect"))

        def on_message(w, msg):
            messages.append(msg)
            if "pid" in msg:
                w.send(["ping", 1])

        cluster.on("message", on_message)
        cluster.on("exit", lambda w, code, sig: (events.append("exit"),
                                                 done.set_result((w, code, sig))))
        w = cluster.fork(env={"CLUSTER_T": "yes"}, target=child)
        assert cluster.workers == {w.id: w}
        w_, code, sig = await done
        return w, w_, code, sig, events, messages

    w, w_, code, sig, events, messages = run_primary(primary)
    assert w_ is w
    assert (code, sig) == (7, None)
    assert w.exit_code == 7 and w.signal_code is None
    assert events == ["fork", "online", "disconnect", "exit"]
    assert messages == [{"pid": w.pid, "env": "yes", "id": w.id}, {"echo": ["ping", 1]}]
    assert w.exited_after_disconnect is False
    assert w.is_dead() and not w.is_connected()
    assert "CLUSTER_T" not in os.environ
    assert_reaped(w.pid)


def test_kill_reports_signal_and_expected_exit():
    w, (code, sig) = end_a_sleeping_worker(lambda w: w.kill())
    assert code is None and sig == signal.SIGTERM
    assert w.exited_after_disconnect is True
    assert_reaped(w.pid)


def test_disconnect_stops_worker_gracefully():
    async def child():
        try:
            await asyncio.sleep(30)
        finally:
            cluster.worker.send("cleaning up")   # cancelled: finally blocks run

    async def primary():
        got = []
        online = asyncio.get_running_loop().create_future()
        cluster.on("online", lambda w: online.done() or online.set_result(w))
        cluster.on("message", lambda w, m: got.append(m))
        w = cluster.fork(target=child)
        ended = exit_future(w)
        await online
        w.disconnect()
        return w, await ended, got

    w, (code, sig), got = run_primary(primary)
    assert (code, sig) == (0, None)
    assert got == ["cleaning up"]
    assert w.exited_after_disconnect is True
    assert_reaped(w.pid)


def test_worker_disconnect_listener_decides():
    async def child():
        stop = asyncio.Event()
        cluster.worker.on("disconnect", lambda: (cluster.worker.send("bye"), stop.set()))
        await stop.wait()
        return 5

    async def primary():
        got = []
        online = asyncio.get_running_loop().create_future()
        cluster.on("online", lambda w: online.done() or online.set_result(w))
        cluster.on("message", lambda w, m: got.append(m))
        w = cluster.fork(target=child)
        ended = exit_future(w)
        await online
        w.disconnect()
        return await ended, got, w.pid

    (code, sig), got, pid = run_primary(primary)
    assert (code, sig, got) == (5, None, ["bye"])
    assert_reaped(pid)


def test_target_that_raises_exits_1_and_several_workers():
    def bad():
        raise ValueError("boom (expected in this test)")

    async def good():
        return 0

    async def primary():
        ws = [cluster.fork(target=bad), cluster.fork(target=good), cluster.fork(target=bad)]
        assert [w.id for w in ws] == sorted({w.id for w in ws})
        assert len(cluster.workers) == 3
        results = await asyncio.gather(*(exit_future(w) for w in ws))
        return ws, results

    ws, results = run_primary(primary)
    assert results == [(1, None), (0, None), (1, None)]
    assert_reaped(*(w.pid for w in ws))


def test_fork_safety_in_worker():
    """In a worker: fork() refuses, the parent's loop refuses to run, a new loop runs."""
    async def primary():
        parent_loop = asyncio.get_running_loop()
        got = parent_loop.create_future()

        async def child():
            report = {"running_is_new": asyncio.get_running_loop() is not parent_loop}
            try:
                cluster.fork(target=lambda: None)
            except cluster.ClusterError:
                report["fork"] = "refused"
            try:
                parent_loop.run_until_complete(asyncio.sleep(0))
            except RuntimeError as exc:
                report["parent_loop"] = "refused: fork" if "fork" in str(exc) else str(exc)
            cluster.worker.send(report)

        cluster.on("message", lambda w, m: got.set_result(m))
        w = cluster.fork(target=child)
        ended = exit_future(w)
        report = await got
        return report, await ended, w.pid

    report, (code, _), pid = run_primary(primary)
    assert report == {"running_is_new": True, "fork": "refused",
                      "parent_loop": "refused: fork"}
    assert code == 0
    assert_reaped(pid)


def test_fork_needs_a_running_loop_and_a_target():
    with pytest.raises(RuntimeError):
        cluster.fork(target=lambda: None)

    async def no_target():
        with pytest.raises(cluster.ClusterError):
            cluster.fork()
    phaseloop.run(no_target())


def test_pickle_serialization_and_setup_primary():
    async def child():
        cluster.worker.send({1, 2, 3})
        cluster.worker.send(b"\x00bytes")

    async def primary():
        got = []
        cluster.setup_primary(target=child, serialization="pickle")
        cluster.on("message", lambda w, m: got.append(m))
        w = cluster.fork()
        await exit_future(w)
        return got, w.pid

    got, pid = run_primary(primary)
    assert got == [{1, 2, 3}, b"\x00bytes"]
    assert_reaped(pid)
    with pytest.raises(ValueError):
        cluster.setup_primary(serialization="xml")


def test_worker_exits_when_primary_channel_closes():
    """A worker does not outlive its channel to the primary (no orphans)."""
    async def child():
        await asyncio.sleep(30)

    async def primary():
        online = asyncio.get_running_loop().create_future()
        cluster.on("online", lambda w: online.done() or online.set_result(w))
        w = cluster.fork(target=child)
        ended = exit_future(w)
        await online
        w._channel.close()           # as if the primary had died
        return w, await ended

    w, (code, sig) = run_primary(primary)
    assert (code, sig) == (0, None)
    assert_reaped(w.pid)


def test_primary_on_asyncio_default_loop():
    """The primary's side only needs asyncio's loop API: the stdlib loop works too."""
    async def child():
        cluster.worker.send(type(asyncio.get_running_loop()).__module__)

    async def primary():
        got = []
        cluster.on("message", lambda w, m: got.append(m))
        w = cluster.fork(target=child)
        code, _ = await asyncio.wait_for(exit_future(w), WAIT)
        return got, code, w.pid

    got, code, pid = asyncio.run(primary())
    assert (got, code) == (["phaseloop"], 0)
    assert_reaped(pid)


def test_ctrl_c_ends_a_worker_by_the_signal_without_a_traceback(capfd):
    # SIGINT: what Ctrl-C sends every process of the group.
    w, (code, sig) = end_a_sleeping_worker(lambda w: os.kill(w.pid, signal.SIGINT))
    assert (code, sig) == (None, signal.SIGINT) and str(sig) == "SIGINT"
    assert "Traceback" not in capfd.readouterr().err
    assert_reaped(w.pid)
