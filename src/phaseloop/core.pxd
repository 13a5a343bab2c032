# core.pxd — the C core's declarations (csrc/phaseloop.h), in one place.
from libc.stdint cimport uint64_t, int64_t

cdef extern from "phaseloop.h":
    ctypedef struct pl_queue_t:
        pl_queue_t *next
        pl_queue_t *prev

    ctypedef struct pl_loop_t:
        pass

    ctypedef struct pl_callback_t
    ctypedef void (*pl_callback_fn)(pl_loop_t *loop, pl_callback_t *cb) noexcept
    ctypedef struct pl_callback_t:
        pl_queue_t node
        pl_callback_fn fn
        void *data

    ctypedef struct pl_timer_t
    ctypedef void (*pl_timer_fn)(pl_loop_t *loop, pl_timer_t *timer) noexcept
    ctypedef struct pl_timer_t:
        uint64_t deadline
        uint64_t seq
        size_t heap_index
        pl_timer_fn fn
        void *data

    ctypedef struct pl_hook_t
    ctypedef void (*pl_hook_fn)(pl_loop_t *loop, pl_hook_t *hook) noexcept
    ctypedef struct pl_hook_t:
        pl_queue_t node
        pl_hook_fn fn
        void *data

    ctypedef struct pl_io_t
    ctypedef void (*pl_io_fn)(pl_loop_t *loop, pl_io_t *io, unsigned revents) noexcept
    ctypedef struct pl_io_t:
        int fd
        unsigned events
        pl_io_fn fn
        void *data

    ctypedef struct pl_runtime_t:
        void (*before_wait)(pl_loop_t *loop) noexcept
        void (*after_wait)(pl_loop_t *loop) noexcept
        void (*on_interrupt)(pl_loop_t *loop) noexcept
        void *data

    ctypedef enum pl_run_mode:
        PL_RUN_DEFAULT
        PL_RUN_ONCE
        PL_RUN_NOWAIT

    enum:
        PL_READABLE
        PL_WRITABLE
        PL_STOPPED
        PL_BROKEN
        PL_PHASE_PENDING
        PL_PHASE_IDLE
        PL_PHASE_PREPARE
        PL_PHASE_POLL
        PL_PHASE_CHECK
        PL_PHASE_CLOSE
        PL_PHASE_TIMERS
        PL_PHASE_READY
        PL_NPHASES

    ctypedef struct pl_stats_t:
        uint64_t iterations
        uint64_t callbacks[8]
        uint64_t phase_ns[8]
        uint64_t idle_ns
        uint64_t run_ns
        uint64_t ready_max

    uint64_t pl_clock_ns()

    pl_loop_t *pl_loop_new(const pl_runtime_t *runtime)
    void pl_loop_free(pl_loop_t *loop)
    const char *pl_backend_name()
    void *pl_loop_runtime_data(pl_loop_t *loop)
    int pl_loop_backend_fd(pl_loop_t *loop)
    int pl_loop_run(pl_loop_t *loop, pl_run_mode mode)
    void pl_loop_stop(pl_loop_t *loop)
    void pl_loop_break(pl_loop_t *loop)
    void pl_loop_set_wait_cap(pl_loop_t *loop, int64_t ns)
    uint64_t pl_loop_now(const pl_loop_t *loop)
    void pl_loop_update_time(pl_loop_t *loop)
    void pl_loop_stats(const pl_loop_t *loop, pl_stats_t *out)
    void pl_loop_wakeup(pl_loop_t *loop)
    pl_callback_t *pl_loop_take_callback(pl_loop_t *loop)
    pl_timer_t *pl_loop_take_timer(pl_loop_t *loop)
    pl_hook_t *pl_loop_take_hook(pl_loop_t *loop)

    void pl_callback_init(pl_callback_t *cb, pl_callback_fn fn, void *data)
    void pl_ready_push(pl_loop_t *loop, pl_callback_t *cb)
    void pl_pending_push(pl_loop_t *loop, pl_callback_t *cb)
    void pl_poll_push(pl_loop_t *loop, pl_callback_t *cb)
    void pl_immediate_push(pl_loop_t *loop, pl_callback_t *cb)
    void pl_closing_push(pl_loop_t *loop, pl_callback_t *cb)
    void pl_callback_cancel(pl_callback_t *cb)
    int pl_callback_queued(const pl_callback_t *cb)
    size_t pl_ready_count(const pl_loop_t *loop)

    void pl_timer_init(pl_timer_t *t, pl_timer_fn fn, void *data)
    int pl_timer_start(pl_loop_t *loop, pl_timer_t *t, uint64_t deadline)
    int pl_timer_stop(pl_loop_t *loop, pl_timer_t *t)
    int pl_timer_active(const pl_timer_t *t)
    size_t pl_timer_count(const pl_loop_t *loop)
    uint64_t pl_timer_next(const pl_loop_t *loop)

    void pl_hook_init(pl_hook_t *h, pl_hook_fn fn, void *data)
    void pl_idle_start(pl_loop_t *loop, pl_hook_t *h)
    void pl_prepare_start(pl_loop_t *loop, pl_hook_t *h)
    void pl_check_start(pl_loop_t *loop, pl_hook_t *h)
    void pl_hook_stop(pl_hook_t *h)
    int pl_hook_active(const pl_hook_t *h)

    void pl_io_init(pl_io_t *io, int fd, pl_io_fn fn, void *data)
    int pl_io_set(pl_loop_t *loop, pl_io_t *io, unsigned events)
    pl_io_t *pl_io_lookup(const pl_loop_t *loop, int fd)


cdef extern from "Python.h":
    ctypedef struct PyThreadState:
        pass
    ctypedef struct PyObject
    # Returns NULL with the exception set: the caller checks (Handle._run).
    PyObject *PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf,
                                  PyObject *kwnames)
    PyObject **PySequence_Fast_ITEMS(object o)
    void Py_DECREF_raw "Py_DECREF"(PyObject *o)
    # A bytes object to fill in place, then cut to size (the TLS layer
    # decrypts into it); both return NULL / -1 with the exception set.
    PyObject *PyBytes_FromStringAndSize_raw "PyBytes_FromStringAndSize"(const char *v,
                                                                         Py_ssize_t n)
    int _PyBytes_Resize_raw "_PyBytes_Resize"(PyObject **s, Py_ssize_t n)
    void PyErr_Fetch(PyObject **t, PyObject **v, PyObject **tb)
    void PyErr_Restore(PyObject *t, PyObject *v, PyObject *tb)
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *)
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    int PyErr_CheckSignals() except -1
    bint PyCallable_Check(object o)
    unsigned long PyThread_get_thread_ident()
