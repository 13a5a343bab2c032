"""What the tests of phaseloop.workers share: the workers' entry points, the leak check
and a runner for the parent's side.

The entry points are ``"workers_support:NAME"``: a forked worker has this module
already, a spawned one imports it (the parent's sys.path goes with the worker).
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from support.loops import open_fd_count

import phaseloop
from phaseloop import workers

WAIT = 10.0
KINDS = ("thread", "process")
MiB = 1024 * 1024


def run(coro_fn, *args: Any, loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = WAIT) -> Any:
    """Run ``coro_fn(*args)`` as the parent's side, bounded by ``timeout`` seconds: on
    a new phaseloop loop, or on ``loop`` (the conftest ``loop`` fixture's)."""
    async def bounded():
        return await asyncio.wait_for(coro_fn(*args), timeout)
    if loop is None:
        return phaseloop.run(bounded())
    return loop.run_until_complete(bounded())


def loop_errors() -> list[dict]:
    """The running loop's exception handler contexts, from now on."""
    reported: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))
    return reported


async def next_event(emitter: Any, event: str) -> tuple:
    """The arguments of ``emitter``'s next ``event``."""
    fut = asyncio.get_running_loop().create_future()
    emitter.once(event, lambda *args: fut.done() or fut.set_result(args))
    return await fut


# ---- leaks --------------------------------------------------------------------------------


def child_pids() -> set[int]:
    """This process's children (zombies included), from /proc."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry))
    return found


def shared_mappings(pid: int | str = "self") -> int:
    """How many of a process's mappings and descriptors are SharedBuffer memory."""
    count = 0
    try:
        with open(f"/proc/{pid}/maps") as f:
            count += sum("phaseloop-shared" in line for line in f)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += "phaseloop-shared" in os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
    except OSError:
        pass
    return count


def resources() -> dict[str, Any]:
    gc.collect()
    return {"threads": sorted(t.name for t in threading.enumerate()),
            "fds": open_fd_count(),
            "children": child_pids(),
            "dev_shm": sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else [],
            "shared_mappings": shared_mappings()}


@pytest.fixture
def no_leaks(request):
    """Threads, child processes, fds, /dev/shm entries and SharedBuffer mappings are
    what they were before the test (after a bounded wait for the last ones to go)."""
    for name in ("loop", "phase_loop"):
        if name in request.fixturenames:
            # A loop opens some descriptors on its first run (phaseloop: the signal
            # wakeup socketpair); they are the loop's, closed with it, not the test's.
            request.getfixturevalue(name).run_until_complete(asyncio.sleep(0))
    before = resources()
    yield
    deadline = time.monotonic() + 5.0
    after = resources()
    while after != before and time.monotonic() < deadline:
        time.sleep(0.02)
        after = resources()
    assert after == before, f"leaked: before {before}, after {after}"


def vm_kib(field: str, pid: int | str = "self") -> int:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM...) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def run_script(body: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh interpreter that can import this module (for what is
    process-wide: errors hooks)."""
    code = "import sys\nsys.path.insert(0, %r)\n" % os.path.dirname(__file__) + \
        textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)


# ---- entry points -----------------------------------------------------------------------


async def echo():
    """Post every message back."""
    port = workers.parent_port
    async for msg in port:
        port.post_message(msg)


async def identity():
    """Say who the worker is."""
    workers.parent_port.post_message({
        "thread_id": workers.thread_id, "is_main_thread": workers.is_main_thread,
        "data": workers.worker_data, "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "loop": type(asyncio.get_running_loop()).__module__})


def returns_data():
    """Exit with the code given as data (an int), or return it (anything else)."""
    return workers.worker_data


def exits_with_data():
    raise SystemExit(workers.worker_data)


async def mutate_data():
    """Change the data it got, report it, then report the next message."""
    data = workers.worker_data
    data["seen"] = True
    workers.parent_port.post_message(data)
    workers.parent_port.post_message(await workers.parent_port.receive())


def serve_with_listener():
    """Returns at once; the "message" listener keeps the worker alive until "stop"."""
    port = workers.parent_port

    def on_message(msg):
        if msg == "stop":
            port.off("message", on_message)
        else:
            port.post_message(("got", msg))
    assert port.on("message", on_message) is on_message


def raises_value_error():
    raise ValueError("boom in the worker")


class Unpicklable(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raises_unpicklable():
    raise Unpicklable("cannot cross")


class BreaksOnArrival:
    """Pickles fine, fails to unpickle: a "messageerror" on the other side."""

    def __reduce__(self):
        return (_refuse, ("no",))


def _refuse(text):
    raise RuntimeError(f"refused to unpickle: {text}")


async def post_breaking_then_echo():
    """Post a message that cannot be unpickled, then keep echoing."""
    port = workers.parent_port
    port.post_message(BreaksOnArrival())
    errors = []
    port.on("messageerror", errors.append)
    async for msg in port:
        port.post_message((msg, [type(e).__name__ for e in errors]))


async def sleeps_with_cleanup():
    """Says "started", sleeps; its finally block writes the data's path."""
    try:
        workers.parent_port.post_message("started")
        await asyncio.sleep(100)
    finally:
        with open(workers.worker_data, "w") as f:
            f.write("cleaned up")


async def swallows_cancellation():
    """Ignores cancellation: only the grace-period step stops it."""
    workers.parent_port.post_message("started")
    while True:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            continue


async def busy_python():
    """A pure-Python CPU loop that never returns to its loop."""
    workers.parent_port.post_message("started")
    while True:
        pass


async def ignores_sigterm():
    """A process worker whose SIGTERM does nothing: only SIGKILL stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    workers.parent_port.post_message("started")
    await asyncio.sleep(100)


def dies_by_signal():
    os.kill(os.getpid(), signal.SIGKILL)


def exits_hard():
    workers.parent_port.post_message("about to exit")
    os._exit(3)


async def starts_nested():
    """Start a worker of the kind in the data, report it, then wait to be stopped."""
    kind = workers.worker_data
    child = workers.Worker("workers_support:echo", kind=kind)
    child.post_message("ping")
    reply = await child.receive()
    workers.parent_port.post_message({"reply": reply, "pid": child.pid,
                                      "start_method": child.start_method})
    await asyncio.sleep(100)


async def talk_over_port():
    """Send a greeting over the port in the data (or in the first message), report
    what comes back."""
    data = workers.worker_data or await workers.parent_port.receive()
    port = data["port"]
    port.post_message(("hello from", workers.thread_id))
    reply = await port.receive()
    workers.parent_port.post_message(("heard", reply))


async def write_shared():
    """Write the data's index into the shared buffer it got, then say so."""
    buf, index = workers.worker_data
    buf[index] = index + 1
    workers.parent_port.post_message("written")
    msg = await workers.parent_port.receive()       # a buffer sent in a message
    msg[0][0:3] = b"abc"
    workers.parent_port.post_message("written again")


async def hold_shared_until_told():
    """Take a shared buffer from a message, keep it (reading it back) until told to
    drop it, then say how many shared mappings this process has left."""
    port = workers.parent_port
    buf = await port.receive()
    port.post_message(("holding", buf[0], shared_mappings()))
    await port.receive()                            # the parent dropped its own
    port.post_message(("still there", buf[0]))
    await port.receive()
    del buf
    gc.collect()
    port.post_message(("dropped", shared_mappings()))
    await port.receive()


async def receive_transferred():
    """Report the type and size of each buffer it gets, until None."""
    async for msg in workers.parent_port:
        if msg is None:
            return
        workers.parent_port.post_message((type(msg).__name__, len(msg), bytes(msg[:4])))


async def mark_transferred():
    """Change the buffer it receives, then say so."""
    buf = await workers.parent_port.receive()
    buf[0:1] = b"X"
    workers.parent_port.post_message("marked")


async def post_gigabyte():
    """Post 1 GiB in 1 MiB messages, waiting on drain(); report memory at the end."""
    port = workers.parent_port
    chunk = b"x" * MiB
    start = vm_kib("VmRSS")
    for _ in range(1024):
        port.post_message(chunk)
        await port.drain()
    port.post_message({"rss_start": start, "hwm": vm_kib("VmHWM")})


async def flood_without_reader():
    """Post 64 MiB while the parent reads nothing; report how far drain() let it go."""
    port = workers.parent_port
    port.set_buffer_limits(high=MiB)
    chunk = b"y" * (64 * 1024)
    posted = 0
    for _ in range(1024):
        port.post_message(chunk)
        posted += 1
        try:
            await asyncio.wait_for(port.drain(), 0.5)
        except asyncio.TimeoutError:
            break
    port.post_message(("blocked after", posted))


def square(x):
    return x * x


async def slow_square(x):
    await asyncio.sleep(0.01)
    return x * x


def fails_on_three(x):
    if x == 3:
        raise KeyError(x)
    return x


def dies_on_three(x):
    if x == 3:
        os._exit(9)
    return x


def returns_unpicklable(x):
    return threading.Lock()
