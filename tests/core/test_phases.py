"""The Node phase API and the phase rules of docs/phases.md.

One iteration: pending -> idle -> prepare -> poll -> check -> close -> timers,
with the ready queue (call_soon) drained after every callback a phase runs
and at every phase boundary, snapshot style.  Everything here but the
starvation test is phaseloop-only API (`phase_loop`); the programs in
tests/node/ check the same orders against Node itself.
"""
import asyncio
import contextvars
import socket
import time

import pytest



def run_until_stopped(loop, guard=5.0):
    """run_forever with a guard timer, so a test cannot hang if stop never comes."""
    guard_handle = loop.call_later(guard, loop.stop)
    loop.run_forever()
    guard_handle.cancel()


# ---- call_immediate -------------------------------------------------------


def test_call_immediate_runs_with_args_in_order(phase_loop):
    calls = []
    handle = phase_loop.call_immediate(calls.append, 1)
    phase_loop.call_immediate(lambda *args: calls.append(args), 2, 3)
    assert type(handle).__name__ == "Handle"
    phase_loop.run_once(timeout=1)
    assert calls == [1, (2, 3)]


def test_call_immediate_cancel(phase_loop):
    calls = []
    handle = phase_loop.call_immediate(calls.append, "cancelled")
    phase_loop.call_immediate(calls.append, "kept")
    handle.cancel()
    assert handle.cancelled()
    assert "cancelled" in repr(handle)
    phase_loop.run_once(timeout=1)
    assert calls == ["kept"]


def test_call_immediate_context(phase_loop):
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.Context()
    ctx.run(var.set, "in ctx")
    seen = []
    handle = phase_loop.call_immediate(lambda: seen.append(var.get()), context=ctx)
    assert handle.get_context() is ctx
    phase_loop.run_once(timeout=1)
    assert seen == ["in ctx"]


def test_call_immediate_rejects_non_callable(phase_loop):
    with pytest.raises(TypeError):
        phase_loop.call_immediate(42)


def test_call_immediate_on_closed_loop(phase_loop):
    phase_loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        phase_loop.call_immediate(print)


def test_timers_run_before_the_first_iteration(phase_loop):
    order = []
    phase_loop.call_immediate(order.append, "immediate")
    phase_loop.call_later(0, order.append, "timer")
    phase_loop.call_soon(order.append, "soon")
    phase_loop.call_later(0.005, phase_loop.stop)
    run_until_stopped(phase_loop)
    assert sorted(order) == ["immediate", "soon", "timer"]
    # A due timer does not wait for the check phase of the first iteration.
    assert order.index("timer") < order.index("immediate")
    assert order.index("soon") < order.index("immediate")


# ---- idle / prepare / check hooks ----------------------------------------


@pytest.mark.parametrize("kind", ["idle", "prepare", "check"])
def test_hook_runs_once_per_iteration_without_arguments(phase_loop, kind):
    calls = []
    hook = getattr(phase_loop, f"add_{kind}")(lambda *args: calls.append(args))
    for _ in range(5):
        phase_loop.run_once(timeout=0)
    assert calls == [()] * 5
    hook.cancel()
    for _ in range(3):
        phase_loop.run_once(timeout=0)
    assert calls == [()] * 5


@pytest.mark.parametrize("kind", ["idle", "prepare", "check"])
def test_hook_cancelled_from_its_own_callback(phase_loop, kind):
    calls = []
    hook = None

    def once():
        calls.append(kind)
        hook.cancel()

    hook = getattr(phase_loop, f"add_{kind}")(once)
    for _ in range(3):
        phase_loop.run_once(timeout=0)
    assert calls == [kind]


def test_hooks_run_in_phase_order(phase_loop, socket_pair):
    reader, writer = socket_pair
    order = []

    def on_readable():
        reader.recv(100)
        order.append("poll")
        phase_loop.call_at(phase_loop.time(), order.append, "timer")

    hooks = [
        phase_loop.add_check(lambda: order.append("check")),
        phase_loop.add_prepare(lambda: order.append("prepare")),
        phase_loop.add_idle(lambda: order.append("idle")),
    ]
    phase_loop.add_reader(reader, on_readable)
    writer.send(b"x")
    phase_loop.run_once(timeout=1)
    assert order == ["idle", "prepare", "poll", "check", "timer"]
    for hook in hooks:
        hook.cancel()
    phase_loop.remove_reader(reader)


def test_idle_hook_keeps_poll_from_blocking(phase_loop, socket_pair):
    reader, _ = socket_pair
    phase_loop.add_reader(reader, reader.recv, 100)  # something to wait for
    hook = phase_loop.add_idle(lambda: None)
    start = time.monotonic()
    for _ in range(10):
        phase_loop.run_once(timeout=3)
    # Without the idle hook each run_once would wait 3 s.
    assert time.monotonic() - start < 2.5
    hook.cancel()
    phase_loop.remove_reader(reader)


@pytest.mark.parametrize("kind", ["prepare", "check"])
def test_prepare_and_check_hooks_do_not_keep_poll_from_blocking(phase_loop, kind):
    hook = getattr(phase_loop, f"add_{kind}")(lambda: None)
    start = time.monotonic()
    phase_loop.run_once(timeout=0.05)
    assert time.monotonic() - start >= 0.04
    hook.cancel()


def test_call_soon_from_a_hook_runs_before_the_next_phase(phase_loop):
    order = []

    def idle():
        order.append("idle")
        phase_loop.call_soon(order.append, "soon from idle")

    idle_hook = phase_loop.add_idle(idle)
    prepare_hook = phase_loop.add_prepare(lambda: order.append("prepare"))
    phase_loop.run_once(timeout=0)
    assert order == ["idle", "soon from idle", "prepare"]
    idle_hook.cancel()
    prepare_hook.cancel()


# ---- run_once ----------------------------------------------------------------


def test_run_once_timeout_caps_the_wait(phase_loop):
    start = time.monotonic()
    phase_loop.run_once(timeout=0.05)
    assert 0.045 <= time.monotonic() - start < 3


def test_run_once_zero_timeout_dispatches_ready_io(phase_loop, socket_pair):
    reader, writer = socket_pair
    got = []
    phase_loop.add_reader(reader, lambda: got.append(reader.recv(100)))
    start = time.monotonic()
    phase_loop.run_once(timeout=0)
    assert got == []
    writer.send(b"ping")
    phase_loop.run_once(timeout=0)
    assert got == [b"ping"]
    assert time.monotonic() - start < 2.5
    phase_loop.remove_reader(reader)


def test_run_once_without_timeout_waits_for_io(phase_loop, socket_pair):
    reader, writer = socket_pair
    got = []
    phase_loop.add_reader(reader, lambda: got.append(reader.recv(100)))
    # A timer writes the data: the first run_once has nothing to read yet.
    phase_loop.call_later(0.01, writer.send, b"late")
    for _ in range(100):
        phase_loop.run_once()
        if got:
            break
    assert got == [b"late"]
    phase_loop.remove_reader(reader)


def test_run_once_waits_for_the_nearest_timer(phase_loop):
    fired = []
    start = phase_loop.time()
    phase_loop.call_later(0.02, lambda: fired.append(phase_loop.time() - start))
    for _ in range(1000):
        phase_loop.run_once(timeout=5)
        if fired:
            break
    assert len(fired) == 1
    assert fired[0] >= 0.02


def test_run_once_is_not_reentrant(phase_loop):
    errors = []

    def nested():
        try:
            phase_loop.run_once(timeout=0)
        except RuntimeError as exc:
            errors.append(exc)

    phase_loop.call_soon(nested)
    phase_loop.run_once(timeout=0)
    assert len(errors) == 1
    assert not phase_loop.is_running()


def test_run_once_on_closed_loop(phase_loop):
    phase_loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        phase_loop.run_once(timeout=0)


# ---- the phase rules --------------------------------------------------------


def test_io_callback_order_soon_then_immediate_then_zero_timer(phase_loop, socket_pair):
    reader, writer = socket_pair
    order = []

    def on_timer():
        order.append("timer")
        phase_loop.stop()

    def on_readable():
        reader.recv(100)
        phase_loop.remove_reader(reader)
        order.append("io")
        phase_loop.call_later(0, on_timer)
        phase_loop.call_immediate(order.append, "immediate")
        phase_loop.call_soon(order.append, "soon")

    phase_loop.add_reader(reader, on_readable)
    writer.send(b"x")
    run_until_stopped(phase_loop)
    assert order == ["io", "soon", "immediate", "timer"]


def test_call_soon_from_readers_runs_after_the_poll_batch(phase_loop):
    pairs = [socket.socketpair() for _ in range(4)]
    order = []
    try:
        for i, (reader, writer) in enumerate(pairs):

            def on_readable(i=i, reader=reader):
                reader.recv(100)
                order.append(f"reader {i}")
                phase_loop.call_soon(order.append, f"soon {i}")

            phase_loop.add_reader(reader, on_readable)
            writer.send(b"x")
        phase_loop.run_once(timeout=1)
        assert len(order) == 8
        # Readers of one poll may run in any order; their call_soon callbacks
        # run once the whole batch of I/O callbacks is done (as asyncio and
        # uvloop do), in the order they were scheduled.
        readers = [o for o in order[:4]]
        assert all(o.startswith("reader") for o in readers)
        assert order[4:] == [o.replace("reader", "soon") for o in readers]
    finally:
        for reader, writer in pairs:
            phase_loop.remove_reader(reader)
            reader.close()
            writer.close()


def test_immediate_from_immediate_runs_next_iteration(phase_loop):
    order = []

    def first():
        order.append("immediate 1")
        phase_loop.call_immediate(order.append, "immediate 3")
        phase_loop.call_soon(order.append, "soon from immediate 1")

    phase_loop.call_immediate(first)
    phase_loop.call_immediate(order.append, "immediate 2")
    phase_loop.run_once(timeout=1)
    assert order == ["immediate 1", "soon from immediate 1", "immediate 2"]
    phase_loop.run_once(timeout=1)
    assert order[3:] == ["immediate 3"]


def test_call_soon_from_timer_runs_before_next_due_timer(phase_loop):
    order = []

    def timer_1():
        order.append("timer 1")
        phase_loop.call_soon(order.append, "soon from timer 1")

    def timer_2():
        order.append("timer 2")
        phase_loop.stop()

    when = phase_loop.time() + 0.002
    phase_loop.call_at(when, timer_1)
    phase_loop.call_at(when, timer_2)
    run_until_stopped(phase_loop)
    assert order == ["timer 1", "soon from timer 1", "timer 2"]


def test_task_woken_by_timer_resumes_before_next_due_timer(phase_loop):
    order = []

    async def sleeper(wake):
        await wake
        order.append("task resumed")

    async def main():
        wake = phase_loop.create_future()
        done = phase_loop.create_future()
        when = phase_loop.time() + 0.002
        phase_loop.call_at(when, wake.set_result, None)
        phase_loop.call_at(when, lambda: (order.append("timer 2"), done.set_result(None)))
        task = phase_loop.create_task(sleeper(wake))
        await done
        await task

    phase_loop.run_until_complete(main())
    assert order == ["task resumed", "timer 2"]


def test_timer_armed_by_timer_with_zero_delay_runs_next_iteration(phase_loop):
    order = []

    def timer_1():
        order.append("timer 1")
        phase_loop.call_later(0, order.append, "timer from timer 1")
        phase_loop.call_immediate(order.append, "immediate from timer 1")

    when = phase_loop.time() - 1  # already due
    phase_loop.call_at(when, timer_1)
    phase_loop.call_at(when, order.append, "timer 2")
    for _ in range(10):
        phase_loop.run_once(timeout=0)
        if len(order) == 4:
            break
    assert order == ["timer 1", "timer 2", "immediate from timer 1", "timer from timer 1"]


def test_ready_queue_drain_is_a_snapshot(phase_loop):
    order = []

    def soon_1():
        order.append("soon 1")
        phase_loop.call_soon(order.append, "soon from soon 1")

    def timer_1():
        order.append("timer 1")
        phase_loop.call_soon(soon_1)

    def timer_2():
        order.append("timer 2")

    when = phase_loop.time() - 1
    phase_loop.call_at(when, timer_1)
    phase_loop.call_at(when, timer_2)
    phase_loop.run_once(timeout=0)
    # "soon from soon 1" was queued during the drain after timer 1: it waits
    # for the next drain, which comes after timer 2.
    assert order == ["timer 1", "soon 1", "timer 2", "soon from soon 1"]


def test_self_rescheduling_call_soon_does_not_trap_an_iteration(phase_loop):
    count = [0]

    def again():
        count[0] += 1
        phase_loop.call_soon(again)

    phase_loop.call_soon(again)
    start = time.monotonic()
    phase_loop.run_once(timeout=3)
    first = count[0]
    # A handful of drains per iteration, each taking one generation.
    assert 1 <= first <= 100
    phase_loop.run_once(timeout=3)
    assert first < count[0] <= 2 * 100
    # The ready queue was never empty, so poll never blocked.
    assert time.monotonic() - start < 2.5


def test_connection_lost_runs_as_the_next_ready_callback(phase_loop):
    """close() queues connection_lost like asyncio's call_soon: before a
    call_soon made after close() and before the immediate (Node would run it
    in the close phase, after both: see docs/compat.md)."""
    order = []

    class Server(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            order.append("data")
            phase_loop.call_immediate(order.append, "immediate")
            self.transport.close()
            phase_loop.call_soon(order.append, "soon")

        def connection_lost(self, exc):
            order.append("lost")
            lost.set_result(None)

    async def main():
        server = await phase_loop.create_server(Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await phase_loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.write(b"x")
        await asyncio.wait_for(lost, 5)
        transport.close()
        server.close()
        await server.wait_closed()

    lost = phase_loop.create_future()
    phase_loop.run_until_complete(main())
    assert order == ["data", "lost", "soon", "immediate"]


def test_sleep_zero_loop_does_not_starve_a_reader(loop, socket_pair):
    reader, writer = socket_pair
    got = []
    loop.add_reader(reader, lambda: got.append(reader.recv(100)))

    async def spin():
        for spins in range(1, 100_001):
            await asyncio.sleep(0)
            if got:
                return spins
        return None

    writer.send(b"data")
    spins = loop.run_until_complete(spin())
    loop.remove_reader(reader)
    assert got == [b"data"]
    # The reader ran within a few iterations, not after the spinner gave up.
    assert spins is not None and spins < 100
