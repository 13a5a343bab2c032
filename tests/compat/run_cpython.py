#!/usr/bin/env python3
"""Run CPython's own test_asyncio suite against phaseloop, uvloop or asyncio.

Usage::

    python tests/compat/run_cpython.py --loop phaseloop [--modules m1,m2]
        [--json out.json] [--timeout 30] [--check] [--jobs N]

How the loop under test gets into the tests
-------------------------------------------
The suite builds its loops in three ways: ``asyncio.new_event_loop()`` (and
``asyncio.Runner``/``IsolatedAsyncioTestCase``, which call it), a policy's
``new_event_loop()``, and ``asyncio.SelectorEventLoop(selector)``.  In every
worker process, before any test module is imported, this script

* sets ``_loop_factory`` of asyncio's Unix default policy class to a counting
  factory for the loop under test.  The tests reset the policy with
  ``asyncio.set_event_loop_policy(None)`` (every module's tearDownModule,
  test_runners' tearDown), and a reset makes a fresh
  ``asyncio.DefaultEventLoopPolicy``; patching the class keeps that fresh
  policy on the loop under test, and keeps the child-watcher methods that
  test_events and test_subprocess call on the policy.  A fresh instance of
  that policy is also installed at start.  ``--policy native`` instead makes
  ``asyncio.DefaultEventLoopPolicy`` the loop's own policy class
  (``phaseloop.Policy``, ``uvloop.EventLoopPolicy``), which has no
  child-watcher methods;
* replaces ``asyncio.SelectorEventLoop`` and
  ``asyncio.unix_events.SelectorEventLoop`` by a stand-in class that builds
  the loop under test with the same factory (the selector argument is closed
  and ignored for phaseloop and uvloop, passed on for asyncio), while
  ``isinstance``/``issubclass`` against it still answer for asyncio's class;
* lets the suite's cleanup helper ``test_utils.TestCase.close_loop`` close a
  loop without the private ``_default_executor`` (see _adapt_close_loop).

Modules and classes that test asyncio's internals are left out
(EXCLUDED_MODULES, EXCLUDED_CLASSES, with reasons), and so are classes that
repeat a mixin with another selector or child watcher (DUPLICATE_CLASSES;
``--all-variants`` runs them).

Every construction is counted by type: loops made by the factory, and every
``asyncio.BaseEventLoop`` built some other way (``test_utils.TestLoop``, the
fake-time loop many tests use, or a stdlib loop class built directly).  Each
test is tagged with the kinds of loop it built, so the report tells tests that
exercised the loop under test from those that ran only on TestLoop or built no
loop at all.  For ``--loop phaseloop`` the run fails if no ``phaseloop.Loop``
was built.

Isolation
---------
Each module runs in its own worker subprocess.  ``faulthandler`` kills a
worker whose test runs past ``--timeout`` seconds (dumping every thread's
stack to the worker's stderr), and the parent kills a worker whose output
stalls for ``--timeout`` + 30 seconds; the parent records the test as
``timeout`` (or ``crash`` when the worker died on a signal) and starts a new
worker that skips the tests already seen, so the run goes on.

Outcomes are ``passed``, ``failed``, ``error``, ``skipped``,
``expected_failure``, ``unexpected_success``, ``timeout`` and ``crash``.
With ``--check``, every ``failed``/``error``/``timeout``/``crash``/
``unexpected_success`` whose id is not in ``expected_failures-X.Y.txt`` (the
running Python's list) makes the
exit status 1; listed tests that now pass are reported.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import faulthandler
import fnmatch
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, Iterable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "test.test_asyncio."
LOOPS = ("phaseloop", "uvloop", "asyncio")
BAD_OUTCOMES = frozenset({"failed", "error", "timeout", "crash", "unexpected_success"})

# Modules that test a loop through asyncio's public API, in the order they run.
MODULES: tuple[str, ...] = (
    "test_buffered_proto",
    "test_context",
    "test_events",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_pep492",
    "test_protocols",
    "test_queues",
    "test_runners",
    "test_sendfile",
    "test_server",
    "test_sock_lowlevel",
    "test_ssl",
    "test_sslproto",
    "test_streams",
    "test_subprocess",
    "test_taskgroups",
    "test_tasks",
    "test_threads",
    "test_timeouts",
    "test_transports",
    "test_unix_events",
    "test_waitfor",
)

# Modules left out, with the reason (docs/compat-cpython.md repeats these).
EXCLUDED_MODULES: dict[str, str] = {
    "test_base_events": (
        "tests asyncio.BaseEventLoop's implementation: a BaseEventLoop() with a mock "
        "_selector, asserts on loop._ready/_scheduled/_run_once, and patches "
        "asyncio.base_events.socket; the loop under test never sees those mocks"),
    "test_selector_events": (
        "tests BaseSelectorEventLoop and the _Selector*Transport classes on a mock "
        "selector and mock sockets"),
    "test_proactor_events": "Windows proactor loop and transports, driven by mocks",
    "test_windows_events": "Windows only (ProactorEventLoop, IOCP)",
    "test_windows_utils": "Windows only (overlapped pipes)",
}

# Classes left out of included modules, with the reason.
EXCLUDED_CLASSES: dict[str, str] = {
    "test_unix_events.SelectorEventLoopSignalTests": (
        "patches asyncio.unix_events.signal and calls loop._check_signal, "
        "loop._handle_signal, loop._signal_handlers"),
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests": (
        "calls loop._sock_sendfile_native/_sock_sendfile_native_impl and "
        "loop._selector.get_key"),
    "test_unix_events.UnixReadPipeTransportTests": (
        "stdlib _UnixReadPipeTransport on test_utils.TestLoop with a mock pipe and "
        "patched os"),
    "test_unix_events.UnixWritePipeTransportTests": (
        "stdlib _UnixWritePipeTransport on test_utils.TestLoop with a mock pipe and "
        "patched os"),
    "test_unix_events.AbstractChildWatcherTests": "child watcher classes, no loop",
    "test_unix_events.BaseChildWatcherTests": "child watcher classes, no loop",
    "test_unix_events.SafeChildWatcherTests": (
        "SafeChildWatcher internals with patched os.waitpid and a TestLoop"),
    "test_unix_events.FastChildWatcherTests": (
        "FastChildWatcher internals with patched os.waitpid and a TestLoop"),
    "test_unix_events.PolicyTests": (
        "asyncio.DefaultEventLoopPolicy's child-watcher bookkeeping (policy._watcher)"),
    "test_sslproto.SslProtoHandshakeTests": (
        "asyncio.sslproto.SSLProtocol's internals driven by a mock transport and a "
        "mock SSLObject; the loop only schedules callbacks"),
}

# The same tests again with another selector or child watcher.  phaseloop and
# uvloop ignore both, so on them these classes repeat EPollEventLoopTests /
# SubprocessThreadedWatcherTests test for test; they are dropped on every loop
# (so the three columns compare the same tests) unless --all-variants is given.
DUPLICATE_CLASSES: dict[str, str] = {
    "test_events.PollEventLoopTests": "EventLoopTestsMixin again with PollSelector",
    "test_events.SelectEventLoopTests": "EventLoopTestsMixin again with SelectSelector",
    "test_sendfile.PollEventLoopTests": "SendfileTestsBase again with PollSelector",
    "test_sendfile.SelectEventLoopTests": "SendfileTestsBase again with SelectSelector",
    "test_sock_lowlevel.PollEventLoopTests": "BaseSockTestsMixin again with PollSelector",
    "test_sock_lowlevel.SelectEventLoopTests": (
        "BaseSockTestsMixin again with SelectSelector"),
    "test_subprocess.SubprocessSafeWatcherTests": (
        "SubprocessMixin again with SafeChildWatcher"),
    "test_subprocess.SubprocessFastWatcherTests": (
        "SubprocessMixin again with FastChildWatcher"),
    "test_subprocess.SubprocessPidfdWatcherTests": (
        "SubprocessMixin again with PidfdChildWatcher"),
}


# --------------------------------------------------------------------------
# Worker side: patch loop creation, run one module, stream outcomes.

_LOOP_LOG: list[str] = []          # kinds of loops built, in order (all threads)
_LOOP_COUNTS: collections.Counter[str] = collections.Counter()
_in_factory = threading.local()


def _loop_factory_for(loop_name: str) -> Callable[..., Any]:
    """Return a callable(selector=None) that builds one loop under test."""
    if loop_name == "phaseloop":
        import phaseloop

        def build(selector: Any = None) -> Any:
            if selector is not None:
                selector.close()
            loop = phaseloop.new_event_loop()
            if not isinstance(loop, phaseloop.Loop):
                raise AssertionError(f"phaseloop.new_event_loop() gave {loop!r}")
            return loop
    elif loop_name == "uvloop":
        import uvloop

        def build(selector: Any = None) -> Any:
            if selector is not None:
                selector.close()
            return uvloop.new_event_loop()
    elif loop_name == "asyncio":
        from asyncio import unix_events
        selector_loop = unix_events._UnixSelectorEventLoop

        def build(selector: Any = None) -> Any:
            return selector_loop(selector)
    else:
        raise ValueError(f"unknown loop {loop_name!r}")

    def counting_factory(selector: Any = None) -> Any:
        _in_factory.active = True
        try:
            loop = build(selector)
        finally:
            _in_factory.active = False
        kind = f"{type(loop).__module__}.{type(loop).__qualname__}"
        _LOOP_COUNTS[kind] += 1
        _LOOP_LOG.append("under_test")
        return loop

    return counting_factory


def install_loop(loop_name: str, policy: str = "default") -> None:
    """Make every loop the test suite builds through the public API the loop
    under test, and count every loop built (see the module docstring)."""
    import asyncio
    from asyncio import base_events, unix_events

    factory = _loop_factory_for(loop_name)

    original_init = base_events.BaseEventLoop.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if not getattr(_in_factory, "active", False):
            name = type(self).__qualname__
            _LOOP_COUNTS[f"{type(self).__module__}.{name} (not via factory)"] += 1
            _LOOP_LOG.append(name)
        original_init(self, *args, **kwargs)

    base_events.BaseEventLoop.__init__ = counting_init  # type: ignore[method-assign]

    unix_events._UnixDefaultEventLoopPolicy._loop_factory = staticmethod(factory)
    stand_in = _selector_loop_stand_in(unix_events.SelectorEventLoop, factory)
    asyncio.SelectorEventLoop = stand_in  # type: ignore[misc]
    unix_events.SelectorEventLoop = stand_in  # type: ignore[misc]

    if policy == "native" and loop_name != "asyncio":
        if loop_name == "phaseloop":
            import phaseloop
            native: type = phaseloop.Policy
        else:
            import uvloop
            native = uvloop.EventLoopPolicy

        class CountingPolicy(native):  # type: ignore[misc, valid-type]
            def _loop_factory(self) -> Any:
                return factory()

        CountingPolicy.__name__ = CountingPolicy.__qualname__ = native.__name__
        asyncio.DefaultEventLoopPolicy = CountingPolicy  # type: ignore[misc]
        unix_events.DefaultEventLoopPolicy = CountingPolicy  # type: ignore[misc]
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    _adapt_close_loop()


def _selector_loop_stand_in(original: type, factory: Callable[..., Any]) -> type:
    """A stand-in for asyncio.SelectorEventLoop: calling it builds the loop
    under test, while isinstance/issubclass still answer for the real class,
    so a test that checks a loop's type (test_runners checks that
    asyncio.EventLoop makes a SelectorEventLoop) sees what it would see
    without this harness."""

    class StandInMeta(type):
        def __call__(cls, selector: Any = None) -> Any:
            return factory(selector)

        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, original)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, original)

    return StandInMeta(original.__name__, (), {"__module__": original.__module__})


class _NoExecutorView:
    """Forwards everything to a loop, and reads `_default_executor` as None."""

    _default_executor = None

    def __init__(self, loop: Any) -> None:
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


def _adapt_close_loop() -> None:
    """Let test_utils.TestCase.close_loop close loops without `_default_executor`.

    The suite's cleanup helper (not a test) reads the private
    BaseEventLoop._default_executor of every loop it closes; phaseloop (and
    any loop not derived from BaseEventLoop) has no such attribute, so every
    test using the helper would error in its cleanup.  For such a loop this
    shuts the default executor down through the public
    shutdown_default_executor(), then runs the original helper on a view of
    the loop whose `_default_executor` is None (it then just closes the loop
    and waits for the child watcher's threads).
    """
    from test.test_asyncio import utils as test_utils

    original = test_utils.TestCase.close_loop

    def close_loop(loop: Any) -> None:
        if hasattr(loop, "_default_executor"):
            return original(loop)
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        return original(_NoExecutorView(loop))

    test_utils.TestCase.close_loop = staticmethod(close_loop)


def short_id(test_id: str) -> str:
    """'test.test_asyncio.test_locks.LockTests.test_x' -> 'test_locks.LockTests.test_x'."""
    return test_id[len(PACKAGE):] if test_id.startswith(PACKAGE) else test_id


def _class_key(test_id: str) -> str:
    """'test_events.EPollEventLoopTests.test_x' -> 'test_events.EPollEventLoopTests'."""
    return test_id.rsplit(".", 1)[0]


def _flatten(suite: Any) -> Iterator[Any]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def _loop_tag(kinds: Iterable[str]) -> str:
    """Which loops a test built: 'under_test', 'TestLoop', 'other' or 'none'."""
    kinds = set(kinds)
    if "under_test" in kinds:
        return "under_test"
    if "TestLoop" in kinds:
        return "TestLoop"
    if kinds:
        return "other"
    return "none"


class StreamingResult(unittest.TestResult):
    """A unittest result that writes one JSON line per test to `out` (flushed
    at once, so the parent still reads it if the worker dies) and arms a
    faulthandler watchdog of `timeout` seconds around each test."""

    _RANK = {"passed": 0, "skipped": 1, "expected_failure": 1,
             "unexpected_success": 2, "failed": 3, "error": 4}

    def __init__(self, out: Any, timeout: float) -> None:
        super().__init__()
        self.out = out
        self.timeout = timeout
        self.current: dict[str, Any] | None = None

    def emit(self, **event: Any) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def _detail(self, test: Any, err: Any) -> str:
        return self._exc_info_to_string(err, test)[-3000:]

    def _set(self, test: Any, outcome: str, detail: str = "") -> None:
        tid = short_id(test.id())
        cur = self.current
        if cur is None or cur["id"] != tid:
            # A class or module fixture (setUpClass, tearDownModule, ...).
            self.emit(event="end", id=tid, outcome=outcome, detail=detail,
                      loops="none", seconds=0.0)
            return
        if "outcome" not in cur or self._RANK[outcome] >= self._RANK[cur["outcome"]]:
            cur["outcome"] = outcome
            if detail:
                cur["detail"] = detail

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        tid = short_id(test.id())
        self.current = {"id": tid, "t0": time.monotonic(), "log": len(_LOOP_LOG)}
        self.emit(event="start", id=tid, t=time.time())
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def stopTest(self, test: Any) -> None:
        faulthandler.cancel_dump_traceback_later()
        cur = self.current
        if cur is not None:
            self.emit(event="end", id=cur["id"], outcome=cur.get("outcome", "passed"),
                      detail=cur.get("detail", ""),
                      loops=_loop_tag(_LOOP_LOG[cur["log"]:]),
                      seconds=round(time.monotonic() - cur["t0"], 3))
            self.emit(event="counts", counts=dict(_LOOP_COUNTS))
        self.current = None
        super().stopTest(test)

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self._set(test, "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._set(test, "failed", self._detail(test, err))

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._set(test, "error", self._detail(test, err))

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._set(test, "skipped", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, "expected_failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "unexpected_success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._set(test, "failed" if failed else "error",
                      f"[{subtest._subDescription()}] " + self._detail(test, err))


def run_worker(module: str, loop_name: str, policy: str, timeout: float,
               out_path: str, skip: set[str], all_variants: bool) -> int:
    """Run one test module on the loop under test, writing JSON lines to out_path."""
    install_loop(loop_name, policy)

    with open(out_path, "a", encoding="utf-8") as out:
        def emit(**event: Any) -> None:
            out.write(json.dumps(event) + "\n")
            out.flush()

        loader = unittest.TestLoader()
        suite = loader.loadTestsFromName(PACKAGE + module)
        dropped = dict(EXCLUDED_CLASSES)
        if not all_variants:
            dropped.update(DUPLICATE_CLASSES)
        tests = []
        for test in _flatten(suite):
            tid = short_id(test.id())
            if tid in skip or _class_key(tid) in dropped:
                continue
            tests.append(test)
        emit(event="plan", ids=[short_id(t.id()) for t in tests])
        result = StreamingResult(out, timeout)
        unittest.TestSuite(tests).run(result)
        emit(event="counts", counts=dict(_LOOP_COUNTS))
        emit(event="done")
    return 0


# --------------------------------------------------------------------------
# Parent side: one worker per module, restarted after a hang or a crash.

def run_module(module: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one module in worker processes; return its outcomes and loop counts."""
    outcomes: dict[str, dict[str, Any]] = {}
    counts: collections.Counter[str] = collections.Counter()
    notes: list[str] = []
    skip: set[str] = set()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="phaseloop-compat-") as tmp:
        for attempt in range(200):
            out_path = os.path.join(tmp, f"out{attempt}.jsonl")
            skip_path = os.path.join(tmp, f"skip{attempt}.txt")
            err_path = os.path.join(tmp, f"stderr{attempt}.txt")
            with open(skip_path, "w", encoding="utf-8") as f:
                f.write("\n".join(sorted(skip)))
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", module,
                   "--loop", args.loop, "--policy", args.policy,
                   "--timeout", str(args.timeout), "--out", out_path,
                   "--skip-file", skip_path]
            if args.all_variants:
                cmd.append("--all-variants")
            env = dict(os.environ, PYTHONFAULTHANDLER="1")
            with open(err_path, "w", encoding="utf-8") as err:
                proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        cwd=tmp)
                killed = _wait_with_watchdog(proc, out_path, args.timeout + 30)
            rc = proc.returncode
            started: dict[str, float] = {}
            done = False
            worker_counts: dict[str, int] = {}  # cumulative within one worker
            plan: list[str] = []
            if os.path.exists(out_path):
                with open(out_path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            ev = json.loads(line)
                        except ValueError:
                            continue
                        if ev["event"] == "plan":
                            plan = ev["ids"]
                        elif ev["event"] == "start":
                            started[ev["id"]] = time.time() - ev["t"]
                            skip.add(ev["id"])
                        elif ev["event"] == "end":
                            started.pop(ev["id"], None)
                            skip.add(ev["id"])
                            outcomes[ev["id"]] = {k: ev[k] for k in
                                                  ("outcome", "detail", "loops", "seconds")}
                        elif ev["event"] == "counts":
                            worker_counts = ev["counts"]
                        elif ev["event"] == "done":
                            done = True
            counts.update(worker_counts)
            with open(err_path, encoding="utf-8", errors="replace") as f:
                stderr_text = f.read()
            stderr_tail = stderr_text[-4000:]
            if done:
                if rc != 0:
                    notes.append(f"worker exited with {rc} after its last test")
                break
            if not started:
                # Died between tests (a class fixture, or TestCase.run before
                # startTest): blame the next planned test and go on.
                pending = [t for t in plan if t not in skip]
                if not pending:
                    # Import error, or a crash/hang after the last test.
                    if not plan or rc != 0:
                        outcomes.setdefault(module, {
                            "outcome": "crash" if rc and rc < 0 else "error",
                            "detail": f"worker rc={rc}\n{stderr_tail}",
                            "loops": "none", "seconds": 0.0})
                    notes.append(f"worker died outside a test (rc={rc})")
                    break
                started[pending[0]] = 0.0
                skip.add(pending[0])
            for tid, elapsed in started.items():
                # faulthandler's watchdog prints "Timeout (h:mm:ss)!" and exits 1.
                hung = killed or (rc == 1 and "Timeout (" in stderr_text)
                outcome = "timeout" if hung else "crash"
                outcomes[tid] = {"outcome": outcome,
                                 "detail": f"worker rc={rc} after {elapsed:.1f}s\n"
                                           f"{stderr_tail}",
                                 "loops": "unknown", "seconds": round(elapsed, 3)}
                notes.append(f"{tid}: {outcome} (rc={rc})")
    return {"outcomes": outcomes, "counts": dict(counts), "notes": notes,
            "seconds": round(time.monotonic() - t0, 1)}


def _wait_with_watchdog(proc: subprocess.Popen[bytes], out_path: str,
                        stall: float) -> bool:
    """Wait for proc; kill it if its output file has not grown for `stall`
    seconds (the faulthandler watchdog should have fired long before).
    Return True if it was killed here."""
    last_size, last_change = -1, time.monotonic()
    while True:
        try:
            proc.wait(timeout=0.5)
            return False
        except subprocess.TimeoutExpired:
            pass
        size = os.path.getsize(out_path) if os.path.exists(out_path) else 0
        now = time.monotonic()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > stall:
            proc.kill()
            proc.wait()
            return True


def summarize(module: str, res: dict[str, Any]) -> dict[str, int]:
    """Per-module counts of outcomes and of which loop the tests built."""
    c: collections.Counter[str] = collections.Counter()
    for info in res["outcomes"].values():
        o = info["outcome"]
        c["tests"] += 1
        c[{"passed": "passed", "skipped": "skipped", "failed": "failed",
           "expected_failure": "passed", "unexpected_success": "failed"}.get(o, "errors")] += 1
        if o in ("timeout", "crash"):
            c["hung_or_crashed"] += 1
        if o != "skipped":
            c[f"on_{info['loops']}"] += 1
    return {k: c[k] for k in ("tests", "passed", "failed", "errors", "skipped",
                              "hung_or_crashed", "on_under_test", "on_TestLoop",
                              "on_other", "on_none")}


def load_expected(path: str) -> dict[str, str]:
    """Read a list of expected failures: 'test_id  # reason' per line ('*' globs allowed)."""
    expected: dict[str, str] = {}
    if not os.path.exists(path):
        return expected
    with open(path, encoding="utf-8") as f:
        for line in f:
            body, _, reason = line.partition("#")
            body = body.strip()
            if body:
                expected[body] = reason.strip()
    return expected


def _listed(tid: str, expected: dict[str, str]) -> str | None:
    if tid in expected:
        return tid
    for pattern in expected:
        if "*" in pattern and fnmatch.fnmatchcase(tid, pattern):
            return pattern
    return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loop", choices=LOOPS, default="phaseloop")
    p.add_argument("--modules", help="comma-separated test_asyncio modules "
                   "(default: all included modules)")
    p.add_argument("--json", help="write results (test id -> outcome, and more) here")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per test")
    p.add_argument("--check", action="store_true",
                   help="exit 1 on any failure not in --expected")
    p.add_argument("--expected", default=os.path.join(
        HERE, "expected_failures-%d.%d.txt" % sys.version_info[:2]),
        help="the expected failures (default: this Python version's list)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="modules run at once")
    p.add_argument("--policy", choices=("default", "native"), default="default",
                   help="default: asyncio's Unix policy with its loop factory "
                   "replaced; native: phaseloop.Policy / uvloop.EventLoopPolicy")
    p.add_argument("--all-variants", action="store_true",
                   help="also run the Poll/Select selector and extra child-watcher "
                   "classes (DUPLICATE_CLASSES)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="print each failing test's last traceback line")
    p.add_argument("--list", action="store_true", help="print modules and exclusions")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--skip-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        skip: set[str] = set()
        if args.skip_file and os.path.exists(args.skip_file):
            with open(args.skip_file, encoding="utf-8") as f:
                skip = {line.strip() for line in f if line.strip()}
        return run_worker(args.worker, args.loop, args.policy, args.timeout,
                          args.out, skip, args.all_variants)

    if args.list:
        print("modules:", ", ".join(MODULES))
        for table in (EXCLUDED_MODULES, EXCLUDED_CLASSES, DUPLICATE_CLASSES):
            for name, reason in table.items():
                print(f"  excluded {name}: {reason}")
        return 0

    if args.modules:
        modules = [m if m.startswith("test_") else f"test_{m}"
                   for m in args.modules.split(",") if m]
    else:
        modules = list(MODULES)
    for m in modules:
        if m in EXCLUDED_MODULES:
            print(f"note: {m} is left out by default: {EXCLUDED_MODULES[m]}")

    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {m: pool.submit(run_module, m, args) for m in modules}
        for m in modules:
            results[m] = futures[m].result()
            s = summarize(m, results[m])
            print(f"{m:22} passed {s['passed']:4}  failed {s['failed']:3}  "
                  f"errors {s['errors']:3}  skipped {s['skipped']:3}  "
                  f"(ran on: loop under test {s['on_under_test']}, TestLoop "
                  f"{s['on_TestLoop']}, other stdlib loop {s['on_other']}, "
                  f"no loop {s['on_none']})  "
                  f"{results[m]['seconds']:.0f}s", flush=True)
            for note in results[m]["notes"]:
                print(f"    note: {note}")
    wall = time.monotonic() - t0

    outcomes = {tid: info["outcome"] for m in modules
                for tid, info in results[m]["outcomes"].items()}
    counts: collections.Counter[str] = collections.Counter()
    for m in modules:
        counts.update(results[m]["counts"])
    total = collections.Counter(outcomes.values())
    print(f"\n{args.loop}: {len(outcomes)} tests in {wall:.0f}s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    print("loops built:")
    for kind, n in sorted(counts.items()):
        print(f"  {n:6}  {kind}")

    status = 0
    if args.loop == "phaseloop" and not any(
            k.startswith("phaseloop") for k in counts):
        print("FATAL: no phaseloop.Loop was built; the patching did not take",
              file=sys.stderr)
        status = 2

    bad = sorted(t for t, o in outcomes.items() if o in BAD_OUTCOMES)
    if args.verbose or args.check:
        expected = load_expected(args.expected) if args.check else {}
        unlisted = [t for t in bad if _listed(t, expected) is None]
        for t in (unlisted if args.check else bad):
            info = next(r["outcomes"][t] for r in results.values() if t in r["outcomes"])
            lines = [ln for ln in info["detail"].strip().splitlines() if ln.strip()]
            # A traceback ends with the exception; a timeout/crash starts with rc.
            shown = (lines[0] if info["outcome"] in ("timeout", "crash") else
                     lines[-1]) if lines else ""
            print(f"  {info['outcome'].upper():8} {t}: {shown[:200]}")
        if args.check:
            listed_now_pass = sorted(
                t for t, o in outcomes.items()
                if o not in BAD_OUTCOMES and o != "skipped" and t in expected)
            for t in listed_now_pass:
                print(f"  listed in {os.path.basename(args.expected)} but {outcomes[t]}: {t}")
            print(f"check: {len(unlisted)} unexpected failure(s), "
                  f"{len(bad) - len(unlisted)} expected, "
                  f"{len(listed_now_pass)} listed but passing")
            if unlisted:
                status = status or 1

    if args.json:
        data = {
            "loop": args.loop,
            "policy": args.policy,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "seconds": round(wall, 1),
            "outcomes": outcomes,
            "modules": {m: {**summarize(m, results[m]), "seconds": results[m]["seconds"],
                            "notes": results[m]["notes"]} for m in modules},
            "loop_counts": dict(counts),
            "test_loops": {tid: info["loops"] for m in modules
                           for tid, info in results[m]["outcomes"].items()},
            "seconds_per_test": {tid: info["seconds"] for m in modules
                                 for tid, info in results[m]["outcomes"].items()},
            "details": {tid: info["detail"] for m in modules
                        for tid, info in results[m]["outcomes"].items()
                        if info["outcome"] in BAD_OUTCOMES},
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
