# The in-process link, as port_core.pyx sees it (typed: its hot path is C calls).

cdef class MemoryLink:
    cdef public MemoryLink peer
    cdef public object port
    cdef public object loop
    cdef public bint remote_closed
    cdef public bint closed
    cdef public Py_ssize_t sent
    cdef public Py_ssize_t taken
    cdef public bint wake_scheduled

    cpdef send_copy(self, object message, Py_ssize_t size)
    cpdef delivered(self, Py_ssize_t size)
    cpdef wake(self)
    cdef void _append(self, object payload, object handles, Py_ssize_t size)
    cdef void _schedule_wake(self)
