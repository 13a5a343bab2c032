"""A per-test time limit that ends a hung test for real.

pytest-timeout's signal method raises a test failure from SIGALRM.  That
works where the test waits in Python or in a loop's poll, but an event
loop's callback catches the failure like any other exception and the loop
goes on waiting (asyncio's own loop, hung in epoll_wait on 3.13.0 by
CPython gh-130145, did exactly that); its thread method ends the run at once
but keeps a timer thread alive in every test, which makes the process
multi-threaded (fork-based code then behaves differently).

So the timer is pytest-timeout's, armed from its `timeout` setting and
markers, with one more stage: the first SIGALRM fails the test as before,
and if the test is still running GRACE seconds later, every thread's stack
is dumped and the process exits 1.  conftest.py registers these hooks.
"""
import faulthandler
import os
import signal
import sys

import pytest

#: Seconds between the failure raised in the test and the hard exit (the
#: ini option timeout_grace changes it).
GRACE = 15.0


def pytest_addoption(parser):
    parser.addini("timeout_grace", "seconds a timed-out test may still run before the "
                  "process exits", default=str(GRACE))


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    if settings.method != "signal" or settings.timeout <= 0:
        return None                     # pytest-timeout's own handling
    fired = []
    grace = float(item.config.getini("timeout_grace"))

    def on_alarm(signum, frame):
        __tracebackhide__ = True
        if not fired:
            fired.append(True)
            signal.setitimer(signal.ITIMER_REAL, grace)
            pytest.fail(f"Timeout: {item.nodeid} ran past its {settings.timeout:g} s limit")
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)     # write to the real stderr
        sys.stderr.write(f"\n+++ {item.nodeid} is still running {grace:g} s after its "
                         f"timeout failed it: every thread's stack, then exit 1 +++\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(1)

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True
