"""Nothing the loop touched outlives its use: objects, fds and memory.

Objects are followed with weakrefs (then gc.collect()); descriptors with
/proc/self/fd; memory with tracemalloc.  Each test runs on both loops.
"""
import asyncio
import gc
import signal
import socket
import sys
import threading
import tracemalloc
import weakref

import pytest

from phaseloop import errors

from support.loops import LOOP_FACTORIES, open_fd_count

WAIT = 5.0


class Payload:
    """A weakref-able object to pass as a callback argument."""


class Callback:
    """A weakref-able callable, to see when the loop drops a callback."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1


def collected(ref):
    for _ in range(3):
        if ref() is None:
            return True
        gc.collect()
    return ref() is None


def allocated_blocks():
    """Small-object blocks alive in this interpreter (cheap, unlike tracemalloc)."""
    gc.collect()
    return sys.getallocatedblocks()


def make_loop(loop_name):
    return LOOP_FACTORIES[loop_name]()


# ---- loops ------------------------------------------------------------------------


def test_closed_loop_is_freed(loop_name):
    lp = make_loop(loop_name)

    async def work():
        await asyncio.sleep(0.001)
        return await lp.run_in_executor(None, int, "5")

    assert lp.run_until_complete(work()) == 5
    lp.run_until_complete(lp.shutdown_default_executor())
    lp.close()
    ref = weakref.ref(lp)
    del lp
    assert collected(ref)


def test_loop_with_readers_timers_and_tasks_is_freed_after_close(loop_name):
    lp = make_loop(loop_name)
    a, b = socket.socketpair()
    try:
        lp.add_reader(a.fileno(), Callback())
        lp.add_writer(b.fileno(), Callback())
        lp.call_later(100, Callback())

        async def forever():
            await asyncio.sleep(100)

        task = lp.create_task(forever())
        lp.run_until_complete(asyncio.sleep(0.01))
        task.cancel()
        lp.run_until_complete(asyncio.sleep(0))
        lp.close()
        ref = weakref.ref(lp)
        del lp, task
        assert collected(ref)
    finally:
        a.close()
        b.close()


def test_loop_is_freed_and_no_longer_running(loop_name):
    lp = make_loop(loop_name)
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    ref = weakref.ref(lp)
    del lp
    assert collected(ref)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# ---- handles, timers, tasks, futures --------------------------------------------------


def test_handle_and_its_arguments_are_freed_after_running(loop):
    payload, callback = Payload(), Callback()
    handle = loop.call_soon(callback, payload)
    refs = [weakref.ref(handle), weakref.ref(payload), weakref.ref(callback)]
    del handle, payload, callback
    loop.run_until_complete(asyncio.sleep(0))
    assert all(collected(r) for r in refs)


def test_cancelled_handle_releases_its_arguments(loop):
    payload, callback = Payload(), Callback()
    handle = loop.call_soon(callback, payload)
    refs = [weakref.ref(payload), weakref.ref(callback)]
    handle.cancel()
    del payload, callback
    loop.run_until_complete(asyncio.sleep(0))
    assert all(collected(r) for r in refs)
    handle_ref = weakref.ref(handle)
    del handle
    assert collected(handle_ref)


def test_timer_handle_is_freed_after_firing(loop):
    payload, callback = Payload(), Callback()
    timer = loop.call_later(0.001, callback, payload)
    refs = [weakref.ref(timer), weakref.ref(payload), weakref.ref(callback)]
    del timer, payload, callback
    loop.run_until_complete(asyncio.sleep(0.02))
    assert all(collected(r) for r in refs)


def test_cancelled_timer_releases_its_arguments(loop):
    payload, callback = Payload(), Callback()
    timer = loop.call_later(100, callback, payload)
    refs = [weakref.ref(payload), weakref.ref(callback)]
    timer.cancel()
    del timer, payload, callback
    loop.run_until_complete(asyncio.sleep(0))
    assert all(collected(r) for r in refs)


def test_call_at_and_zero_delay_timers_are_freed(loop):
    refs = []
    for make in (lambda cb, p: loop.call_at(loop.time(), cb, p),
                 lambda cb, p: loop.call_later(0, cb, p),
                 lambda cb, p: loop.call_later(-1, cb, p)):
        payload, callback = Payload(), Callback()
        timer = make(callback, payload)
        refs += [weakref.ref(timer), weakref.ref(payload), weakref.ref(callback)]
        del timer, payload, callback
    loop.run_until_complete(asyncio.sleep(0.01))
    assert all(collected(r) for r in refs)


def test_threadsafe_handle_is_freed(loop):
    payload, callback = Payload(), Callback()
    refs = [weakref.ref(payload), weakref.ref(callback)]
    thread = threading.Thread(target=loop.call_soon_threadsafe, args=(callback, payload))
    thread.start()
    thread.join(WAIT)
    del payload, callback
    loop.run_until_complete(asyncio.sleep(0.01))
    assert all(collected(r) for r in refs)


def test_finished_task_and_coroutine_are_freed(loop):
    payload = Payload()

    async def work(p):
        await asyncio.sleep(0)
        return 1

    task = loop.create_task(work(payload))
    refs = [weakref.ref(task), weakref.ref(payload)]
    assert loop.run_until_complete(task) == 1
    del task, payload
    assert all(collected(r) for r in refs)


def test_cancelled_task_is_freed(loop):
    async def sleeper():
        await asyncio.sleep(100)

    task = loop.create_task(sleeper())
    loop.run_until_complete(asyncio.sleep(0))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    ref = weakref.ref(task)
    del task
    assert collected(ref)


def run_failing_task(loop):
    """A weakref to a task that failed with LookupError, once nothing here holds it."""
    async def fails():
        raise LookupError

    task = loop.create_task(fails())
    with pytest.raises(LookupError):
        loop.run_until_complete(task)
    return weakref.ref(task)


def test_failed_task_is_freed(loop):
    loop.set_exception_handler(lambda lp, ctx: None)
    assert collected(run_failing_task(loop))


def test_failed_task_is_freed_with_error_hooks(loop, uncaught_reports):
    """phaseloop.errors notes a failed task for the end of the iteration;
    a loop that stops first must not keep the task alive in that note."""
    errors.attach(loop)
    assert collected(run_failing_task(loop))


def test_future_and_done_callbacks_are_freed(loop):
    fut = loop.create_future()
    callback = Callback()
    fut.add_done_callback(callback)
    loop.call_soon(fut.set_result, Payload())
    refs = [weakref.ref(fut), weakref.ref(callback)]
    loop.run_until_complete(fut)
    assert callback.calls == 1
    del fut, callback
    assert all(collected(r) for r in refs)


def test_reader_callback_is_freed_after_remove(loop):
    a, b = socket.socketpair()
    try:
        payload, callback = Payload(), Callback()
        loop.add_reader(a.fileno(), callback, payload)
        refs = [weakref.ref(payload), weakref.ref(callback)]
        del payload, callback
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.remove_reader(a.fileno()) is True
        assert all(collected(r) for r in refs)
    finally:
        a.close()
        b.close()


def test_signal_handler_callback_is_freed_after_remove(loop):
    payload, callback = Payload(), Callback()
    loop.add_signal_handler(signal.SIGUSR1, callback, payload)
    refs = [weakref.ref(payload), weakref.ref(callback)]
    del payload, callback
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert all(collected(r) for r in refs)


def test_closing_loop_frees_pending_handles(loop):
    """Work still queued when the loop closes is dropped, not leaked."""
    a, b = socket.socketpair()
    try:
        refs = []

        def track(*objs):
            refs.extend(weakref.ref(o) for o in objs)

        payload, callback = Payload(), Callback()
        loop.call_soon(callback, payload)
        track(payload, callback)
        payload, callback = Payload(), Callback()
        loop.call_later(100, callback, payload)
        track(payload, callback)
        payload, callback = Payload(), Callback()
        loop.call_at(loop.time() + 1000, callback, payload)
        track(payload, callback)
        payload, callback = Payload(), Callback()
        thread = threading.Thread(target=loop.call_soon_threadsafe,
                                  args=(callback, payload))
        thread.start()
        thread.join(WAIT)
        track(payload, callback)
        payload, callback = Payload(), Callback()
        loop.add_reader(a.fileno(), callback, payload)
        track(payload, callback)
        payload, callback = Payload(), Callback()
        loop.add_writer(b.fileno(), callback, payload)
        track(payload, callback)
        del payload, callback
        loop.close()
        assert [r() for r in refs if not collected(r)] == []
    finally:
        a.close()
        b.close()


def test_closing_phase_loop_frees_immediates_and_hooks(phase_loop):
    refs = []
    payload, callback = Payload(), Callback()
    phase_loop.call_immediate(callback, payload)
    refs += [weakref.ref(payload), weakref.ref(callback)]
    for add in (phase_loop.add_idle, phase_loop.add_prepare, phase_loop.add_check):
        callback = Callback()
        add(callback)
        refs.append(weakref.ref(callback))
    del payload, callback
    phase_loop.close()
    assert all(collected(r) for r in refs)


def test_cancelled_phase_hooks_and_immediates_are_freed(phase_loop):
    refs = []
    payload, callback = Payload(), Callback()
    phase_loop.call_immediate(callback, payload).cancel()
    refs += [weakref.ref(payload), weakref.ref(callback)]
    for add in (phase_loop.add_idle, phase_loop.add_prepare, phase_loop.add_check):
        callback = Callback()
        add(callback).cancel()
        refs.append(weakref.ref(callback))
    del payload, callback
    phase_loop.run_until_complete(asyncio.sleep(0))
    assert all(collected(r) for r in refs)


# ---- file descriptors ----------------------------------------------------------------


def test_fd_count_returns_to_start_after_50_loops(loop_name):
    gc.collect()
    start = open_fd_count()
    for _ in range(50):
        lp = make_loop(loop_name)
        thread = threading.Thread(target=lp.call_soon_threadsafe, args=(lp.stop,))
        thread.start()
        thread.join(WAIT)
        safety = lp.call_later(WAIT, lp.stop)
        lp.run_forever()
        safety.cancel()
        lp.run_until_complete(asyncio.sleep(0.0001))
        lp.close()
    del lp
    gc.collect()
    assert open_fd_count() == start


def test_fd_count_returns_to_start_after_loops_with_watchers(loop_name):
    gc.collect()
    start = open_fd_count()
    for _ in range(50):
        lp = make_loop(loop_name)
        a, b = socket.socketpair()
        lp.add_reader(a.fileno(), Callback())
        lp.add_writer(b.fileno(), Callback())
        lp.add_signal_handler(signal.SIGUSR1, Callback())
        lp.run_until_complete(asyncio.sleep(0))
        lp.close()
        a.close()
        b.close()
    del lp
    gc.collect()
    assert open_fd_count() == start
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_closing_twice_is_harmless(loop_name):
    start = open_fd_count()
    lp = make_loop(loop_name)
    lp.close()
    lp.close()
    assert lp.is_closed()
    del lp
    gc.collect()
    assert open_fd_count() == start


# ---- memory -------------------------------------------------------------------------


def test_100k_cancelled_timers_release_their_memory(loop):
    count = 100_000
    callback = Callback()
    loop.run_until_complete(asyncio.sleep(0))
    start = allocated_blocks()
    timers = [loop.call_later(3600 + i * 1e-6, callback, i) for i in range(count)]
    grown = allocated_blocks() - start
    for timer in timers:
        timer.cancel()
    del timers, timer
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))
    left = allocated_blocks() - start
    # 100k live timers take 100k+ blocks; nothing of them may stay.
    assert grown > count, grown
    assert left < grown * 0.05, (left, grown)
    assert callback.calls == 0


def test_cancelled_timers_memory_with_tracemalloc(loop):
    """The same with tracemalloc, which also sees large (non-pymalloc) blocks."""
    count = 20_000
    callback = Callback()
    loop.run_until_complete(asyncio.sleep(0))
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        timers = [loop.call_later(3600 + i * 1e-6, callback, i) for i in range(count)]
        alive, _ = tracemalloc.get_traced_memory()
        for timer in timers:
            timer.cancel()
        del timers, timer
        for _ in range(5):
            loop.run_until_complete(asyncio.sleep(0))
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = alive - start
    assert grown > 20 * count, grown
    assert end - start < grown * 0.05, (end - start, grown)


def test_100k_fired_timers_release_their_memory(loop):
    count = 100_000
    callback = Callback()
    loop.run_until_complete(asyncio.sleep(0))
    start = allocated_blocks()
    when = loop.time()
    for i in range(count):
        loop.call_at(when, callback, i)
    grown = allocated_blocks() - start
    loop.run_until_complete(asyncio.sleep(0.001))
    left = allocated_blocks() - start
    assert callback.calls == count
    assert grown > count, grown
    assert left < grown * 0.05, (left, grown)


def test_100k_call_soon_release_their_memory(loop):
    count = 100_000
    callback = Callback()
    loop.run_until_complete(asyncio.sleep(0))
    start = allocated_blocks()
    for i in range(count):
        loop.call_soon(callback, i)
    grown = allocated_blocks() - start
    loop.run_until_complete(asyncio.sleep(0))
    left = allocated_blocks() - start
    assert callback.calls == count
    assert grown > count, grown
    assert left < grown * 0.05, (left, grown)


# ---- transports, servers, processes ---------------------------------------------


class Closer(asyncio.Protocol):
    """Closes as soon as it is connected; records connection_lost."""

    def __init__(self):
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        transport.write(b"bye")
        transport.close()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class Sink(asyncio.Protocol):
    def __init__(self):
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def test_closed_connection_frees_transports_protocols_and_server(loop):
    """After a connection ends and the server closes, nothing of it is alive."""
    refs = []

    async def main():
        server = await loop.create_server(Closer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(Sink, "127.0.0.1", port)
        await asyncio.wait_for(proto.lost, WAIT)
        refs.extend([weakref.ref(transport), weakref.ref(proto), weakref.ref(server)])
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    assert all(collected(ref) for ref in refs)


def test_transport_left_open_is_freed_with_its_loop(loop_name):
    """A transport nobody closed goes with its loop (after a ResourceWarning)."""
    lp = make_loop(loop_name)
    a, b = socket.socketpair()

    async def main():
        transport, _ = await lp.create_connection(asyncio.Protocol, sock=a)
        return weakref.ref(transport)

    ref = lp.run_until_complete(main())
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        lp.close()
        del lp
        gc.collect()
    assert collected(ref)   # the warning itself held it (source=) until here
    b.close()
    assert a.fileno() == -1


def test_fd_count_after_subprocesses(loop):
    """Each child's pipes (and pidfd) are closed once it is waited for."""
    async def child():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "pass", stdout=asyncio.subprocess.PIPE)
        await proc.communicate()

    loop.run_until_complete(child())
    start = open_fd_count()
    for _ in range(3):
        loop.run_until_complete(child())
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    gc.collect()
    assert open_fd_count() <= start
