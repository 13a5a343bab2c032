"""Workers that listen on one port through the primary, as in Node's cluster:
cluster.server_socket, App.listen in a worker and share_servers() with
loop.create_server, in each scheduling mode; and the cluster's listener
convention, signal names and the lines a primary prints by itself.

The primary's side runs in this process on a phaseloop loop; workers are real
forked processes, all reaped by the end of each test.
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket

import pytest

from support.loops import open_fd_count
from phaseloop import cluster
from phaseloop.emitter import EventEmitter
from support.cluster import (Primary, assert_reaped, end_a_sleeping_worker, exit_future,
                             run_primary)

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def clean_cluster():
    """Cluster listeners and settings are process-wide: put them back."""
    yield
    cluster.events._events.remove_all_listeners()
    cluster.settings.update(target=None, serialization="json", scheduling="round_robin")
    assert not cluster.workers, "a test left workers behind: %r" % cluster.workers
    assert not cluster.shared_servers._shared_servers.by_id, "a shared server was left open"


async def get_worker_pid(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return json.loads(data.partition(b"\r\n\r\n")[2])["worker"]


def port_is_free(port: int) -> bool:
    """Nothing listens there (SO_REUSEADDR: the closed connections' TIME_WAIT does
    not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def serve_app_in_worker() -> None:
    """A worker: the guide's App on port 0 (every worker's first listen(0) shares
    one port, as in Node), the port reported to the primary."""
    from phaseloop.http import App
    app = App()

    @app.get("/")
    def root(req, res):
        res.json({"worker": os.getpid()})

    server = await app.listen(0)
    cluster.worker.send({"port": server.sockets[0].getsockname()[1]})
    await server.serve_forever()


async def fork_listening(n: int, target) -> tuple[list[cluster.Worker], int]:
    """Fork n workers running target; the one port they all report."""
    loop = asyncio.get_running_loop()
    ports: list[int] = []
    reported = loop.create_future()

    def on_message(w, msg):
        ports.append(msg["port"])
        if len(ports) == n and not reported.done():
            reported.set_result(None)

    cluster.on("message", on_message)
    workers = [cluster.fork(target=target) for _ in range(n)]
    await reported
    assert len(set(ports)) == 1, ports
    return workers, ports[0]


async def stop_all(workers: list[cluster.Worker]) -> None:
    exits = [exit_future(w) for w in workers]
    for w in workers:
        w.disconnect()
    await asyncio.gather(*exits)


@pytest.mark.parametrize("scheduling", ["shared", "reuse_port", "round_robin"])
def test_every_worker_listens_on_one_port_with_app_listen(scheduling):
    fds_before = open_fd_count()

    async def primary():
        cluster.setup_primary(scheduling=scheduling)
        workers, port = await fork_listening(2, serve_app_in_worker)
        seen: set[int] = set()
        for _ in range(100):
            seen.add(await get_worker_pid(port))
            if len(seen) == 2:
                break
        await stop_all(workers)
        return workers, port, seen

    workers, port, seen = run_primary(primary)
    assert seen == {w.pid for w in workers}
    # The last worker gone, the primary closed the port.
    assert port_is_free(port)
    assert_reaped(*(w.pid for w in workers))
    assert open_fd_count() <= fds_before


def test_share_servers_makes_loop_create_server_ask_the_primary():
    class Hello(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            body = json.dumps({"worker": os.getpid()}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
            self.transport.close()

    async def child():
        cluster.share_servers()           # opt in: create_server(host, port) asks the primary
        server = await asyncio.get_running_loop().create_server(Hello, "127.0.0.1", 0)
        cluster.worker.send({"port": server.sockets[0].getsockname()[1]})
        await server.serve_forever()

    async def primary():
        cluster.setup_primary(scheduling="round_robin")
        workers, port = await fork_listening(2, child)
        seen = {await get_worker_pid(port) for _ in range(4)}    # strict rotation
        await stop_all(workers)
        return workers, seen

    workers, seen = run_primary(primary)
    assert seen == {w.pid for w in workers}
    with pytest.raises(cluster.ClusterError):
        cluster.share_servers()           # the primary is no worker


def test_a_port_taken_elsewhere_is_an_oserror_in_the_worker():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def child():
        try:
            await cluster.server_socket("127.0.0.1", port)
        except OSError as exc:
            cluster.worker.send({"errno": exc.errno})

    async def primary():
        got = asyncio.get_running_loop().create_future()
        cluster.on("message", lambda w, msg: got.done() or got.set_result(msg))
        w = cluster.fork(target=child)
        ended = exit_future(w)
        msg = await got
        await ended
        return w, msg

    try:
        w, msg = run_primary(primary)
    finally:
        taken.close()
    assert msg == {"errno": errno.EADDRINUSE}
    assert_reaped(w.pid)


def test_server_socket_outside_a_cluster_is_a_listening_socket():
    async def main():
        return await cluster.server_socket("127.0.0.1", 0)

    sock = run_primary(main)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        sock.close()


def test_exit_signal_prints_its_name():
    printed = []

    @cluster.on("exit")
    def on_exit(worker, code, sig):
        printed.append(f"worker {worker.id} died ({sig})")

    assert on_exit.__name__ == "on_exit"          # the decorator returned the function
    w, (code, sig) = end_a_sleeping_worker(lambda w: os.kill(w.pid, signal.SIGKILL))
    assert printed == [f"worker {w.id} died (SIGKILL)"]
    assert w.signal_code == signal.SIGKILL and str(w.signal_code) == "SIGKILL"
    assert isinstance(w.signal_code, cluster.ExitSignal)
    assert_reaped(w.pid)


def test_one_listener_convention():
    calls = []

    def fn(*args):
        calls.append(args)

    assert cluster.on("fork", fn) is fn
    assert cluster.once("exit")(fn) is fn
    assert cluster.off(fn) is True               # from every event, once-listeners too
    assert cluster.off(fn) is False
    assert cluster.events._events.listener_count("fork") == cluster.events._events.listener_count("exit") == 0
    cluster.on("fork", fn)
    assert cluster.off("fork", fn) is True       # Node's off(event, fn)
    emitter = EventEmitter()                     # a Worker's, a port's: the same convention
    assert emitter.once("message")(fn) is fn
    assert emitter.off("message", fn) is True
    assert not emitter.emit("message", 1) and calls == []
    with pytest.raises(TypeError):
        cluster.on("exit", 42)


def test_run_prints_its_lifecycle_lines_without_logging_configured(tmp_path, primaries):
    script = tmp_path / "primary.py"
    script.write_text(
        "import asyncio\n"
        "from phaseloop import cluster\n"
        "async def worker_main(sockets):\n"
        "    await asyncio.Future()\n"
        "raise SystemExit(cluster.run(worker_main, workers=1, listen=[('127.0.0.1', 0)]))\n")
    p = Primary([str(script)], tmp_path)        # waits for the 'listening on' line
    primaries.append(p)
    pid = int(p.wait_for(r"worker 1 started \(pid (\d+)\)").group(1))
    os.kill(pid, signal.SIGKILL)
    p.wait_for(r"worker 1 \(pid %d\) died unexpectedly \(signal SIGKILL\)" % pid)
    p.wait_for(r"worker 2 started")
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert "phaseloop.cluster" in p.log and "INFO" in p.log
