"""Loop metrics: loop.metrics(), event_loop_utilization, monitor_event_loop_delay.

The counters are phaseloop's own (asyncio has none), so these tests use
`phase_loop`; the delay monitor is a plain timer and runs on both loops.
"""
import asyncio
import math
import time

import pytest

import phaseloop
from phaseloop.metrics import EventLoopDelayMonitor


def test_metrics_count_iterations_callbacks_and_phase_time(phase_loop):
    loop = phase_loop
    before = loop.metrics()

    async def main():
        loop.call_immediate(lambda: None)
        await asyncio.sleep(0.02)

    loop.run_until_complete(main())
    after = loop.metrics()
    assert after["iterations"] > before["iterations"]
    assert after["callbacks"]["check"] == before["callbacks"]["check"] + 1
    assert after["callbacks"]["timers"] >= before["callbacks"]["timers"] + 1
    assert set(after["phase_time"]) == set(after["callbacks"]) == {
        "pending", "idle", "prepare", "poll", "check", "close", "timers", "ready"}
    # The sleep was spent blocked in poll: idle and poll time both saw it.
    assert after["idle_time"] - before["idle_time"] >= 0.015
    assert after["phase_time"]["poll"] - before["phase_time"]["poll"] >= 0.015
    assert after["run_time"] >= after["idle_time"]
    assert after["ready_max"] >= 1


def test_metrics_on_a_closed_loop_raise():
    loop = phaseloop.new_event_loop()
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.metrics()


def test_blocking_the_loop_shows_in_utilization_and_delay_histogram(phase_loop):
    loop = phase_loop

    async def main():
        monitor = phaseloop.monitor_event_loop_delay(resolution=0.01)
        assert monitor.enable()
        await asyncio.sleep(0.1)                    # idle: low utilization
        idle_part = phaseloop.event_loop_utilization()
        time.sleep(0.2)                             # block the loop for 200 ms
        await asyncio.sleep(0.05)
        busy_part = phaseloop.event_loop_utilization(previous=idle_part)
        assert monitor.disable()
        return idle_part, busy_part, monitor

    idle_part, busy_part, monitor = loop.run_until_complete(main())
    assert idle_part.utilization < 0.5
    assert busy_part.active >= 0.19
    assert busy_part.utilization > 0.6
    assert monitor.count >= 5
    assert monitor.max >= 0.15                      # the blocked timer was ~190 ms late
    assert monitor.percentile(100) == pytest.approx(monitor.max, rel=0.02)
    assert monitor.min <= monitor.percentile(50) <= monitor.max
    assert monitor.mean > 0 and monitor.stddev > 0


def test_utilization_needs_a_phaseloop(loop):
    if isinstance(loop, phaseloop.Loop):
        assert 0.0 <= phaseloop.event_loop_utilization(loop).utilization <= 1.0
    else:
        with pytest.raises(TypeError, match="phaseloop.Loop"):
            phaseloop.event_loop_utilization(loop)


def test_delay_monitor_runs_on_any_loop(loop):
    async def main():
        monitor = phaseloop.monitor_event_loop_delay(resolution=0.005)
        monitor.enable()
        assert not monitor.enable()                 # already on
        await asyncio.sleep(0.05)
        monitor.disable()
        assert not monitor.disable()
        count = monitor.count
        await asyncio.sleep(0.02)
        assert monitor.count == count               # disabled: no more samples
        return monitor

    monitor = loop.run_until_complete(main())
    assert monitor.count >= 3
    assert monitor.min >= 0


def test_histogram_statistics_and_reset():
    monitor = EventLoopDelayMonitor(resolution=0.01)
    assert math.isnan(monitor.mean) and math.isnan(monitor.percentile(50))
    samples = [0.001 * i for i in range(1, 101)]   # 1 ms .. 100 ms
    for s in samples:
        monitor._record(s)
    assert monitor.count == 100
    assert monitor.min == pytest.approx(0.001)
    assert monitor.max == pytest.approx(0.1)
    assert monitor.mean == pytest.approx(0.0505)
    assert monitor.stddev == pytest.approx(0.028866, rel=1e-3)
    assert monitor.percentile(50) == pytest.approx(0.050, rel=0.02)
    assert monitor.percentile(99) == pytest.approx(0.099, rel=0.02)
    assert set(monitor.percentiles) == {50, 75, 90, 99, 100}
    with pytest.raises(ValueError):
        monitor.percentile(0)
    monitor.reset()
    assert monitor.count == 0 and monitor.max == 0.0


@pytest.mark.parametrize("bad", [0, -1, "x", None])
def test_bad_resolution(bad):
    with pytest.raises(ValueError):
        phaseloop.monitor_event_loop_delay(resolution=bad)
