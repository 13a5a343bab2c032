"""add_signal_handler / remove_signal_handler and Ctrl-C.

In-process tests use SIGUSR1 sent with os.kill(os.getpid(), ...).  Ctrl-C
is tested in child interpreters (sys.executable -c ...) so that a
KeyboardInterrupt never reaches pytest: the parent sends SIGINT once the
child's loop is blocked in poll and checks how the child ended.
"""
import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

WAIT = 5.0


def run_until(loop, fut):
    return loop.run_until_complete(asyncio.wait_for(fut, WAIT))


def raised_type(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        return type(exc)
    return None


@pytest.fixture(autouse=True)
def restore_sigusr1():
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


# ---- handlers ---------------------------------------------------------------


def test_handler_runs_on_loop_with_args(loop):
    fut = loop.create_future()
    loop_thread = threading.get_ident()

    def on_signal(tag, number):
        fut.set_result((tag, number, threading.get_ident(),
                        asyncio.get_running_loop() is loop))

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1", 10)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    tag, number, thread, on_this_loop = run_until(loop, fut)
    assert (tag, number) == ("usr1", 10)
    assert thread == loop_thread
    assert on_this_loop
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_signal_from_another_thread_wakes_loop_in_poll(loop):
    """The loop waits on a far timer; the signal alone must wake it."""
    fut = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, lambda: fut.set_result(time.monotonic()))

    def send():
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGUSR1)

    sender = threading.Thread(target=send)
    far = loop.call_later(30, fut.cancel)
    sender.start()
    started = time.monotonic()
    try:
        handled_at = run_until(loop, fut)
    finally:
        sender.join()
        far.cancel()
    assert handled_at - started < 2.0
    loop.remove_signal_handler(signal.SIGUSR1)


def test_handler_exception_goes_to_exception_handler(loop):
    """A signal handler is a loop callback: its exception does not escape run_*."""
    contexts = []
    done = loop.create_future()

    def on_signal():
        loop.call_soon(done.set_result, None)
        raise ZeroDivisionError("in a signal handler")

    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_until(loop, done)
    assert [type(c["exception"]) for c in contexts] == [ZeroDivisionError]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_readding_handler_replaces_it(loop):
    fut = loop.create_future()
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, fut.set_result, "second")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    assert run_until(loop, fut) == "second"
    assert calls == []
    loop.remove_signal_handler(signal.SIGUSR1)


def test_handler_runs_for_each_signal(loop):
    count = []
    done = loop.create_future()

    def on_signal():
        count.append(1)
        if len(count) < 3:
            os.kill(os.getpid(), signal.SIGUSR1)
        elif not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_until(loop, done)
    assert len(count) == 3
    loop.remove_signal_handler(signal.SIGUSR1)


def test_remove_signal_handler_returns_bool(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_removed_handler_restores_default_disposition(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_removed_sigint_handler_restores_keyboard_interrupt(loop):
    before = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_removed_handler_is_not_called(loop):
    calls = []
    # Keep the process alive when SIGUSR1 arrives with no loop handler.
    loop.add_signal_handler(signal.SIGUSR1, calls.append, 1)
    loop.remove_signal_handler(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, lambda *a: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.02))
    assert calls == []


# ---- errors -----------------------------------------------------------------


@pytest.mark.parametrize("sig", [0, -1, 1000, signal.NSIG])
def test_invalid_signal_number_raises_value_error(loop, sig):
    with pytest.raises(ValueError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", ["SIGUSR1", 1.5, None])
def test_non_int_signal_raises_like_asyncio(loop, ref_loop, sig):
    expected = raised_type(ref_loop.add_signal_handler, sig, lambda: None)
    assert expected is not None
    assert raised_type(loop.add_signal_handler, sig, lambda: None) is expected
    expected = raised_type(ref_loop.remove_signal_handler, sig)
    assert raised_type(loop.remove_signal_handler, sig) is expected


@pytest.mark.parametrize("name", ["SIGKILL", "SIGSTOP"])
def test_uncatchable_signal_raises_runtime_error(loop, name):
    sig = getattr(signal, name)
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False


def test_coroutine_handler_raises_type_error(loop, ref_loop):
    async def handler():
        pass

    expected = raised_type(ref_loop.add_signal_handler, signal.SIGUSR1, handler)
    assert expected is TypeError
    assert raised_type(loop.add_signal_handler, signal.SIGUSR1, handler) is TypeError


def test_closed_loop_raises_runtime_error(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)


def _error_type_in_thread(fn, *args):
    result = []

    def target():
        result.append(raised_type(fn, *args))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(WAIT)
    assert result, "thread did not finish"
    return result[0]


def test_non_main_thread_raises_like_asyncio(loop, ref_loop):
    expected = _error_type_in_thread(ref_loop.add_signal_handler,
                                     signal.SIGUSR1, lambda: None)
    assert expected in (ValueError, RuntimeError)
    got = _error_type_in_thread(loop.add_signal_handler, signal.SIGUSR1, lambda: None)
    assert got is expected
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# ---- Ctrl-C in a child interpreter -------------------------------------------


def _read_line(proc, timeout):
    """One line of the child's (unbuffered, binary) stdout, or fail."""
    data = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def _interrupt_child(code, settle=0.2):
    """Start `code`, wait for it to print "ready", SIGINT it.

    Returns (monotonic time of the send, the child's remaining stdout,
    stderr, exit status).
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )
    try:
        line = _read_line(proc, 10)
        assert line == "ready\n", (line, proc.poll())
        time.sleep(settle)  # let the child block in poll
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return sent_at, out.decode(), err.decode(), proc.returncode


RUN_UNTIL_COMPLETE_CHILD = textwrap.dedent("""
    import asyncio, sys, time
    import phaseloop
    factory = {"phaseloop": phaseloop.new_event_loop,
               "asyncio": asyncio.new_event_loop}[%r]
    loop = factory()

    def ready():
        print("ready", flush=True)

    loop.call_soon(ready)
    try:
        loop.run_until_complete(asyncio.sleep(30))
    except KeyboardInterrupt:
        print(repr(time.monotonic()), flush=True)
        sys.exit(0)
    print("not interrupted", flush=True)
    sys.exit(3)
""")


@pytest.mark.parametrize("loop_kind", ["asyncio", "phaseloop"])
def test_ctrl_c_interrupts_run_until_complete_within_100ms(loop_kind):
    sent_at, out, err, status = _interrupt_child(RUN_UNTIL_COMPLETE_CHILD % loop_kind)
    assert status == 0, (out, err)
    caught_at = float(out.strip())
    # CLOCK_MONOTONIC is one clock for the whole machine.
    assert sent_at <= caught_at < sent_at + 0.1, caught_at - sent_at


RUNNER_CHILD = textwrap.dedent("""
    import asyncio, signal, sys
    import phaseloop

    async def main():
        print("ready", flush=True)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            print("main cancelled", flush=True)
            raise
        print("main finished", flush=True)

    how = %r
    if how == "asyncio.run":
        asyncio.run(main())
    elif how == "asyncio.Runner":
        with asyncio.Runner(loop_factory=phaseloop.new_event_loop) as runner:
            runner.run(main())
    elif how == "phaseloop.run":
        phaseloop.run(main())
    elif how == "Policy":
        asyncio.set_event_loop_policy(phaseloop.Policy())
        asyncio.run(main())
    print("run returned", flush=True)
""")


@pytest.mark.parametrize(
    "how", ["asyncio.run", "asyncio.Runner", "phaseloop.run", "Policy"])
def test_ctrl_c_in_runner_cancels_main(how):
    """Runner turns SIGINT into main's cancellation, then KeyboardInterrupt."""
    _, out, err, status = _interrupt_child(RUNNER_CHILD % how)
    assert out == "main cancelled\n", (out, err)
    assert "KeyboardInterrupt" in err
    # An unhandled KeyboardInterrupt ends the interpreter with SIGINT.
    assert status == -signal.SIGINT, (status, err)


SIGINT_HANDLER_CHILD = textwrap.dedent("""
    import asyncio, signal, sys
    import phaseloop
    factory = {"phaseloop": phaseloop.new_event_loop,
               "asyncio": asyncio.new_event_loop}[%r]
    loop = factory()
    done = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, done.set_result, "handled")
    loop.call_soon(print, "ready")
    loop.call_soon(sys.stdout.flush)
    print(loop.run_until_complete(asyncio.wait_for(done, 10)), flush=True)
    loop.close()
""")


@pytest.mark.parametrize("loop_kind", ["asyncio", "phaseloop"])
def test_sigint_handler_replaces_keyboard_interrupt(loop_kind):
    _, out, err, status = _interrupt_child(SIGINT_HANDLER_CHILD % loop_kind)
    assert (out, status) == ("handled\n", 0), err
