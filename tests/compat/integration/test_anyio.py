"""anyio (asyncio backend) on each loop: task groups, memory streams, TCP, processes.

``anyio.run(main, backend="asyncio", backend_options={"loop_factory": FACTORY})``
is how an anyio program picks its loop; every test starts with a check that the
running loop is the one asked for.  Covered: task groups (start_soon, start with
a task status, an exception cancelling the siblings, move_on_after/fail_after),
memory object streams (unbuffered and bounded, cloned receivers, end of stream),
TCP (create_tcp_listener + connect_tcp: an uppercasing server, several clients,
a 1 MiB transfer, half-close), worker threads (to_thread.run_sync) and child
processes (run_process and open_process, with stdin/stdout streams and exit
codes).
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import subprocess
from typing import Any, Awaitable, Callable

import pytest

import anyio
from anyio.abc import SocketStream, TaskStatus  # noqa: E402
from anyio.streams.buffered import BufferedByteReceiveStream  # noqa: E402

import phaseloop  # noqa: E402

from integration_support import LOOP_FACTORIES  # noqa: E402

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.parametrize("loop_name", sorted(LOOP_FACTORIES))]

#: Seconds one test's anyio program may take.
DEADLINE = 10.0


def run_anyio(loop_name: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """``anyio.run(main)`` on a fresh loop of ``loop_name``, within DEADLINE seconds."""
    async def checked() -> Any:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, phaseloop.Loop) is (loop_name == "phaseloop"), type(loop)
        with anyio.fail_after(DEADLINE):
            return await main()

    return anyio.run(checked, backend="asyncio",
                     backend_options={"loop_factory": LOOP_FACTORIES[loop_name]})


def test_task_groups(loop_name):
    async def main() -> None:
        results: list[int] = []

        async def worker(n: int) -> None:
            await anyio.sleep(0.001 * (5 - n))
            results.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(worker, n)
        assert sorted(results) == list(range(5))

        async def service(*, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started("ready")
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            assert await tg.start(service) == "ready"
            tg.cancel_scope.cancel()

        cancelled: list[str] = []

        async def sibling() -> None:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append("sibling")
                raise

        async def failing() -> None:
            await anyio.sleep(0.01)
            raise ValueError("boom")

        with pytest.raises(BaseException) as info:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sibling)
                tg.start_soon(failing)
        errors = info.value.exceptions if isinstance(info.value, BaseExceptionGroup) \
            else [info.value]
        assert [type(e) for e in errors] == [ValueError], errors
        assert cancelled == ["sibling"]

        with anyio.move_on_after(0.02) as scope:
            await anyio.sleep(5)
        assert scope.cancelled_caught

        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.02):
                await anyio.sleep(5)

        assert await anyio.to_thread.run_sync(sum, range(1000)) == 499500

    run_anyio(loop_name, main)


def test_memory_object_streams(loop_name):
    async def main() -> None:
        for buffer in (0, 16):
            send, receive = anyio.create_memory_object_stream[int](buffer)
            got: dict[str, list[int]] = {"a": [], "b": []}

            async def consume(name: str, stream: Any) -> None:
                async with stream:
                    async for item in stream:
                        got[name].append(item)
                        await anyio.sleep(0)

            async def produce() -> None:
                async with send:
                    for item in range(500):
                        await send.send(item)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume, "a", receive.clone())
                tg.start_soon(consume, "b", receive)
                tg.start_soon(produce)
            assert sorted(got["a"] + got["b"]) == list(range(500)), buffer
            # each receiver sees its items in the order sent
            assert got["a"] == sorted(got["a"]) and got["b"] == sorted(got["b"])

        send, receive = anyio.create_memory_object_stream[str](1)
        send.send_nowait("x")
        with pytest.raises(anyio.WouldBlock):
            send.send_nowait("y")
        assert receive.receive_nowait() == "x"
        await send.aclose()
        with pytest.raises(anyio.EndOfStream):
            await receive.receive()
        await receive.aclose()

    run_anyio(loop_name, main)


def test_tcp_listener_and_clients(loop_name):
    big = random.Random(3).randbytes(1024 * 1024)

    async def handle(client: SocketStream) -> None:
        """One line in, the line upper-cased out; 'SUM' then a byte stream: its sha256."""
        async with client:
            buffered = BufferedByteReceiveStream(client)
            command = await buffered.receive_until(b"\n", 64)
            if command == b"SUM":
                digest = hashlib.sha256()
                try:
                    while True:
                        digest.update(await buffered.receive())
                except anyio.EndOfStream:
                    pass
                await client.send(digest.hexdigest().encode())
            else:
                await client.send(command.upper() + b"\n")

    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as server_group:
            server_group.start_soon(listener.serve, handle)

            async def ask(word: str) -> bytes:
                async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(word.encode() + b"\n")
                    answer = b""
                    try:
                        while True:
                            answer += await stream.receive()
                    except anyio.EndOfStream:
                        return answer

            answers: dict[str, bytes] = {}

            async def ask_into(word: str) -> None:
                answers[word] = await ask(word)

            async with anyio.create_task_group() as clients:
                for i in range(10):
                    clients.start_soon(ask_into, f"word{i}")
            assert answers == {f"word{i}": f"WORD{i}\n".encode() for i in range(10)}

            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                assert stream.extra(anyio.abc.SocketAttribute.remote_port) == port
                await stream.send(b"SUM\n")
                for offset in range(0, len(big), 65536):
                    await stream.send(big[offset:offset + 65536])
                await stream.send_eof()
                reply = b""
                try:
                    while True:
                        reply += await stream.receive()
                except anyio.EndOfStream:
                    pass
            assert reply.decode() == hashlib.sha256(big).hexdigest()
            server_group.cancel_scope.cancel()

    run_anyio(loop_name, main)


@pytest.mark.skipif(not all(shutil.which(p) for p in ("sh", "cat", "sleep")),
                    reason="needs sh, cat and sleep")
def test_processes(loop_name):
    data = random.Random(5).randbytes(256 * 1024)

    async def main() -> None:
        done = await anyio.run_process(["sh", "-c", "printf out; printf err >&2; exit 0"])
        assert (done.returncode, done.stdout, done.stderr) == (0, b"out", b"err")

        done = await anyio.run_process(["cat"], input=data)
        assert done.stdout == data

        with pytest.raises(subprocess.CalledProcessError) as info:
            await anyio.run_process(["sh", "-c", "exit 7"])
        assert info.value.returncode == 7
        done = await anyio.run_process(["sh", "-c", "exit 7"], check=False)
        assert done.returncode == 7

        async with await anyio.open_process(["cat"]) as process:
            assert process.stdin is not None and process.stdout is not None
            received = bytearray()

            async def feed() -> None:
                for offset in range(0, len(data), 8192):
                    await process.stdin.send(data[offset:offset + 8192])
                await process.stdin.aclose()

            async def collect() -> None:
                async for chunk in process.stdout:
                    received.extend(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(feed)
                tg.start_soon(collect)
            assert await process.wait() == 0
        assert bytes(received) == data

        async with await anyio.open_process(["sleep", "30"]) as process:
            process.terminate()
            assert await process.wait() == -15

    run_anyio(loop_name, main)
