# io.pxi — add_reader / add_writer: one FdWatcher per fd, merging the
# reader and the writer into the single C watcher the core allows per fd.
# Reader and writer callbacks run straight from the poll phase.

cdef object _fd_of(object fileobj):
    """An fd from an int or an object with fileno(), as asyncio accepts."""
    cdef int fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


@cython.no_gc_clear
cdef class FdWatcher:
    cdef pl_io_t io
    cdef Handle reader
    cdef Handle writer
    cdef _Loop _loop

    cdef unsigned _wanted(self):
        cdef unsigned ev = 0
        if self.reader is not None:
            ev |= PL_READABLE
        if self.writer is not None:
            ev |= PL_WRITABLE
        return ev

    cdef int _apply(self) except -1:
        cdef int r = pl_io_set(self._loop.loop, &self.io, self._wanted())
        if r < 0:
            raise OSError(-r, os.strerror(-r))
        return 0


cdef void _on_fd_event(pl_loop_t *l, pl_io_t *io, unsigned revents) noexcept:
    cdef FdWatcher w = <FdWatcher>io.data
    cdef Handle h
    try:
        if revents & PL_READABLE:
            h = w.reader
            if h is not None:
                h._run()
        if revents & PL_WRITABLE:
            h = w.writer
            if h is not None:
                h._run()
    except BaseException as exc:
        w._loop._stop_with(exc)
