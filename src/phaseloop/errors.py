"""Process-wide error hooks: Node's ``uncaughtException`` and ``unhandledRejection``.

Register handlers, as ``process.on(...)`` in Node; registering takes effect at
once::

    from phaseloop import errors

    @errors.on_uncaught_exception
    def crashed(exc, context):
        log.critical("uncaught %r", exc)
        sys.exit(1)                # Node's process.exit(1): exit 1 after the loop's shutdown

    @errors.on_unhandled_rejection
    def rejected(exc, context):
        log.error("task %r failed and nobody awaited it", context["task"])

    errors.off(crashed)            # unregister (every on_* returns the function itself)
    errors.install("strict")       # optional: exit 1 after the handlers (Node >= 15)
    phaseloop.run(main())

A handler is called as ``fn(exception, context)``; ``context`` is a dict like
asyncio's exception-handler context (``message``, ``exception``, and for a
rejection the ``task`` or ``future``). Each ``on_*`` function returns the
handler (so it works as a decorator and the name keeps the function);
``off(fn)`` unregisters it.

*Uncaught exception*: an exception that escapes a loop callback (call_soon,
timers, I/O and protocol callbacks, immediates, signal handlers), a thread
(``threading.excepthook``) or the main program (``sys.excepthook``).

*Unhandled rejection*: a Task (or a future made by ``loop.create_future()``
on a phaseloop loop) that failed with nobody retrieving the exception —
reported at the end of the loop iteration in which it failed (on phaseloop,
in that iteration's check phase; on other loops, after the callbacks already
queued), not only when it is garbage collected as asyncio does. If the
exception is retrieved later, the ``on_rejection_handled`` handlers run
(Node's ``rejectionHandled``).

Modes (the first ``on_*`` call installs "log" unless ``install`` chose one):

- ``"log"``: handlers run, then the loop's default exception handler logs an
  uncaught exception (a rejection only when no handler is registered) and the
  program goes on — what Node does once a handler is registered.
- ``"strict"`` (Node >= 15 without a handler): handlers run, then the loop
  stops by raising ``SystemExit(1)`` out of it, so ``asyncio.run``/
  ``phaseloop.run`` do their normal shutdown (tasks cancelled, async
  generators and the executor shut down, and on phaseloop every transport
  closed) and the process exits with status 1.

A handler that calls ``sys.exit(n)`` (raises ``SystemExit``) ends the program
with status ``n``, in either mode: the handlers after it do not run, and the
loop stops and shuts down as in strict mode. From the main program's
``sys.excepthook`` the process exits with ``n`` at once (after flushing and
the ``atexit`` functions); from a thread, the hooked loops that run stop with
it (with none running, the process exits at once). A handler that raises
anything else is reported on stderr and never re-enters the hooks.
Loops are hooked when made after the first registration or ``install()``
(through ``phaseloop``'s factories or the current event loop policy), when
running at that moment, or with ``errors.attach(loop)``.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
import traceback
import weakref
from typing import Any, Callable

from .factory import on_new_loop

__all__ = ["attach", "install", "mode", "off", "on_rejection_handled", "on_uncaught_exception",
           "on_unhandled_rejection", "report_uncaught", "uninstall"]

Handler = Callable[[BaseException, dict], Any]

_uncaught: list[Handler] = []
_rejection: list[Handler] = []
_handled: list[Handler] = []
_mode: str | None = None
_previous_sys_hook = None
_previous_thread_hook = None
_policy_patched: Any = None
_in_handler = threading.local()


def _register(handlers: list[Handler], fn: Handler) -> Handler:
    if not callable(fn):
        raise TypeError(f"handler must be callable, got {type(fn).__name__}")
    handlers.append(fn)
    if _mode is None:
        install("log")            # as process.on(...): registering is enough
    return fn


def on_uncaught_exception(fn: Handler) -> Handler:
    """Call fn(exc, context) for every uncaught exception, from now on.
    Returns fn (a decorator); ``off(fn)`` unregisters it."""
    return _register(_uncaught, fn)


def on_unhandled_rejection(fn: Handler) -> Handler:
    """Call fn(exc, context) for every failed task nobody retrieved, from now
    on. Returns fn (a decorator); ``off(fn)`` unregisters it."""
    return _register(_rejection, fn)


def on_rejection_handled(fn: Handler) -> Handler:
    """Call fn(exc, context) when a reported rejection is retrieved later.
    Returns fn (a decorator); ``off(fn)`` unregisters it."""
    return _register(_handled, fn)


def off(fn: Handler) -> bool:
    """Unregister a handler from every hook it was registered on (Node's
    ``process.off``); False if it was not registered. The mode stays."""
    found = False
    for handlers in (_uncaught, _rejection, _handled):
        while fn in handlers:
            handlers.remove(fn)
            found = True
    return found


def mode() -> str | None:
    """The installed mode ("log" or "strict"), or None."""
    return _mode


def _call_handlers(handlers: list[Handler], exc: BaseException, context: dict) -> None:
    """Run the handlers in order. KeyboardInterrupt and a handler's SystemExit
    (``sys.exit(n)``: Node's ``process.exit(n)``) end the round and propagate;
    any other error of a handler is printed and the next handler runs."""
    if getattr(_in_handler, "active", False):
        return                       # a handler failed inside a handler: never loop
    _in_handler.active = True
    try:
        for fn in list(handlers):
            try:
                fn(exc, context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as handler_exc:   # noqa: B036 - reported, never re-raised
                print(f"phaseloop.errors: handler {fn!r} raised:", file=sys.stderr)
                traceback.print_exception(handler_exc, file=sys.stderr)
    finally:
        _in_handler.active = False


def report_uncaught(exc: BaseException, context: dict | None = None) -> None:
    """Call the uncaught-exception handlers for an error the caller has handled.

    For code that catches an error to keep serving (an HTTP server answering
    500) but still wants the process hooks to see it. Only the registered
    handlers run: no logging and no strict-mode exit.
    """
    ctx = dict(context or {})
    ctx.setdefault("message", "Uncaught exception")
    ctx["exception"] = exc
    _call_handlers(_uncaught, exc, ctx)


def _strict_exit(loop: asyncio.AbstractEventLoop | None,
                 exit_: SystemExit | None = None) -> None:
    """Close what the loop serves, then stop it with SystemExit (status 1,
    or the one a handler asked for)."""
    if loop is not None:
        closer = getattr(loop, "close_transports", None)   # a phaseloop loop
        if closer is not None:
            closer()
    raise exit_ if exit_ is not None else SystemExit(1)


def _call_loop_handlers(loop: asyncio.AbstractEventLoop, handlers: list[Handler],
                        exc: BaseException, context: dict) -> None:
    """The handlers, on the loop's thread: a handler's sys.exit(n) stops the
    loop the way strict mode does, with status n."""
    try:
        _call_handlers(handlers, exc, context)
    except SystemExit as exit_:
        _strict_exit(loop, exit_)


# ---- loops ------------------------------------------------------------------------


class _LoopHooks:
    """What attach() adds to one loop: exception handler, task factory and
    the end-of-iteration sweep for failed tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)    # the loop holds us; we must not hold it
        # Failed this iteration, held weakly: a loop that stops before the
        # sweep must not keep its failed tasks alive. One collected before the
        # sweep is still reported, by asyncio's "exception was never
        # retrieved" through exception_handler below.
        self.failed: list[weakref.ref] = []
        self.reported: weakref.WeakSet = weakref.WeakSet()  # reported, not yet retrieved
        # ids of reported futures, to silence asyncio's own report when one is
        # collected unretrieved (its weakref may be gone by then)
        self.reported_ids: set[int] = set()
        self.sweep_scheduled = False
        self.check_hook = None
        self.poll_timer = None
        self.previous_factory = loop.get_task_factory()
        loop.set_task_factory(self.task_factory)
        loop.set_exception_handler(self.exception_handler)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop_ref()

    # tasks: record failures as they happen
    def task_factory(self, loop, coro, **kwargs):
        if self.previous_factory is not None:
            task = self.previous_factory(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        task.add_done_callback(self.on_done)
        return task

    def on_done(self, fut: asyncio.Future) -> None:
        if fut.cancelled() or not getattr(fut, "_log_traceback", False):
            return
        self.failed.append(weakref.ref(fut))
        if not self.sweep_scheduled:
            self.sweep_scheduled = True
            immediate = getattr(self.loop, "call_immediate", None)
            (immediate or self.loop.call_soon)(self.sweep)

    def sweep(self) -> None:
        """End of the iteration: failures still unretrieved are rejections."""
        self.sweep_scheduled = False
        failed, self.failed = self.failed, []
        for ref in failed:
            fut = ref()
            if fut is not None and getattr(fut, "_log_traceback", False):
                self.reported.add(fut)
                self.reported_ids.add(id(fut))
                _report_rejection(self.loop, fut)
        if self.reported:
            self.watch_reported()

    # later retrieval of a reported rejection: rejectionHandled
    def watch_reported(self) -> None:
        add_check = getattr(self.loop, "add_check", None)
        if add_check is not None:
            if self.check_hook is None:
                self.check_hook = add_check(self.check_reported)
        elif self.poll_timer is None:
            self.poll_timer = self.loop.call_later(0.1, self.check_reported)

    def check_reported(self) -> None:
        self.poll_timer = None
        for fut in list(self.reported):
            if not getattr(fut, "_log_traceback", True):
                self.reported.discard(fut)
                self.reported_ids.discard(id(fut))
                exc = fut._exception
                _call_loop_handlers(self.loop, _handled, exc,
                                    _future_context(fut, exc, "rejection handled"))
        if self.reported:
            if self.check_hook is None:
                self.poll_timer = self.loop.call_later(0.1, self.check_reported)
        elif self.check_hook is not None:
            self.check_hook.cancel()
            self.check_hook = None

    def exception_handler(self, loop, context: dict) -> None:
        exc = context.get("exception")
        fut = context.get("future") or context.get("task")
        if fut is not None:
            # asyncio's "exception was never retrieved", at garbage collection.
            if id(fut) in self.reported_ids:
                self.reported_ids.discard(id(fut))
                return
            if exc is not None and _rejection:
                _call_loop_handlers(loop, _rejection, exc, context)
                if _mode == "strict":
                    _strict_exit(loop)
        elif exc is not None and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
            _call_loop_handlers(loop, _uncaught, exc, context)
            if _mode == "strict":
                loop.default_exception_handler(context)
                _strict_exit(loop)
        loop.default_exception_handler(context)


def _future_context(fut: asyncio.Future, exc: BaseException, message: str) -> dict:
    key = "task" if isinstance(fut, asyncio.Task) else "future"
    return {"message": message, "exception": exc, key: fut}


def _report_rejection(loop: asyncio.AbstractEventLoop, fut: asyncio.Future) -> None:
    exc = fut._exception           # not exception(): that would count as retrieving it
    context = _future_context(fut, exc, "Unhandled rejection: task exception was not retrieved")
    _call_loop_handlers(loop, _rejection, exc, context)
    if _mode == "strict":
        loop.default_exception_handler(context)
        _strict_exit(loop)
    elif not _rejection:
        loop.default_exception_handler(context)


_hooks_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopHooks]" = \
    weakref.WeakKeyDictionary()


def attach(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """Hook a loop into the handlers (done for you for loops made after install())."""
    if loop not in _hooks_by_loop:
        _hooks_by_loop[loop] = _LoopHooks(loop)
    return loop


def _attach_new_loop(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """Run for every loop phaseloop.new_event_loop makes (a factory hook)
    and every loop the patched policy makes."""
    return attach(loop) if _mode is not None else loop


on_new_loop(_attach_new_loop)


# ---- threads and the main program ----------------------------------------------------


def _sys_hook(exc_type, exc, tb) -> None:
    if not issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
        try:
            _call_handlers(_uncaught, exc, {"message": "Uncaught exception in the main program",
                                            "exception": exc})
        except SystemExit as exit_:
            # The program is ending with this exception anyway (status 1):
            # a handler's sys.exit(n) picks the status, as process.exit(n).
            _exit_process(exit_)
    (_previous_sys_hook or sys.__excepthook__)(exc_type, exc, tb)


def _thread_hook(args) -> None:
    if args.exc_type is not SystemExit:
        try:
            _call_handlers(_uncaught, args.exc_value, {
                "message": f"Uncaught exception in thread "
                           f"{args.thread.name if args.thread else '?'}",
                "exception": args.exc_value, "thread": args.thread})
        except SystemExit as exit_:
            if not _stop_main_loops(exit_):
                _exit_process(exit_, run_atexit=False)
            return
    (_previous_thread_hook or threading.__excepthook__)(args)
    if _mode == "strict" and args.exc_type is not SystemExit:
        _stop_main_loops(SystemExit(1))


def _exit_process(exit_: SystemExit, *, run_atexit: bool = True) -> None:
    """End the process now with the status of ``exit_`` (the rules of
    SystemExit: None is 0, an int is itself, anything else is printed and 1)."""
    code = exit_.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    if run_atexit:
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


def _stop_main_loops(exit_: SystemExit) -> bool:
    """From another thread: stop the running hooked loops with ``exit_``
    after closing their transports; False if none was running."""
    stopped = False
    for loop in list(_hooks_by_loop):
        if loop.is_running():
            loop.call_soon_threadsafe(_strict_exit, loop, exit_)
            stopped = True
    return stopped


# Python 3.14 deprecates asyncio.get_event_loop_policy(); its private twin
# reads the same policy without warning (asyncio.run still uses it).
_get_policy = getattr(asyncio.events, "_get_event_loop_policy", None) or \
    asyncio.get_event_loop_policy


def install(mode: str = "log") -> None:
    """Route uncaught exceptions and unhandled rejections to the handlers.

    ``mode`` is "log" (report and go on) or "strict" (report, shut down, exit 1).
    Registering a handler calls ``install("log")`` when no mode is set.
    Installs sys.excepthook and threading.excepthook (chaining the previous
    ones) and hooks the running loop, if any, and every loop made from now on.
    """
    global _mode, _previous_sys_hook, _previous_thread_hook, _policy_patched
    if mode not in ("log", "strict"):
        raise ValueError(f"mode must be 'log' or 'strict', not {mode!r}")
    _mode = mode
    if sys.excepthook is not _sys_hook:
        _previous_sys_hook = sys.excepthook
        sys.excepthook = _sys_hook
    if threading.excepthook is not _thread_hook:
        _previous_thread_hook = threading.excepthook
        threading.excepthook = _thread_hook
    policy = _get_policy()
    if _policy_patched is not policy:
        factory = policy.new_event_loop
        policy.new_event_loop = lambda: _attach_new_loop(factory())   # type: ignore[method-assign]
        _policy_patched = policy
    try:
        attach(asyncio.get_running_loop())
    except RuntimeError:
        pass


def uninstall() -> None:
    """Undo install(): restore the previous hooks (loops already hooked stay hooked)."""
    global _mode, _policy_patched
    _mode = None
    if sys.excepthook is _sys_hook:
        sys.excepthook = _previous_sys_hook or sys.__excepthook__
    if threading.excepthook is _thread_hook:
        threading.excepthook = _previous_thread_hook or threading.__excepthook__
    if _policy_patched is not None:
        try:
            del _policy_patched.new_event_loop
        except AttributeError:
            pass
        _policy_patched = None
