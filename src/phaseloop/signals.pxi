# signals.pxi — signal delivery. Python's C-level handler writes the signal
# number to the wakeup fd (signal.set_wakeup_fd); the loop watches the
# other end of that socket pair, runs Python-level handlers (so Ctrl-C
# raises KeyboardInterrupt out of run_*) and schedules the callbacks of
# add_signal_handler on the loop.

def _sighandler_noop(signum, frame):
    """Installed for signals with a loop handler: the work happens on the loop."""


@cython.no_gc_clear
cdef class SignalWakeup:
    cdef pl_io_t io
    cdef object rsock
    cdef object wsock
    cdef _Loop _loop

    cdef int open(self, _Loop loop) except -1:
        self._loop = loop
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)
        pl_io_init(&self.io, self.rsock.fileno(), _on_signal_fd, <void *>self)
        r = loop._watch_own_fd(&self.io, PL_READABLE)
        if r < 0:
            self.close()
            raise OSError(-r, os.strerror(-r))
        return 0

    cdef close(self):
        if self.rsock is not None:
            if self._loop._core != NULL:
                pl_io_set(self._loop._core, &self.io, 0)
            self.rsock.close()
            self.wsock.close()
            self.rsock = self.wsock = None


cdef void _on_signal_fd(pl_loop_t *l, pl_io_t *io, unsigned revents) noexcept:
    cdef SignalWakeup sw = <SignalWakeup>io.data
    cdef _Loop loop = sw._loop
    try:
        try:
            data = sw.rsock.recv(4096)
        except (BlockingIOError, InterruptedError):
            data = b''
        PyErr_CheckSignals()     # Python-level handlers: KeyboardInterrupt
        for signum in data:
            loop._dispatch_signal(signum)
    except BaseException as exc:
        loop._stop_with(exc)
