# io.pxi — add_reader / add_writer: one FdWatcher per fd, merging the
# reader and the writer into the single C watcher the core allows per fd.
# Reader and writer callbacks run straight from the poll phase.

cdef object _fileno(object fileobj):
    """The fd of an int or an object with fileno(), as asyncio accepts;
    negative for a closed socket."""
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fileobj!r}") from None


cdef object _fd_of(object fileobj):
    """An open fd from an int or an object with fileno()."""
    fd = _fileno(fileobj)
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


@cython.no_gc_clear
cdef class FdWatcher:
    cdef pl_io_t io
    cdef Handle reader
    cdef Handle writer
    # The objects the reader and writer were registered with (an int or an
    # object with fileno()), as asyncio's selector keys keep them: a socket
    # closed while watched is still found by identity, and a watcher whose
    # object was closed is told apart from a new socket that reuses the fd.
    cdef object reader_obj
    cdef object writer_obj
    cdef _Loop _loop
    # Its fd was closed while watched: the kernel dropped it from the
    # backend, and the core no longer lists it, so that the number can be
    # watched afresh; the callbacks stay until removed, and never run.
    cdef bint _dead

    cdef bint _owned_by(self, fileobj):
        return self.reader_obj is fileobj or self.writer_obj is fileobj

    cdef bint _stale_for(self, fileobj):
        """Whether this watcher belongs to an object that no longer has this
        fd (it was closed, and fileobj reuses the number)."""
        return (_lost_fd(self.reader_obj, self.io.fd, fileobj)
                or _lost_fd(self.writer_obj, self.io.fd, fileobj))

    cdef unsigned _wanted(self):
        cdef unsigned ev = 0
        if self.reader is not None:
            ev |= PL_READABLE
        if self.writer is not None:
            ev |= PL_WRITABLE
        return ev

    cdef int _apply(self) except -1:
        if self._dead:
            return 0
        cdef int r = pl_io_set(self._loop._core, &self.io, self._wanted())
        if r < 0:
            raise OSError(-r, os.strerror(-r))
        return 0

    cdef void _kill(self) noexcept:
        """Take a watcher whose fd was closed out of the core.  Removing is
        the one backend call that is safe on a closed or reused fd number
        (modifying could register whatever file reuses it)."""
        if not self._dead:
            self._dead = True
            pl_io_set(self._loop._core, &self.io, 0)


cdef bint _lost_fd(obj, int fd, fileobj):
    """Whether obj, registered on fd, is a file object other than fileobj
    that has been closed or now has another fd."""
    if obj is None or obj is fileobj or isinstance(obj, int):
        return False
    try:
        return obj.fileno() != fd
    except (AttributeError, TypeError, ValueError, OSError):
        return True


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
