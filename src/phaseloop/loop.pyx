# cython: language_level=3, embedsignature=True
# loop.pyx — phaseloop's asyncio event loop over the C phase engine.
#
# The C core (csrc/) runs the phases and owns no Python object; this module
# owns every Python object and its references. See docs/architecture.md.
#
# One extension module, in parts this file includes: handles.pxi (Handle,
# TimerHandle, PhaseHook), io.pxi (add_reader/add_writer), signals.pxi,
# sockets.pxi (the sock_* waits), transports/ (the transports: base,
# stream, tls, datagram, pipe, subprocess) and endpoints/ (the loop methods
# that make them: server, tcp, unix, tls, udp, pipes, process).
#
# What is a cdef method and what is a mixin:
# - _Loop (below) is a cdef class holding the C core's loop (_core) and
#   every method that touches the core or runs on a hot path: scheduling,
#   running, timers, hooks, fd watching, sock_*, the exception handler.
#   Other cdef code calls these as C methods.
# - The endpoint methods (create_connection, create_server,
#   create_datagram_endpoint, connect_*_pipe, subprocess_*, start_tls...)
#   are `async def` Python code that runs once per connection, not per
#   event. They live in plain classes (_TCPMethods, _ServerMethods...) in
#   endpoints/, which Loop (at the end of this file) mixes in; they reach the
#   loop through its Python API and the module's cdef functions, and where
#   they need its C state they take it as `_Loop` with a checked cast.
# - Loop = _Loop + the endpoint mixins + asyncio.AbstractEventLoop.

cimport cython
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.weakref cimport PyWeakref_NewRef
from libc.stdint cimport uint64_t, int64_t
from libc.math cimport isnan, isinf, ceil, floor

from phaseloop.core cimport *

import asyncio
import concurrent.futures
import errno
import functools
import os
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref

from asyncio import events as _events
from asyncio import futures as _futures
from asyncio import tasks as _tasks
from asyncio.log import logger

try:
    from asyncio.format_helpers import _format_callback_source
except ImportError:  # pragma: no cover - every supported Python has it
    _format_callback_source = None

cdef int _DEBUG_STACK_DEPTH = 10
cdef object _get_running_loop = _events._get_running_loop
cdef object _set_running_loop = _events._set_running_loop
cdef object _isfuture = _futures.isfuture
cdef object _Future = _futures.Future
cdef object _Task = _tasks.Task
cdef object _get_ident = threading.get_ident
# From 3.14 create_task() hands every keyword, name= included, to the task
# factory (CPython gh-128306).
cdef bint _FACTORY_TAKES_NAME = sys.version_info >= (3, 14)
# From 3.12 a custom exception handler runs in the context of the task,
# future or handle that failed (CPython gh-96704).
cdef bint _HANDLER_IN_FAILING_CONTEXT = sys.version_info >= (3, 12)

BACKEND = pl_backend_name().decode()

# Set by phaseloop.cluster.share_servers() in a worker: an async
# provider(host, port, backlog) -> listening socket that create_server(host,
# port) uses instead of binding (the primary's socket, as in Node's cluster).
cdef object _server_socket_provider = None


def _set_server_socket_provider(provider):
    global _server_socket_provider
    _server_socket_provider = provider

include "handles.pxi"
include "io.pxi"
include "signals.pxi"
include "sockets.pxi"
include "transports/base.pxi"
include "transports/stream.pxi"
include "transports/tls.pxi"
include "transports/tls_records.pxi"
include "transports/datagram.pxi"
include "transports/pipe.pxi"
include "transports/subprocess.pxi"
include "endpoints/server.pxi"
include "endpoints/tcp.pxi"
include "endpoints/unix.pxi"
include "endpoints/tls.pxi"
include "endpoints/udp.pxi"
include "endpoints/pipes.pxi"
include "endpoints/process.pxi"


# ---- fork safety -----------------------------------------------------------

cdef object _live_loops = weakref.WeakSet()


def _mark_loops_forked():
    for lp in list(_live_loops):
        (<_Loop>lp)._forked = True


os.register_at_fork(after_in_child=_mark_loops_forked)


# ---- the hooks the core calls around its wait -----------------------------

cdef struct WaitState:
    PyThreadState *tstate
    void *owner          # the _Loop, borrowed: it owns this struct


cdef void _before_wait(pl_loop_t *l) noexcept:
    cdef WaitState *ws = <WaitState *>pl_loop_runtime_data(l)
    ws.tstate = PyEval_SaveThread()


cdef void _after_wait(pl_loop_t *l) noexcept:
    cdef WaitState *ws = <WaitState *>pl_loop_runtime_data(l)
    PyEval_RestoreThread(ws.tstate)
    ws.tstate = NULL


cdef void _on_interrupt(pl_loop_t *l) noexcept:
    """The wait was cut short by a signal: run Python's signal handlers now,
    so Ctrl-C raises KeyboardInterrupt out of run_* at once."""
    cdef WaitState *ws = <WaitState *>pl_loop_runtime_data(l)
    cdef _Loop loop = <_Loop>ws.owner
    try:
        PyErr_CheckSignals()
    except BaseException as exc:
        loop._stop_with(exc)


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The exception already stopped the loop.
            return
    _futures._get_loop(fut).stop()


cdef class _Loop:
    """The Cython part of phaseloop.Loop (which adds asyncio.AbstractEventLoop)."""
    cdef pl_loop_t *_core                 # the C core's loop (csrc/): NULL once closed
    cdef WaitState wait_state
    cdef readonly bint _closed
    cdef bint _forked
    cdef bint _debug
    cdef object _thread_id
    cdef unsigned long _thread_ident     # _thread_id as a C value, while running
    cdef object _fatal
    cdef object _exception_handler
    cdef object _task_factory
    cdef object _default_executor
    cdef bint _executor_shutdown_called
    cdef object _asyncgens
    cdef bint _asyncgens_shutdown_called
    cdef dict _fd_watchers
    cdef dict _signal_handlers
    cdef SignalWakeup _signal_wakeup
    cdef object _current_handle
    cdef char *_read_buf                  # one read buffer for every stream transport
    cdef _ByteWindow _tls_window          # TLS: a window on _read_buf (transports/tls.pxi)
    cdef dict _transports                 # fd -> weakref to its transport, as asyncio's
    cdef readonly dict _unix_server_paths # listening socket -> (path, inode) to unlink
    cdef readonly set _child_pidfds       # pidfds of children not yet reaped
    cdef public double slow_callback_duration

    def __cinit__(self, *args, **kwargs):
        cdef pl_runtime_t rt
        self.wait_state.tstate = NULL
        self.wait_state.owner = <void *>self
        rt.before_wait = _before_wait
        rt.after_wait = _after_wait
        rt.on_interrupt = _on_interrupt
        rt.data = <void *>&self.wait_state
        self._core = pl_loop_new(&rt)
        if self._core == NULL:
            err = errno_value()
            raise OSError(err, os.strerror(err))
        self._fd_watchers = {}
        self._signal_handlers = {}
        self._transports = {}
        self._unix_server_paths = {}
        self._child_pidfds = set()
        self._asyncgens = weakref.WeakSet()
        self.slow_callback_duration = 0.1
        self._debug = _events._is_debug_mode() if hasattr(_events, '_is_debug_mode') else \
            bool(sys.flags.dev_mode or (not sys.flags.ignore_environment
                                        and os.environ.get('PYTHONASYNCIODEBUG')))

    def __init__(self):
        _live_loops.add(self)

    def __dealloc__(self):
        free(self._read_buf)
        self._read_buf = NULL
        if self._core != NULL:
            self._release_all()
            pl_loop_free(self._core)
            self._core = NULL

    def __del__(self):
        if not self._closed:
            warnings.warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    def __repr__(self):
        return (f'<{type(self).__name__} running={self.is_running()} '
                f'closed={self._closed} debug={self._debug}>')

    # ---- checks ---------------------------------------------------------

    cdef inline int _check_closed(self) except -1:
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return 0

    cdef int _check_fork(self) except -1:
        if self._forked:
            raise RuntimeError(
                'this phaseloop event loop was created before os.fork() and cannot be '
                'used in the child process; create a new one with phaseloop.new_event_loop()')
        return 0

    cdef int _check_running(self) except -1:
        if self._thread_id is not None:
            raise RuntimeError('This event loop is already running')
        if _get_running_loop() is not None:
            raise RuntimeError('Cannot run the event loop while another loop is running')
        return 0

    cdef int _check_thread(self) except -1:
        if self._thread_id is None:
            return 0
        if _get_ident() != self._thread_id:
            raise RuntimeError(
                'Non-thread-safe operation invoked on an event loop other '
                'than the current one')
        return 0

    cdef int _check_callback(self, callback, str method) except -1:
        if not PyCallable_Check(callback):
            raise TypeError(
                f'a callable object was expected by {method}(), got {callback!r}')
        if self._debug and (asyncio.iscoroutine(callback)
                            or asyncio.iscoroutinefunction(callback)):
            raise TypeError(f'coroutines cannot be used with {method}()')
        return 0

    # ---- scheduling -------------------------------------------------------

    cdef Handle _new_handle(self, callback, tuple args, context):
        cdef Handle h = Handle.__new__(Handle)
        h._setup(self, callback, args, context)
        return h

    cdef inline void _push_ready(self, Handle h):
        _own(h)                 # the ready queue's reference
        pl_ready_push(self._core, &h.node)

    cdef Handle _call_soon(self, callback, tuple args, context):
        cdef Handle h = self._new_handle(callback, args, context)
        self._push_ready(h)
        return h

    def call_soon(self, callback, *args, context=None):
        """Run callback(*args) at the next drain of the ready queue."""
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_soon')
        return self._call_soon(callback, args, context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """call_soon from any thread; wakes the loop if it is waiting.

        From another thread while the loop runs, the callback is delivered
        in the next poll phase, among its I/O callbacks, as libuv delivers
        Node's thread-pool completions: a Task resumed by it (an awaited
        run_in_executor or asyncio.to_thread) sees call_immediate run before
        call_later(0). From the loop's own thread, or while the loop is not
        running, it is call_soon."""
        self._check_closed()
        self._check_callback(callback, 'call_soon_threadsafe')
        cdef Handle h = self._new_handle(callback, args, context)
        # Making the handle may run Python code (debug mode captures the
        # stack; a collection may run finalizers), and with it the loop's
        # thread, which may close the loop and free the core: check again.
        # From here to the wakeup nothing lets go of the GIL, which
        # serialises these pushes with the loop thread.
        self._check_closed()
        if self._thread_id is None or PyThread_get_thread_ident() == self._thread_ident:
            self._push_ready(h)
        else:
            _own(h)
            pl_poll_push(self._core, &h.node)
        pl_loop_wakeup(self._core)
        return h

    cdef Handle _new_queued_handle(self, callback, tuple args, context, str method):
        """The checks of a one-shot scheduling method, then its owned Handle,
        for the caller to push on its queue."""
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, method)
        cdef Handle h = self._new_handle(callback, args, context)
        _own(h)
        return h

    def call_pending(self, callback, *args, context=None):
        """Run callback(*args) in the pending phase of the next iteration:
        libuv's deferred I/O callbacks. For an I/O operation that completed
        at once but must be delivered as I/O is (phaseloop.streams hands a
        file read served from the page cache over this way), so its
        continuation sees call_immediate run before call_later(0)."""
        cdef Handle h = self._new_queued_handle(callback, args, context, 'call_pending')
        pl_pending_push(self._core, &h.node)
        return h

    def call_immediate(self, callback, *args, context=None):
        """Node's setImmediate: run callback(*args) in the check phase of
        this iteration (or the next, if called from the check phase)."""
        cdef Handle h = self._new_queued_handle(callback, args, context, 'call_immediate')
        pl_immediate_push(self._core, &h.node)
        return h

    cdef TimerHandle _schedule_timer(self, double when, uint64_t deadline,
                                     callback, tuple args, context):
        cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
        h._setup(self, callback, args, context)
        h._when = when
        pl_timer_init(&h.timer, _run_timer, <void *>h)
        if pl_timer_start(self._core, &h.timer, deadline) < 0:
            raise MemoryError('cannot grow the timer heap')
        _own(h)
        return h

    def call_later(self, delay, callback, *args, context=None):
        """Run callback(*args) once loop.time() has advanced by delay seconds.
        A negative delay is due at once; NaN is a ValueError."""
        if delay is None:
            raise TypeError('delay must not be None')
        cdef double d = delay
        cdef uint64_t now, deadline
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_later')
        if isnan(d):
            raise ValueError('delay must not be NaN')
        now = pl_clock_ns()
        if d <= 0:
            # Due now, but ordered among past timers as asyncio orders them.
            deadline = now - <uint64_t>(-d * 1e9) if -d * 1e9 < <double>now else 0
        elif d * 1e9 >= <double>(0xFFFFFFFFFFFFFFFF - now):
            deadline = 0xFFFFFFFFFFFFFFFF
        else:
            # One nanosecond over, so float rounding never makes it early.
            deadline = now + <uint64_t>floor(d * 1e9) + 1
        return self._schedule_timer(now * 1e-9 + d, deadline, callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Run callback(*args) once loop.time() >= when."""
        if when is None:
            raise TypeError('when cannot be None')
        cdef double w = when
        cdef uint64_t deadline
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_at')
        if isnan(w):
            raise ValueError('when must not be NaN')
        if w <= 0:
            deadline = 0
        elif w * 1e9 >= 1.8e19:
            deadline = 0xFFFFFFFFFFFFFFFF
        else:
            deadline = <uint64_t>ceil(w * 1e9)
        return self._schedule_timer(w, deadline, callback, args, context)

    def time(self):
        """The monotonic clock in seconds, with nanosecond resolution."""
        return pl_clock_ns() * 1e-9

    # ---- Node phase hooks -----------------------------------------------------

    cdef PhaseHook _add_hook(self, callback, str phase):
        self._check_closed()
        self._check_callback(callback, 'add_' + phase)
        cdef PhaseHook h = PhaseHook.__new__(PhaseHook)
        h._loop = self
        h._callback = callback
        h._context = PyContext_CopyCurrent()
        h._phase = phase
        pl_hook_init(&h.hook, _run_hook, <void *>h)
        _own(h)
        if phase == 'idle':
            pl_idle_start(self._core, &h.hook)
        elif phase == 'prepare':
            pl_prepare_start(self._core, &h.hook)
        else:
            pl_check_start(self._core, &h.hook)
        return h

    def add_idle(self, callback):
        """Call callback() once per iteration in the idle phase until the
        returned hook is cancelled. While any idle hook is active the poll
        phase does not block."""
        return self._add_hook(callback, 'idle')

    def add_prepare(self, callback):
        """Call callback() once per iteration, just before the poll phase."""
        return self._add_hook(callback, 'prepare')

    def add_check(self, callback):
        """Call callback() once per iteration in the check phase, after the
        immediates."""
        return self._add_hook(callback, 'check')

    # ---- running ---------------------------------------------------------------

    cdef void _stop_with(self, exc) noexcept:
        """A callback raised SystemExit/KeyboardInterrupt (or a signal
        handler raised): end the run after this callback and re-raise it."""
        if self._fatal is None:
            self._fatal = exc
        if self._core != NULL:
            pl_loop_break(self._core)

    cdef object _install_signal_wakeup(self):
        """In the main thread, route signals to the loop while it runs, so a
        signal that lands just before the wait still wakes it."""
        if threading.current_thread() is not threading.main_thread():
            return None
        self._ensure_signal_wakeup()
        try:
            return signal.set_wakeup_fd(self._signal_wakeup.wsock.fileno(),
                                        warn_on_full_buffer=False)
        except (ValueError, OSError):
            return None

    cdef _release_wakeup_fd(self):
        """Unset the process's wakeup fd if it is ours (main thread only)."""
        ours = self._signal_wakeup.wsock.fileno()
        try:
            current = signal.set_wakeup_fd(-1)
            if current != ours and current != -1:
                signal.set_wakeup_fd(current, warn_on_full_buffer=False)
        except (ValueError, OSError):
            pass

    cdef _restore_signal_wakeup(self, previous):
        if previous is None or self._signal_handlers:
            return
        try:
            signal.set_wakeup_fd(previous)
        except (ValueError, OSError):
            pass

    cdef object _run(self, pl_run_mode mode):
        cdef int rc
        self._check_closed()
        self._check_fork()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = _get_ident()
        self._thread_ident = PyThread_get_thread_ident()
        previous_wakeup = None
        try:
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            _set_running_loop(self)
            previous_wakeup = self._install_signal_wakeup()
            rc = pl_loop_run(self._core, mode)
        finally:
            self._thread_id = None
            _set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)
            self._restore_signal_wakeup(previous_wakeup)
        if rc == -errno.ECHILD:
            self._forked = True
            self._check_fork()
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        if self._fatal is not None:
            exc = self._fatal
            self._fatal = None
            raise exc

    def run_forever(self):
        """Run iterations until stop() is called."""
        self._run(PL_RUN_DEFAULT)

    def run_once(self, timeout=None):
        """Run one iteration, waiting at most `timeout` seconds for I/O
        (None: until the next timer or I/O event). For embedding."""
        cdef double t
        if timeout is None:
            pl_loop_set_wait_cap(self._core, -1)
            self._run(PL_RUN_ONCE)
            return
        t = timeout
        if isnan(t) or t < 0:
            raise ValueError(f'timeout must be a non-negative number, not {timeout!r}')
        if t == 0:
            self._run(PL_RUN_NOWAIT)
            return
        pl_loop_set_wait_cap(self._core, <int64_t>(t * 1e9) if t < 9e9 else 9 * 10**18)
        try:
            self._run(PL_RUN_ONCE)
        finally:
            if self._core != NULL:
                pl_loop_set_wait_cap(self._core, -1)

    def run_until_complete(self, future):
        """Run until the future (or coroutine, wrapped in a Task) is done
        and return its result."""
        self._check_closed()
        self._check_fork()
        self._check_running()
        new_task = not _isfuture(future)
        future = _tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception escaping here is raised to the caller, not logged.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The caller gets the exception; do not log it as never retrieved.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def stop(self):
        """Stop run_forever after the current iteration."""
        if self._core != NULL:
            pl_loop_stop(self._core)

    cpdef bint is_running(self):
        return self._thread_id is not None

    def is_closed(self):
        return self._closed

    cdef _release_all(self):
        """Drop every queued handle, armed timer, hook and fd watcher."""
        cdef pl_callback_t *cb
        cdef pl_timer_t *t
        cdef pl_hook_t *hk
        while True:
            cb = pl_loop_take_callback(self._core)
            if cb == NULL:
                break
            (<Handle>cb.data)._forget()
            _disown(<object>cb.data)
        while True:
            t = pl_loop_take_timer(self._core)
            if t == NULL:
                break
            (<Handle>t.data)._forget()
            _disown(<object>t.data)
        while True:
            hk = pl_loop_take_hook(self._core)
            if hk == NULL:
                break
            _disown(<object>hk.data)

    def close(self):
        """Close the loop: drop pending callbacks and timers, stop watching
        fds, shut the default executor down without waiting."""
        if self.is_running():
            raise RuntimeError('Cannot close a running event loop')
        if self._closed:
            return
        if self._debug:
            logger.debug('Close %r', self)
        self._closed = True
        _live_loops.discard(self)
        if not self._forked:
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        for h in self._signal_handlers.values():
            (<Handle>h)._forget()
        self._signal_handlers.clear()
        if self._signal_wakeup is not None:
            if not self._forked:
                self._release_wakeup_fd()
            self._signal_wakeup.close()
            self._signal_wakeup = None
        for w in self._fd_watchers.values():
            for h in ((<FdWatcher>w).reader, (<FdWatcher>w).writer):
                if h is not None:
                    (<Handle>h)._forget()
        self._fd_watchers.clear()
        for pidfd in self._child_pidfds:
            os.close(pidfd)
        self._child_pidfds.clear()
        for ref in list(self._transports.values()):
            t = ref()
            if t is not None:
                (<_FdTransport>t)._release_watcher()
        self._transports.clear()
        self._release_all()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        pl_loop_free(self._core)
        self._core = NULL

    # ---- futures and tasks ------------------------------------------------------

    def create_future(self):
        return _Future(loop=self)

    def create_task(self, coro, **kwargs):
        """Schedule a coroutine as a Task (through the task factory, if set).

        Every keyword (name, context, eager_start...) goes to the Task, or
        to the task factory, as CPython 3.14 passes them; before 3.14 the
        factory is not given name=, which is set on the task it returns, as
        asyncio of those versions does.
        """
        self._check_closed()
        if self._task_factory is not None:
            if _FACTORY_TAKES_NAME:
                return self._task_factory(self, coro, **kwargs)
            name = kwargs.pop('name', None)
            task = self._task_factory(self, coro, **kwargs)
            if name is not None:
                try:
                    set_name = task.set_name
                except AttributeError:
                    pass
                else:
                    set_name(name)
            return task
        task = _Task(coro, loop=self, **kwargs)
        if self._debug and task._source_traceback:
            del task._source_traceback[-1]
        return task

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # ---- errors ---------------------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context as asyncio does: the message, then each other key."""
        message = context.get('message') or 'Unhandled exception in event loop'
        exception = context.get('exception')
        exc_info = (type(exception), exception, exception.__traceback__) if exception is not None else False
        current = self._current_handle
        if ('source_traceback' not in context and current is not None
                and getattr(current, '_source_traceback', None)):
            context['handle_traceback'] = current._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in ('message', 'exception'):
                continue
            value = context[key]
            if key in ('source_traceback', 'handle_traceback'):
                what = 'Object' if key == 'source_traceback' else 'Handle'
                value = (f'{what} created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            else:
                value = repr(value)
            lines.append(f'{key}: {value}')
        logger.error('\n'.join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass context to the exception handler; never raises, except
        SystemExit and KeyboardInterrupt."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler', exc_info=True)
            return
        try:
            ctx = _failing_context(context) if _HANDLER_IN_FAILING_CONTEXT else None
            if ctx is not None:
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler while handling an '
                             'unexpected error in custom exception handler', exc_info=True)

    # ---- debug mode -------------------------------------------------------------

    cpdef bint get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = bool(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, self._debug)

    def _set_coroutine_origin_tracking(self, bint enabled):
        sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH if enabled else 0)

    cdef int _run_debug(self, Handle h) except -1:
        """Handle._run in debug mode: time the callback, warn when slow."""
        cdef uint64_t t0 = pl_clock_ns()
        cdef double dt
        # Locals: the callback may cancel its own handle (a reader removing
        # itself), which drops these fields.
        cdef object callback = h._callback
        cdef tuple args = h._args
        cdef object context = h._context
        self._current_handle = h
        try:
            try:
                PyContext_Enter(context)
                try:
                    if args:
                        callback(*args)
                    else:
                        callback()
                finally:
                    PyContext_Exit(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                h._report(exc, callback, args, context)
            dt = (pl_clock_ns() - t0) * 1e-9
            if dt >= self.slow_callback_duration:
                logger.warning('Executing %s took %.3f seconds', _format_handle(h), dt)
        finally:
            self._current_handle = None
        return 0

    # ---- fd watching ------------------------------------------------------------

    cdef FdWatcher _watcher(self, int fd):
        cdef FdWatcher w = self._fd_watchers.get(fd)
        if w is None:
            w = FdWatcher.__new__(FdWatcher)
            w._loop = self
            pl_io_init(&w.io, fd, _on_fd_event, <void *>w)
        return w

    def close_transports(self):
        """Close every transport of this loop: its servers' connections and
        its own (bytes already written are still sent).  phaseloop.errors'
        strict mode calls it before the loop stops."""
        for ref in list(self._transports.values()):
            t = ref()
            if t is not None and not t.is_closing():
                t.close()

    cdef _track_transport(self, int fd, transport):
        self._transports[fd] = PyWeakref_NewRef(transport, None)

    cdef _untrack_transport(self, int fd, transport):
        ref = self._transports.get(fd)
        if ref is not None and ref() in (transport, None):
            del self._transports[fd]

    cdef object _transport_on(self, fd):
        ref = self._transports.get(fd)
        return None if ref is None else ref()

    cdef _ensure_fd_no_transport(self, fd):
        if not self._transports:
            return
        transport = self._transport_on(fd)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f'File descriptor {fd!r} is used by transport {transport!r}')

    cdef _set_fd_callback(self, fileobj, bint write, callback, tuple args):
        self._check_closed()
        self._check_fork()
        self._check_callback(callback, 'add_writer' if write else 'add_reader')
        fd = _fd_of(fileobj)
        self._ensure_fd_no_transport(fd)
        cdef FdWatcher w = self._fd_watchers.get(fd)
        if w is not None and w._stale_for(fileobj):
            # The fd was closed while watched and now belongs to fileobj: the
            # old callbacks must not see its events, and the new file must be
            # registered with the backend afresh.
            self._drop_watcher(w)
            w = None
        if w is None:
            w = self._watcher(fd)
        cdef Handle old
        cdef Handle h = self._new_handle(callback, args, None)
        if write:
            old, w.writer = w.writer, h
            old_obj, w.writer_obj = w.writer_obj, fileobj
        else:
            old, w.reader = w.reader, h
            old_obj, w.reader_obj = w.reader_obj, fileobj
        try:
            w._apply()
        except BaseException:
            if write:
                w.writer, w.writer_obj = old, old_obj
            else:
                w.reader, w.reader_obj = old, old_obj
            raise
        self._fd_watchers[fd] = w
        if old is not None:
            old.cancel()
        return h

    cdef FdWatcher _registered_watcher(self, fileobj, fd):
        """The watcher fileobj is registered on, or None.  A closed socket
        (fd < 0) is found by identity, as asyncio's selector finds its key;
        a socket that reuses the fd of a closed, still watched one is not
        registered."""
        cdef FdWatcher w
        if fd < 0:
            for w in self._fd_watchers.values():
                if w._owned_by(fileobj):
                    return w
            raise ValueError(f"Invalid file descriptor: {fd}")
        w = self._fd_watchers.get(fd)
        if w is not None and not isinstance(fileobj, int) and w._stale_for(fileobj):
            return None
        return w

    cdef _drop_watcher(self, FdWatcher w):
        """Forget a watcher whose object was closed: its callbacks are
        cancelled and it leaves the core."""
        w._kill()
        del self._fd_watchers[w.io.fd]
        w.reader_obj = w.writer_obj = None
        old_reader, old_writer = w.reader, w.writer
        w.reader = w.writer = None
        for h in (old_reader, old_writer):
            if h is not None:
                (<Handle>h).cancel()

    cdef int _watch_own_fd(self, pl_io_t *io, unsigned events) except? -1:
        """pl_io_set for a watcher of the loop's own (a transport, the
        signal socket): a user watcher left on the fd number by a socket
        closed while watched gives way.  A negative errno on failure."""
        cdef int r = pl_io_set(self._core, io, events)
        cdef FdWatcher w
        if r == -EEXIST:
            w = self._fd_watchers.get(io.fd)
            if w is not None and w._stale_for(None):
                self._drop_watcher(w)
                r = pl_io_set(self._core, io, events)
        return r

    cdef bint _remove_fd_callback(self, fileobj, bint write) except -1:
        fd = _fileno(fileobj)
        if self._closed:
            return False
        if fd >= 0:
            self._ensure_fd_no_transport(fd)
        self._check_fork()
        cdef FdWatcher w = self._registered_watcher(fileobj, fd)
        if w is None:
            return False
        if fd < 0:
            w._kill()
        cdef Handle old = w.writer if write else w.reader
        if old is None:
            return False
        if write:
            w.writer = w.writer_obj = None
        else:
            w.reader = w.reader_obj = None
        w._apply()
        if w.reader is None and w.writer is None:
            del self._fd_watchers[w.io.fd]
        old.cancel()
        return True

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd is readable (replacing any reader)."""
        self._set_fd_callback(fd, False, callback, args)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        return self._remove_fd_callback(fd, False)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable (replacing any writer)."""
        self._set_fd_callback(fd, True, callback, args)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        return self._remove_fd_callback(fd, True)

    # ---- sockets (sock_*) ---------------------------------------------------------

    cdef _check_sock(self, sock):
        _check_not_ssl(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    cdef Handle _watch_sock(self, sock, bint write, _SockWait wait):
        """Make wait the socket's reader or writer; the caller unwatches it.
        Registered with the socket object, not its fd, so the watcher is
        still found if another task closes the socket meanwhile."""
        return self._set_fd_callback(sock, write, wait, ())

    cdef _unwatch_sock(self, sock, bint write, Handle handle):
        # Unless the watcher was replaced meanwhile (that cancelled it).
        if not handle._cancelled:
            self._remove_fd_callback(sock, write)

    async def _sock_call(self, sock, bint write, str method, *args):
        """sock.<method>(*args) at once, or once sock is ready if it would
        block."""
        self._check_sock(sock)
        try:
            return getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        handle = self._watch_sock(sock, write, _SockWait(_SOCK_CALL, fut, sock, method, args))
        try:
            return await fut
        finally:
            self._unwatch_sock(sock, write, handle)

    def sock_recv(self, sock, n):
        """Receive up to n bytes from a non-blocking socket (a coroutine)."""
        return self._sock_call(sock, False, 'recv', n)

    def sock_recv_into(self, sock, buf):
        """Receive into buf; the number of bytes received (a coroutine)."""
        return self._sock_call(sock, False, 'recv_into', buf)

    def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to bufsize bytes: (data, address) (a coroutine)."""
        return self._sock_call(sock, False, 'recvfrom', bufsize)

    def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf: (nbytes, address) (a coroutine)."""
        return self._sock_call(sock, False, 'recvfrom_into', buf, nbytes or len(buf))

    async def sock_sendall(self, sock, data):
        """Send all of data; returns None once the kernel has taken it."""
        self._check_sock(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = self.create_future()
        wait = _SockWait(_SOCK_SENDALL, fut, sock, None, (memoryview(data),))
        wait.pos = n
        handle = self._watch_sock(sock, True, wait)
        try:
            return await fut
        finally:
            self._unwatch_sock(sock, True, handle)

    def sock_sendto(self, sock, data, address):
        """Send a datagram to address; the number of bytes sent (a coroutine)."""
        return self._sock_call(sock, True, 'sendto', data, address)

    async def sock_connect(self, sock, address):
        """Connect sock to address, resolving a host name first."""
        self._check_sock(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_ip_literal(address[0], sock.family):
            infos = await self.getaddrinfo(*address[:2], family=sock.family,
                                           type=sock.type, proto=sock.proto)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            address = infos[0][4]
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            return
        fut = self.create_future()
        handle = self._watch_sock(sock, True, _SockWait(_SOCK_CONNECTED, fut, sock, None, (address,)))
        try:
            return await fut
        finally:
            self._unwatch_sock(sock, True, handle)
            fut = None    # break the cycle through a raised exception's traceback

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        self._check_sock(sock)
        fut = self.create_future()
        wait = _SockWait(_SOCK_ACCEPT, fut, sock, None, ())
        wait()
        if fut.done():
            return fut.result()
        handle = self._watch_sock(sock, False, wait)
        try:
            return await fut
        finally:
            self._unwatch_sock(sock, False, handle)

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a file with os.sendfile (zero copy), or read/send if the file
        cannot be sent that way and fallback is true; return bytes sent."""
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except _exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        try:
            fileno = file.fileno()
        except (AttributeError, _io.UnsupportedOperation):
            raise _exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise _exceptions.SendfileNotAvailableError("not a regular file")
        if not (count or fsize):
            return 0
        state = [offset, 0]
        fut = self.create_future()
        wait = _SockWait(_SOCK_SENDFILE, fut, sock, None, (fileno, count, state))
        try:
            wait()
            if not fut.done():
                handle = self._watch_sock(sock, True, wait)
                try:
                    await fut
                finally:
                    self._unwatch_sock(sock, True, handle)
            return fut.result()
        finally:
            if state[1] > 0:
                os.lseek(fileno, offset + state[1], os.SEEK_SET)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = min(count, _SENDFILE_FALLBACK_BUFSIZE) if count else _SENDFILE_FALLBACK_BUFSIZE
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    # ---- signals ---------------------------------------------------------------

    cdef _ensure_signal_wakeup(self):
        if self._signal_wakeup is None:
            sw = SignalWakeup()
            sw.open(self)
            self._signal_wakeup = sw

    cdef _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    cdef _dispatch_signal(self, int signum):
        cdef Handle h = self._signal_handlers.get(signum)
        if h is None or h._cancelled:
            return
        self._call_soon(h._callback, h._args, h._context)

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) on the loop when signal sig arrives.
        Main thread only; SIGKILL and SIGSTOP cannot be caught."""
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError('coroutines cannot be used with add_signal_handler()')
        self._check_signal(sig)
        self._check_closed()
        self._check_fork()
        self._ensure_signal_wakeup()
        try:
            # Raises ValueError outside the main thread, as asyncio reports.
            signal.set_wakeup_fd(self._signal_wakeup.wsock.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        handle = self._new_handle(callback, args, None)
        old = self._signal_handlers.get(sig)
        if old is not None:
            (<Handle>old)._forget()
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info('set_wakeup_fd(-1) failed: %s', nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the loop's handler for sig; True if there was one."""
        self._check_signal(sig)
        old = self._signal_handlers.pop(sig, None)
        if old is None:
            return False
        (<Handle>old)._forget()
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not self._signal_handlers and not self.is_running():
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                logger.info('set_wakeup_fd(-1) failed: %s', exc)
        return True

    # ---- executor and DNS ----------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in executor (default: a shared thread pool)."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix='asyncio')
                self._default_executor = executor
        return _futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor')
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting for its threads (at most
        `timeout` seconds, then warn)."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        if timeout is None:
            await future
        else:
            try:
                await _tasks.wait_for(_tasks.shield(future), timeout)
            except asyncio.TimeoutError:
                warnings.warn("The executor did not finishing joining "
                              f"its threads within {timeout} seconds.",
                              RuntimeWarning, stacklevel=2)
                self._default_executor.shutdown(wait=False)
                return
        thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_done, future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # ---- async generators -------------------------------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every async generator still open (aclose), reporting errors."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await _tasks.gather(*[ag.aclose() for ag in closing], return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # ---- observability -------------------------------------------------------------------

    def metrics(self):
        """What the loop has done since it was made (always counted):

        - ``iterations``: loop iterations completed;
        - ``callbacks``: callbacks run, by phase (``ready`` counts call_soon
          callbacks, Task steps and future callbacks);
        - ``phase_time``: seconds spent in each phase (``poll`` includes the
          time blocked waiting for I/O);
        - ``idle_time``: seconds blocked in the poll wait;
        - ``run_time``: seconds spent inside run_forever/run_until_complete/run_once;
        - ``ready_max``: the most ready callbacks drained at once;
        - ``timers``: timers armed now.

        >>> m = loop.metrics()
        >>> m["callbacks"]["timers"], m["idle_time"]
        """
        cdef pl_stats_t s
        cdef int i
        self._check_closed()
        pl_loop_stats(self._core, &s)
        names = _PHASE_NAMES
        return {
            'iterations': s.iterations,
            'callbacks': {names[i]: s.callbacks[i] for i in range(PL_NPHASES)},
            'phase_time': {names[i]: s.phase_ns[i] * 1e-9 for i in range(PL_NPHASES)},
            'idle_time': s.idle_ns * 1e-9,
            'run_time': s.run_ns * 1e-9,
            'ready_max': s.ready_max,
            'timers': pl_timer_count(self._core),
        }

    cdef tuple _idle_active(self):
        """(idle, active) seconds so far, for event_loop_utilization()."""
        cdef pl_stats_t s
        pl_loop_stats(self._core, &s)
        return (s.idle_ns * 1e-9, (s.run_ns - s.idle_ns) * 1e-9 if s.run_ns > s.idle_ns else 0.0)


cdef tuple _PHASE_NAMES = tuple(
    {PL_PHASE_PENDING: 'pending', PL_PHASE_IDLE: 'idle', PL_PHASE_PREPARE: 'prepare',
     PL_PHASE_POLL: 'poll', PL_PHASE_CHECK: 'check', PL_PHASE_CLOSE: 'close',
     PL_PHASE_TIMERS: 'timers', PL_PHASE_READY: 'ready'}[i] for i in range(PL_NPHASES))


def _loop_idle_active(_Loop loop):
    """(idle, active) seconds of a phaseloop loop, including a run in progress."""
    loop._check_closed()
    return loop._idle_active()


cdef object _failing_context(context):
    """The contextvars.Context of what failed, found as asyncio 3.12+ finds
    it: the task, else the future, else the handle, if it has get_context()."""
    thing = context.get("task")
    if thing is None:
        thing = context.get("future")
    if thing is None:
        thing = context.get("handle")
    if thing is None or not hasattr(thing, "get_context"):
        return None
    ctx = thing.get_context()
    return ctx if hasattr(ctx, "run") else None


def _set_result_unless_done(fut, result):
    if not fut.done():
        fut.set_result(result)


cdef object _format_handle(Handle h):
    cb = h._callback
    if isinstance(getattr(cb, '__self__', None), _tasks.Task):
        return repr(cb.__self__)
    return str(h)


cdef extern from "errno.h":
    int c_errno "errno"



cdef int errno_value():
    return c_errno


# ---- the public loop -----------------------------------------------------------------

class Loop(_Loop, _ServerMethods, _TCPMethods, _UnixMethods, _TLSMethods, _UDPMethods,
           _PipeMethods, _ProcessMethods, asyncio.AbstractEventLoop):
    """An asyncio event loop on phaseloop's C phase engine.

    Everything asyncio.AbstractEventLoop offers, plus Node's phase API:
    call_immediate, call_pending, add_idle, add_prepare, add_check,
    run_once, metrics and close_transports.
    """


Loop.__module__ = "phaseloop"
