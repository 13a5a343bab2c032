"""Timers: deadline order, ties, never early, cancellation at scale."""
import asyncio
import random
import time

import pytest


def run_until_stopped(loop, guard=10.0):
    """run_forever with a guard timer, so a test cannot hang if stop never comes."""
    guard_handle = loop.call_later(guard, loop.stop)
    loop.run_forever()
    guard_handle.cancel()


def busy_wait(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_call_at_runs_in_deadline_order(loop):
    rng = random.Random(1)
    base = loop.time() + 0.002
    offsets = [i * 1e-4 for i in range(200)]
    rng.shuffle(offsets)
    fired = []
    for offset in offsets:
        loop.call_at(base + offset, fired.append, offset)
    loop.call_at(base + 0.03, loop.stop)
    run_until_stopped(loop)
    assert fired == sorted(offsets)


def test_call_later_runs_in_delay_order(loop):
    fired = []
    for delay in (0.005, 0.001, 0.003, 0, 0.004, 0.002):
        loop.call_later(delay, fired.append, delay)
    loop.call_later(0.02, loop.stop)
    run_until_stopped(loop)
    assert fired == [0, 0.001, 0.002, 0.003, 0.004, 0.005]


def test_equal_deadlines_run_fifo(phase_loop):
    # asyncio keeps its timers in a heapq, whose ties come out in no particular
    # order, so FIFO ties are a phaseloop guarantee (DESIGN: Node's order).
    loop = phase_loop
    when = loop.time() + 0.005
    fired = []
    for i in range(500):
        loop.call_at(when, fired.append, i)
    loop.call_at(when, loop.stop)
    run_until_stopped(loop)
    assert fired == list(range(500))


def test_ties_fifo_among_interleaved_deadlines(phase_loop):
    loop = phase_loop
    base = loop.time() + 0.003
    rng = random.Random(7)
    scheduled = []
    fired = []
    for seq in range(600):
        slot = rng.randrange(5)
        scheduled.append((slot, seq))
        loop.call_at(base + slot * 0.001, fired.append, seq)
    loop.call_at(base + 0.01, loop.stop)
    run_until_stopped(loop)
    assert fired == [seq for _, seq in sorted(scheduled)]


def test_no_timer_fires_early(loop):
    rng = random.Random(2024)
    late = []
    fired = []
    count = 1000

    def check(scheduled_at, delay):
        elapsed = loop.time() - scheduled_at
        fired.append(1)
        if elapsed < delay:
            late.append((delay, elapsed))
        if len(fired) == count:
            loop.stop()

    def schedule(n):
        for _ in range(n):
            delay = rng.uniform(0, 0.001)
            loop.call_later(delay, check, loop.time(), delay)

    # Half armed before the loop runs, half from inside callbacks after the
    # loop has spent time in them (a stale cached clock would show here).
    schedule(count // 2)

    def schedule_later_batch():
        busy_wait(0.0003)
        schedule(count // 10)

    for i in range(5):
        loop.call_later(i * 0.0005, schedule_later_batch)
    run_until_stopped(loop)
    assert len(fired) == count
    assert late == [], f"{len(late)} timers fired early, e.g. (delay, elapsed) {late[:3]}"


def test_cancel_many_timers(loop):
    fired = []
    handles = [loop.call_later(0.001 + (i % 10) * 1e-4, fired.append, i) for i in range(2000)]
    for handle in handles[::2]:
        handle.cancel()
    loop.call_later(0.01, loop.stop)
    run_until_stopped(loop)
    assert sorted(fired) == list(range(1, 2000, 2))
    assert all(h.cancelled() for h in handles[::2])
    assert not any(h.cancelled() for h in handles[1::2])


def test_hundred_thousand_timers_scheduled_then_cancelled(loop):
    fired = []
    handles = []
    for i in range(100_000):
        # Mix of near and far deadlines: none may run, and the far ones
        # must not keep the loop waiting.
        delay = 0.001 if i % 2 else 3600.0
        handles.append(loop.call_later(delay, fired.append, i))
    for handle in handles:
        handle.cancel()
    done = []
    loop.call_later(0.01, lambda: (done.append(True), loop.stop()))
    run_until_stopped(loop)
    assert done == [True]
    assert fired == []


def test_timer_cancelled_by_earlier_timer_in_same_batch(loop):
    fired = []
    victim = None

    def killer():
        fired.append("killer")
        victim.cancel()

    now = loop.time()
    # Both already overdue when the loop starts, so they are due together.
    loop.call_at(now - 0.002, killer)
    victim = loop.call_at(now - 0.001, fired.append, "victim")
    loop.call_at(now, fired.append, "after")
    loop.call_later(0.005, loop.stop)
    run_until_stopped(loop)
    assert fired == ["killer", "after"]


def test_timer_cancelled_by_earlier_timer_when_overdue_in_the_loop(loop):
    fired = []
    victims = []

    def killer():
        fired.append("killer")
        for victim in victims:
            victim.cancel()

    def arm():
        when = loop.time() + 0.001
        loop.call_at(when, killer)
        victims.extend(loop.call_at(when + 1e-6 * i, fired.append, i) for i in range(1, 20))
        loop.call_at(when + 1e-4, fired.append, "after")
        busy_wait(0.002)  # all of them are due at the next timers phase

    loop.call_soon(arm)
    loop.call_later(0.02, loop.stop)
    run_until_stopped(loop)
    assert fired == ["killer", "after"]


def test_timer_rearmed_from_its_own_callback(loop):
    ticks = []

    def tick():
        ticks.append(loop.time())
        if len(ticks) < 20:
            loop.call_later(0.0005, tick)
        else:
            loop.stop()

    loop.call_later(0, tick)
    run_until_stopped(loop)
    assert len(ticks) == 20
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert min(gaps) >= 0.0005


def test_cancelled_nearest_timer_does_not_block_later_ones(loop):
    fired = []
    near = loop.call_later(0.001, fired.append, "near")
    loop.call_later(0.005, fired.append, "far")
    loop.call_later(0.01, loop.stop)
    near.cancel()
    run_until_stopped(loop)
    assert fired == ["far"]


@pytest.mark.parametrize("delay", [0.01, 0.03])
def test_timer_fires_not_before_its_delay_while_blocked(loop, delay):
    # Nothing else to do: the loop sleeps in poll until the deadline.
    start = loop.time()
    elapsed = []

    def fire():
        elapsed.append(loop.time() - start)
        loop.stop()

    loop.call_later(delay, fire)
    run_until_stopped(loop)
    assert elapsed[0] >= delay


def test_a_timer_set_after_a_blocking_callback_is_not_late_by_the_block(loop):
    """The wait is measured from the clock after the callback, not before it."""
    import time as _time

    async def main():
        await asyncio.sleep(0.01)
        _time.sleep(0.2)                        # block the loop
        start = loop.time()
        await asyncio.sleep(0.05)
        return loop.time() - start

    waited = loop.run_until_complete(main())
    assert 0.05 <= waited < 0.2, waited        # late by 200 ms before the fix
