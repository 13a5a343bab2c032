# handles.pxi — Handle, TimerHandle and PhaseHook: the Python objects the
# loop queues. Each embeds the C core's intrusive node, so scheduling
# allocates nothing but the handle itself. While a handle sits in one of
# the core's queues (or its timer heap) the queue owns one reference to it.

cdef inline void _own(object o):
    Py_INCREF(o)


cdef inline void _disown(object o):
    Py_DECREF(o)


cdef object _format_callback(object callback, object args):
    if _format_callback_source is None:
        return repr(callback)
    return _format_callback_source(callback, args)


cdef object _extract_stack(int skip):
    """The caller's stack, oldest first, as asyncio's debug mode keeps it."""
    frame = sys._getframe(skip)
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_DEBUG_STACK_DEPTH, lookup_lines=False)
    stack.reverse()
    return stack


@cython.freelist(256)
@cython.no_gc
cdef class Handle:
    """A callback scheduled with call_soon, call_immediate or a signal.

    Like asyncio.Handle: cancel(), cancelled(), get_context(), repr().

    Handles are not tracked by the cyclic GC: millions are made per second
    and traversing them cost more than a third of call_soon's time. To keep
    that safe, a one-shot handle drops its callback, arguments and context
    once it has run or been cancelled (_forget), so no cycle can run through
    a finished handle; a pending one is kept alive by the loop anyway.
    """
    cdef pl_callback_t node
    cdef object _callback
    cdef tuple _args
    cdef object _context
    cdef _Loop _loop
    cdef bint _cancelled
    cdef object _source_traceback
    cdef object _repr
    cdef object __weakref__

    def __init__(self, *args, **kwargs):
        raise TypeError("phaseloop handles are created by the loop, not directly")

    cdef inline void _setup(self, _Loop loop, object callback, tuple args, object context):
        self._loop = loop
        self._callback = callback
        self._args = args               # a tuple: _run calls with its items
        if context is None:
            context = PyContext_CopyCurrent()
        self._context = context
        pl_callback_init(&self.node, _run_queued_handle, <void *>self)
        if loop._debug:
            self._source_traceback = _extract_stack(0)

    def get_context(self):
        return self._context

    def cancelled(self):
        return self._cancelled

    def cancel(self):
        if self._cancelled:
            return
        self._cancelled = True
        if self._loop is not None and self._loop._debug:
            # Keep a useful repr for debugging after the callback is dropped.
            self._repr = repr(self)
        if pl_callback_queued(&self.node):
            pl_callback_cancel(&self.node)
            _disown(self)
        self._forget()

    cdef inline void _forget(self):
        self._callback = None
        self._args = None
        self._context = None

    cdef list _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append('cancelled')
        if self._callback is not None:
            info.append(_format_callback(self._callback, self._args))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f'created at {frame[0]}:{frame[1]}')
        return info

    def __repr__(self):
        if self._repr is not None:
            return self._repr
        return '<' + ' '.join(self._repr_info()) + '>'

    cdef int _run(self) except -1:
        """Run the callback in its context. An exception goes to the loop's
        exception handler; only SystemExit and KeyboardInterrupt escape."""
        cdef object callback = self._callback
        cdef tuple args = self._args
        cdef object context = self._context
        cdef PyObject *result
        if self._cancelled or callback is None:
            return 0
        if self._loop._debug:
            return self._loop._run_debug(self)
        PyContext_Enter(context)
        # Straight to the callee's vectorcall, and no try block on this path
        # (Cython saves the exception state on entering one): the two were a
        # fifth of the loop's share of an add_reader callback.
        result = PyObject_Vectorcall(callback, PySequence_Fast_ITEMS(args),
                                     PyTuple_GET_SIZE(args), NULL)
        if result == NULL:
            return self._failed(callback, args, context)
        Py_DECREF_raw(result)
        PyContext_Exit(context)
        return 0

    cdef int _failed(self, callback, tuple args, context) except -1:
        """The callback raised (the exception is set): leave its context,
        then report the exception, or let SystemExit/KeyboardInterrupt out."""
        cdef PyObject *t
        cdef PyObject *v
        cdef PyObject *tb
        PyErr_Fetch(&t, &v, &tb)
        try:
            PyContext_Exit(context)
        finally:
            PyErr_Restore(t, v, tb)
        try:
            _raise_pending()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(exc, callback, args, context)
        return 0

    cdef _report(self, exc, callback, tuple args, context):
        """Pass exc to the loop's exception handler.  callback, args and
        context are the ones that ran: a callback that cancelled its own
        handle made it drop them, but the message names the callback and,
        from Python 3.12, the handler runs in the callback's context, found
        through get_context() (CPython gh-96704)."""
        cdef bint dropped = self._context is None
        if dropped:
            self._callback, self._args, self._context = callback, args, context
        try:
            cb = _format_callback(callback, args)
            report = {
                'message': f'Exception in callback {cb}',
                'exception': exc,
                'handle': self,
            }
            if self._source_traceback:
                report['source_traceback'] = self._source_traceback
            self._loop.call_exception_handler(report)
        finally:
            if dropped:
                self._forget()


cdef int _raise_pending() except -1:
    """Hand the exception a C call left set to Cython's handling."""
    return -1


cdef void _run_queued_handle(pl_loop_t *l, pl_callback_t *cb) noexcept:
    """The core calls this for a Handle taken off the ready or check queue."""
    cdef Handle h = <Handle>cb.data
    _disown(h)                  # the queue's reference; `h` holds its own
    try:
        h._run()
    except BaseException as exc:
        h._loop._stop_with(exc)
    h._forget()


@cython.no_gc
cdef class TimerHandle(Handle):
    """A callback scheduled with call_later or call_at.

    when() is the loop time it was scheduled for; the timer never runs
    before loop.time() reaches it (the core keeps nanoseconds).
    """
    cdef pl_timer_t timer
    cdef double _when

    def when(self):
        return self._when

    def cancel(self):
        if self._cancelled:
            return
        if self._loop._core != NULL and pl_timer_stop(self._loop._core, &self.timer):
            _disown(self)
        Handle.cancel(self)

    cdef list _repr_info(self):
        info = Handle._repr_info(self)
        info.insert(2 if self._cancelled else 1, f'when={self._when}')
        return info

    def __hash__(self):
        return hash(self._when)

    cdef bint _same(self, TimerHandle o):
        return self is o or (self._when == o._when and self._callback == o._callback
                             and self._args == o._args and self._cancelled == o._cancelled)

    def __richcmp__(self, other, int op):
        cdef TimerHandle o
        if not isinstance(other, TimerHandle):
            return NotImplemented
        o = <TimerHandle>other
        if op == 2:   # ==
            return self._same(o)
        if op == 3:   # !=
            return not self._same(o)
        if op == 0:
            return self._when < o._when
        if op == 1:
            return self._when <= o._when
        if op == 4:
            return self._when > o._when
        return self._when >= o._when


cdef void _run_timer(pl_loop_t *l, pl_timer_t *t) noexcept:
    cdef TimerHandle h = <TimerHandle>t.data
    _disown(h)                  # the heap's reference
    try:
        h._run()
    except BaseException as exc:
        h._loop._stop_with(exc)
    h._forget()


@cython.no_gc_clear
cdef class PhaseHook:
    """A callback run once per loop iteration in its phase (idle, prepare
    or check) until cancel(): libuv's uv_idle / uv_prepare / uv_check."""
    cdef pl_hook_t hook
    cdef object _callback
    cdef object _context
    cdef _Loop _loop
    cdef str _phase
    cdef object __weakref__

    def __init__(self, *args, **kwargs):
        raise TypeError("phase hooks are created by loop.add_idle/add_prepare/add_check")

    @property
    def phase(self):
        return self._phase

    def active(self):
        return bool(pl_hook_active(&self.hook))

    def cancel(self):
        if pl_hook_active(&self.hook):
            pl_hook_stop(&self.hook)
            _disown(self)

    def __repr__(self):
        state = 'active' if pl_hook_active(&self.hook) else 'cancelled'
        return f'<PhaseHook {self._phase} {state} {_format_callback(self._callback, ())}>'


cdef void _run_hook(pl_loop_t *l, pl_hook_t *hk) noexcept:
    cdef PhaseHook h = <PhaseHook>hk.data
    cdef _Loop loop = h._loop
    try:
        try:
            PyContext_Enter(h._context)
            try:
                h._callback()
            finally:
                PyContext_Exit(h._context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop.call_exception_handler({
                'message': f'Exception in {h._phase} hook {_format_callback(h._callback, ())}',
                'exception': exc,
                'handle': h,
            })
    except BaseException as exc:
        loop._stop_with(exc)
