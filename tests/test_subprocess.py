"""Child processes: asyncio.create_subprocess_* and loop.subprocess_* on both loops.

The children are small system programs (cat, sh, sleep) so that a test does
not pay a Python start-up per child.  Covered: 10 MiB through cat, exit
codes, signals, children that never read or that block on I/O, 100 short
children at once, the SubprocessTransport API with a protocol, and
asyncio's errors for bad arguments (with no fd left behind).
"""
import asyncio
import os
import shutil
import signal

import pytest

from test_tcp import MiB, assert_fds_steady, digest, payload, run

PIPE = asyncio.subprocess.PIPE
SLEEP = shutil.which("sleep") or "/bin/sleep"
pytestmark = pytest.mark.skipif(not all(shutil.which(p) for p in ("cat", "sh", "sleep")),
                                reason="needs cat, sh and sleep")


def test_cat_round_trips_10_mib(loop):
    data = payload(10 * MiB, seed=10)

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, err = await proc.communicate(data)
        return out, err, proc.returncode

    out, err, code = run(loop, main(), timeout=30)
    assert digest(out) == digest(data)
    assert (err, code) == (None, 0)


def test_streaming_through_cat_with_drain(loop):
    data = payload(4 * MiB, seed=4)

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)

        async def feed():
            for offset in range(0, len(data), 64 * 1024):
                proc.stdin.write(data[offset:offset + 64 * 1024])
                await proc.stdin.drain()
            proc.stdin.close()
            await proc.stdin.wait_closed()

        async def collect():
            chunks = []
            while chunk := await proc.stdout.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

        _, out = await asyncio.gather(feed(), collect())
        return out, await proc.wait()

    out, code = run(loop, main(), timeout=20)
    assert digest(out) == digest(data)
    assert code == 0


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_codes(loop, code):

    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", f"exit {code}")
        return await proc.wait(), proc.returncode

    assert run(loop, main()) == (code, code)


def test_shell_output_and_exit_code(loop):

    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2; exit 3", stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\n", b"err\n", 3)


@pytest.mark.parametrize("method, signum", [
    ("send_signal", signal.SIGUSR1),
    ("terminate", signal.SIGTERM),
    ("kill", signal.SIGKILL),
], ids=["send_signal", "terminate", "kill"])
def test_signals(loop, method, signum):

    async def main():
        proc = await asyncio.create_subprocess_exec(SLEEP, "30")
        if method == "send_signal":
            proc.send_signal(signum)
        else:
            getattr(proc, method)()
        return await proc.wait()

    assert run(loop, main()) == -signum


def test_child_that_never_reads_is_killed_without_hanging(loop):

    async def main():
        proc = await asyncio.create_subprocess_exec(SLEEP, "30", stdin=PIPE)
        proc.stdin.write(b"x" * (4 * MiB))  # far more than a pipe holds
        drain = loop.create_task(proc.stdin.drain())
        await asyncio.sleep(0.01)
        assert not drain.done()  # the child reads nothing
        proc.kill()
        code = await proc.wait()
        outcome = await asyncio.gather(drain, return_exceptions=True)
        return code, outcome[0]

    code, drained = run(loop, main())
    assert code == -signal.SIGKILL
    assert drained is None or isinstance(drained, ConnectionError)


def test_communicate_with_a_child_that_exits_without_reading(loop):

    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 5", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(b"y" * (4 * MiB))
        return out, proc.returncode

    assert run(loop, main()) == (b"", 5)


def test_kill_child_blocked_on_io(loop):

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        reading = loop.create_task(proc.stdout.read())
        await asyncio.sleep(0.01)
        assert not reading.done()  # cat waits on its stdin, we on its stdout
        proc.kill()
        code = await proc.wait()
        out = await reading
        proc.stdin.close()
        return code, out

    assert run(loop, main()) == (-signal.SIGKILL, b"")


def test_hundred_short_children_in_parallel(loop):

    async def child(i):
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'echo $$; exit "$1"', "sh", str(i % 7), stdout=PIPE)
        out, _ = await proc.communicate()
        return proc.pid, int(out), proc.returncode, i % 7

    async def main():
        return await asyncio.gather(*(child(i) for i in range(100)))

    results = run(loop, main(), timeout=30)
    assert len({pid for pid, _, _, _ in results}) == 100
    for pid, echoed_pid, code, expected in results:
        assert (echoed_pid, code) == (pid, expected)


def test_cwd_env_and_redirections(loop, tmp_path):

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'pwd; echo "$GREETING"; echo to-stderr >&2; cat',
            cwd=tmp_path, env={"GREETING": "hello", "PATH": os.environ.get("PATH", "")},
            stdin=asyncio.subprocess.DEVNULL, stdout=PIPE, stderr=asyncio.subprocess.STDOUT)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    out, err, code = run(loop, main())
    assert out.decode().splitlines() == [str(tmp_path.resolve()), "hello", "to-stderr"]
    assert (err, code) == (None, 0)


# ---- loop.subprocess_exec / subprocess_shell with a protocol ------------------------------


class ChildRecorder(asyncio.SubprocessProtocol):
    """Records every callback a SubprocessTransport makes, in order."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.events = []
        self.output = {1: bytearray(), 2: bytearray()}
        self.transport = None
        self.exited = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        self.output[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe lost", fd, exc))

    def process_exited(self):
        self.events.append("exited")
        self.exited.set_result(self.transport.get_returncode())

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


def test_subprocess_exec_with_a_protocol(loop):
    data = payload(MiB, seed=6)

    async def main():
        transport, proto = await loop.subprocess_exec(
            ChildRecorder, "cat", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        pid = transport.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert transport.get_extra_info("subprocess").pid == pid
        assert transport.get_returncode() is None
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        assert transport.get_pipe_transport(3) is None
        stdin.write(data)
        stdin.close()
        code = await proto.exited
        await proto.lost
        assert transport.get_returncode() == 0
        transport.close()
        return code, proto

    code, proto = run(loop, main())
    assert code == 0
    assert digest(bytes(proto.output[1])) == digest(data)
    assert proto.output[2] == b""
    assert proto.events[0] == "made"
    assert proto.events[-1] == ("lost", None)
    assert "exited" in proto.events
    lost_pipes = sorted(e[1] for e in proto.events if e[0] == "pipe lost")
    assert lost_pipes == [0, 1, 2]


def test_subprocess_shell_with_a_protocol(loop):

    async def main():
        transport, proto = await loop.subprocess_shell(
            ChildRecorder, "echo out; echo err >&2; exit 4", stdin=None, stdout=PIPE, stderr=PIPE)
        assert transport.get_pipe_transport(0) is None
        code = await proto.exited
        await proto.lost
        transport.close()
        return code, proto

    code, proto = run(loop, main())
    assert code == 4
    assert (bytes(proto.output[1]), bytes(proto.output[2])) == (b"out\n", b"err\n")


def test_transport_signals_and_close(loop):

    async def main():
        transport, proto = await loop.subprocess_exec(
            ChildRecorder, SLEEP, "30", stdin=None, stdout=None, stderr=None)
        transport.send_signal(signal.SIGTERM)
        code = await proto.exited
        await proto.lost
        transport.close()
        return code

    assert run(loop, main()) == -signal.SIGTERM


def test_closing_the_transport_kills_a_running_child(loop):

    async def main():
        transport, proto = await loop.subprocess_exec(
            ChildRecorder, SLEEP, "30", stdin=None, stdout=PIPE, stderr=None)
        pid = transport.get_pid()
        transport.close()
        assert transport.is_closing()
        code = await proto.exited
        return pid, code

    pid, code = run(loop, main())
    assert code == -signal.SIGKILL
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped by the loop


def test_missing_program_raises_file_not_found(loop):

    def missing():
        with pytest.raises(FileNotFoundError):
            run(loop, asyncio.create_subprocess_exec(
                "/nonexistent/program", stdin=PIPE, stdout=PIPE, stderr=PIPE))

    assert_fds_steady(loop, missing)


def test_bad_arguments_raise_like_asyncio(loop):
    cases = [
        lambda: loop.subprocess_exec(ChildRecorder, "true", universal_newlines=True),
        lambda: loop.subprocess_exec(ChildRecorder, "true", shell=True),
        lambda: loop.subprocess_exec(ChildRecorder, "true", bufsize=1),
        lambda: loop.subprocess_exec(ChildRecorder, "true", text=True),
        lambda: loop.subprocess_exec(ChildRecorder, "true", encoding="utf-8"),
        lambda: loop.subprocess_shell(ChildRecorder, ["true"]),
        lambda: loop.subprocess_shell(ChildRecorder, "true", shell=False),
        lambda: loop.subprocess_shell(ChildRecorder, "true", universal_newlines=True),
    ]

    def each_raises():
        for make in cases:
            with pytest.raises(ValueError):
                run(loop, make())

    assert_fds_steady(loop, each_raises)


def test_fds_steady_after_children_exit(loop):

    async def some_children():
        for _ in range(5):
            proc = await asyncio.create_subprocess_exec(
                "cat", stdin=PIPE, stdout=PIPE, stderr=PIPE)
            out, _ = await proc.communicate(b"ping")
            assert out == b"ping"

    assert_fds_steady(loop, lambda: run(loop, some_children()))

