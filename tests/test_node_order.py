"""Event order against Node.js: each tests/node/NAME.js has a phaseloop twin NAME.py.

Both programs print the order in which their callbacks ran.  The twin must
print the lines listed in EXPECTED; where `node` is on PATH, the Node program
is run too and must print the very same lines (so EXPECTED is checked against
Node 20 itself, not just written down).

Node's setImmediate is call_immediate, setTimeout is call_later/call_at, and
process.nextTick / queueMicrotask / Promise.resolve().then are call_soon.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest


NODE_DIR = pathlib.Path(__file__).parent / "node"
NODE = shutil.which("node")

EXPECTED = {
    # DESIGN: inside an I/O callback, call_soon, then call_immediate, then call_later(0).
    "io_callback_order": [
        "io callback",
        "microtask",
        "immediate",
        "timer",
    ],
    # DESIGN: an immediate scheduled by an immediate runs in the next iteration;
    # call_soon queued by the first immediate runs before the second one.
    "immediate_chain": [
        "immediate 1",
        "microtask from immediate 1",
        "immediate 2",
        "timer (this iteration)",
        "immediate 3 (next iteration)",
    ],
    # DESIGN: call_soon queued by a timer runs before the next timer due at the same time.
    "timer_microtask": [
        "timer 1",
        "microtask from timer 1",
        "timer 2",
    ],
    # Node: a socket destroyed in its 'data' callback reports 'close' in the
    # close phase, after the microtask and the immediate (phaseloop differs:
    # PHASELOOP_ORDER below).
    "close_after_immediate": [
        "data received",
        "microtask",
        "immediate",
        "connection lost",
    ],
    # DESIGN: timers due at the same time run in the order they were scheduled.
    "equal_timers_fifo": [
        "timer early",
        "timer a",
        "timer b",
        "timer c",
        "timer d",
        "timer e",
    ],
    # DESIGN: a Task woken by a timer resumes before the next timer fires.
    "task_resumes_before_next_timer": [
        "timer 1 resolves",
        "task resumed",
        "timer 2",
    ],
    # An immediate scheduled by a timer waits for every due timer of that phase.
    "timer_schedules_immediate": [
        "timer 1",
        "timer 2",
        "immediate from timer 1",
    ],
}

#: Where phaseloop deliberately follows asyncio instead of Node (docs/compat.md):
#: close() schedules connection_lost like call_soon, as asyncio does, so
#: StreamWriter.drain() after close() sees it (CPython's test_streams).
PHASELOOP_ORDER = {
    "close_after_immediate": [
        "data received",
        "connection lost",
        "microtask",
        "immediate",
    ],
}

PROGRAMS = sorted(EXPECTED)


def run_program(argv):
    """Run argv, return its stdout lines; fail with its stderr if it fails."""
    env = dict(os.environ)
    # The twin imports phaseloop from wherever this test process found it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env=env, cwd=NODE_DIR
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout.splitlines()


def test_every_program_has_both_twins():
    names = {p.stem for p in NODE_DIR.glob("*.js")}
    assert names == set(EXPECTED)
    assert {p.stem for p in NODE_DIR.glob("*.py")} == names


@pytest.mark.parametrize("name", PROGRAMS)
def test_phaseloop_twin_order(name):
    twin = NODE_DIR / f"{name}.py"
    assert "import phaseloop" in twin.read_text()
    assert run_program([sys.executable, str(twin)]) == PHASELOOP_ORDER.get(name, EXPECTED[name])


@pytest.mark.skipif(NODE is None, reason="node is not on PATH")
@pytest.mark.parametrize("name", PROGRAMS)
def test_node_prints_the_same_order(name):
    node_lines = run_program([NODE, str(NODE_DIR / f"{name}.js")])
    twin_lines = run_program([sys.executable, str(NODE_DIR / f"{name}.py")])
    assert node_lines == EXPECTED[name]
    assert twin_lines == PHASELOOP_ORDER.get(name, node_lines)
