# transports/base.pxi — _FdTransport: what every fd transport shares.
#
# The C watcher (pl_io_t) on the transport's fd and the loop's reference
# while it is armed (as asyncio's selector owns the reader's handle, a
# transport that reads or has bytes to send stays alive until it is
# closed), the protocol and extra info, write flow control (asyncio's: high
# 64 KiB, low 16 KiB, pause_writing/resume_writing once per crossing), and
# the one connection_lost, run as a ready callback (asyncio's call_soon),
# only then closing the fd.  Stream, datagram and pipe transports derive
# from it.

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport malloc, free

import _socket as _socket_c
from asyncio import protocols as _protocols
from asyncio import transports as _aio_transports_mod
from asyncio import trsock as _trsock

cdef extern from "unistd.h" nogil:
    ssize_t c_read "read"(int fd, void *buf, size_t n)
    ssize_t c_write "write"(int fd, const void *buf, size_t n)

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t c_writev "writev"(int fd, const iovec *iov, int iovcnt)

cdef extern from "errno.h":
    enum:
        EAGAIN
        EWOULDBLOCK
        EINTR
        EEXIST

cdef enum:
    _READ_BUF_SIZE = 262144       # asyncio's max_size for one recv
    _IOV_BATCH = 64             # buffers per writev
cdef int _LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

# What kind of fd a _StreamTransport drives.
cdef enum:
    _SOCKET = 0
    _READ_PIPE = 1
    _WRITE_PIPE = 2


cdef inline bint _would_block(int err):
    # EWOULDBLOCK is EAGAIN on Linux; a switch on both would not compile.
    if err == EAGAIN or err == EINTR:
        return True
    return err == EWOULDBLOCK


cdef object _os_error(int err):
    # OSError(errno, msg) picks the subclass (ConnectionResetError...).
    return OSError(err, os.strerror(err))


cdef class _FdTransport:
    """What every fd transport shares: the watcher and the loop's reference
    while it is armed, the protocol, extra info, write flow control and the
    one connection_lost, scheduled as a ready callback."""
    cdef pl_io_t io
    cdef _Loop _loop
    cdef object _sock               # socket.socket or pipe file: owns the fd
    cdef int _fd
    cdef object _protocol
    cdef object _context            # protocol callbacks run in it
    cdef dict _extra
    cdef object _public             # what protocols see (a pipe's wrapper), or None for self
    cdef object _server
    cdef bint _closing
    cdef bint _reading              # read interest wanted
    cdef bint _protocol_paused
    cdef bint _lost_scheduled
    cdef bint _registered           # the loop holds a reference while armed
    cdef int _conn_lost
    cdef Py_ssize_t _wsize          # bytes queued for writing
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef object __weakref__
    # Instance attributes, as asyncio's Python transports take them: test
    # suites replace a transport's method on one connection (uvicorn's
    # websocket tests swallow pongs with `transport.write = ...`).  The
    # dict is made on first use; the C paths never look in it.
    cdef dict __dict__

    def __init__(self, *args, **kwargs):
        raise TypeError("phaseloop transports are created by the loop")

    cdef _setup_fd(self, _Loop loop, sock, int fd, protocol, dict extra, server):
        self._loop = loop
        self._sock = sock
        self._fd = fd
        self._extra = extra
        self._server = server
        self._context = PyContext_CopyCurrent()
        self._high = 65536
        self._low = 16384
        pl_io_init(&self.io, fd, _on_transport_event, <void *>self)
        self._set_protocol(protocol)
        loop._track_transport(fd, self)
        if server is not None:
            server._attach(self._pub())

    cdef inline object _pub(self):
        return self if self._public is None else self._public

    # ---- the watcher --------------------------------------------------------------

    cdef int _update_events(self) except -1:
        cdef unsigned ev = 0
        if self._reading:
            ev |= PL_READABLE
        if self._wsize:
            ev |= PL_WRITABLE
        return self._set_events(ev)

    cdef int _set_events(self, unsigned ev) except -1:
        cdef int r
        if ev == (self.io.events if self._registered else 0):
            return 0
        if self._loop is None or self._loop._core == NULL:
            return 0
        r = self._loop._watch_own_fd(&self.io, ev)
        if r < 0:
            raise _os_error(-r)
        if ev and not self._registered:
            self._registered = True
            Py_INCREF(self)
        elif not ev and self._registered:
            self._registered = False
            Py_DECREF(self)
        return 0

    cdef _release_watcher(self):
        """The loop is closing: forget the watcher and the loop's reference."""
        if self._registered:
            if self._loop._core != NULL:
                pl_io_set(self._loop._core, &self.io, 0)
            self._registered = False
            Py_DECREF(self)

    # ---- protocol and extra info --------------------------------------------------

    cdef _set_protocol(self, protocol):
        self._protocol = protocol

    def set_protocol(self, protocol):
        self._set_protocol(protocol)

    def get_protocol(self):
        return self._protocol

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def is_closing(self):
        return self._closing

    # ---- write flow control -------------------------------------------------------

    def get_write_buffer_size(self):
        return self._wsize

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high = high
        self._low = low
        self._maybe_pause_protocol()

    cdef _maybe_pause_protocol(self):
        if self._wsize <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': 'protocol.pause_writing() failed',
                'exception': exc,
                'transport': self._pub(),
                'protocol': self._protocol,
            })

    cdef _maybe_resume_protocol(self):
        if not self._protocol_paused or self._wsize > self._low:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': 'protocol.resume_writing() failed',
                'exception': exc,
                'transport': self._pub(),
                'protocol': self._protocol,
            })

    # ---- closing ------------------------------------------------------------------

    cdef bint _quiet_error(self, exc):
        """An error worth only a debug log (the peer went away), not a report."""
        return isinstance(exc, OSError)

    cdef _fatal_error(self, exc, str message):
        if self._quiet_error(exc):
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self._pub(),
                'protocol': self._protocol,
            })
        self._force_close(exc)

    cdef _drop_buffer(self):
        self._wsize = 0

    cdef int _on_readable(self) except -1:
        return 0

    cdef int _on_writable(self) except -1:
        return 0

    cpdef _force_close(self, exc):
        if self._conn_lost or self._lost_scheduled:
            return
        if self._wsize:
            self._drop_buffer()
        self._closing = True
        self._reading = False
        self._update_events()
        self._conn_lost += 1
        self._schedule_connection_lost(exc)

    def abort(self):
        self._force_close(None)

    cdef _schedule_connection_lost(self, exc):
        """connection_lost(exc) as the next ready callback, once. Like
        asyncio's call_soon: code that closes a transport and awaits
        sleep(0) (StreamWriter.drain) sees connection_lost by then."""
        if self._lost_scheduled:
            return
        self._lost_scheduled = True
        self._loop._call_soon(self._call_connection_lost, (exc,), self._context)

    def _call_connection_lost(self, exc):
        loop = self._loop
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._reading = False
            self._drop_buffer()
            self._update_events()
            sock = self._sock
            if sock is not None:
                self._sock = None
                (<_Loop>loop)._untrack_transport(self._fd, self)
                sock.close()
            self._set_protocol(None)
            self._loop = None
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self._pub())

    def __del__(self):
        if self._sock is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
