"""Workers inside a phaseloop.cluster worker: a cluster worker (a forked process
running its own loop) starts a thread and a process worker, talks to them, stops
them, and reports to the primary; everything is reaped."""
from __future__ import annotations

import asyncio
import os

import pytest

from phaseloop import cluster, workers
from workers_support import child_pids, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


async def cluster_worker_main():
    report = {}
    for kind in ("thread", "process"):
        w = workers.Worker("workers_support:echo", kind=kind)
        w.post_message(f"via {kind}")
        report[kind] = {"echo": await w.receive(), "start_method": w.start_method,
                        "pid": w.pid, "code": await w.terminate()}
    pool = workers.Pool(2, "workers_support:square", kind="process")
    report["pool"] = await asyncio.gather(*(pool.run(i) for i in range(4)))
    await pool.close()
    report["children_left"] = len(child_pids())
    cluster.worker.send(report)
    await asyncio.sleep(0.05)                  # the primary reads it before we exit


def test_workers_inside_a_cluster_worker(no_leaks):
    async def primary():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        exited = loop.create_future()
        w = cluster.fork(target=cluster_worker_main)
        w.on("message", lambda msg: got.done() or got.set_result(msg))
        w.on("exit", lambda code, sig: exited.set_result((code, sig)))
        return await got, await exited, w.pid

    try:
        report, (code, sig), pid = run(primary, timeout=30)
    finally:
        cluster.events._events.remove_all_listeners()
    assert (code, sig) == (0, None)
    assert report["thread"] == {"echo": "via thread", "start_method": None, "pid": None,
                                "code": 1}
    process = report["process"]
    assert process["echo"] == "via process" and process["code"] == 1
    assert process["start_method"] == "fork" and process["pid"] not in (pid, os.getpid())
    assert report["pool"] == [0, 1, 4, 9]
    assert report["children_left"] == 0
