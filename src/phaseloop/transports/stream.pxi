# transports/stream.pxi — the stream transport: sockets (TCP, Unix) and pipes.
#
# One _StreamTransport owns one fd and one C watcher (pl_io_t) on it; the
# poll phase calls _on_transport_event directly, with no Handle in between.
#
# Write path: write() tries the syscall at once when nothing is queued and
# buffers only what the kernel did not take; queued buffers go out with one
# writev per writable event.
# Read path: one 256 KiB read buffer per loop, or the protocol's own buffer
# for a BufferedProtocol; under an SSLTransport (transports/tls.pxi) the
# ciphertext read into the loop's buffer goes to it at C level.

cdef class _StreamTransport(_FdTransport):
    cdef int _kind
    cdef object _data_received      # protocol.data_received, or None if buffered
    cdef bint _buffered
    cdef bint _eof                  # write_eof() called
    cdef bint _paused               # pause_reading() in effect
    cdef bint _watch_hangup         # write pipe: watch for the reader going away
    cdef list _wbuf                 # queued bytes objects...
    cdef Py_ssize_t _whead          # ...from this index...
    cdef Py_ssize_t _woff           # ...and this offset in the first one
    cdef object _empty_waiter
    cdef SSLTransport _tls          # the protocol, when it is phaseloop's TLS layer

    cdef _setup(self, _Loop loop, sock, int fd, int kind, protocol, dict extra, server):
        self._kind = kind
        self._setup_fd(loop, sock, fd, protocol, extra, server)

    cdef _schedule_start(self, waiter):
        """As asyncio: connection_made, then reading, then the waiter, each
        its own callback so an exception in one does not skip the others."""
        cdef _Loop loop = self._loop
        loop._call_soon(self._protocol.connection_made, (self._pub(),), self._context)
        if self._kind != _WRITE_PIPE or self._watch_hangup:
            loop._call_soon(self._start_reading, (), self._context)
        if waiter is not None:
            loop._call_soon(_set_result_unless_cancelled, (waiter, None), None)

    def _start_reading(self):
        if self._closing or self._loop is None:
            return
        if self._kind != _WRITE_PIPE and self._paused:
            return
        self._reading = True
        self._update_events()

    cdef _set_protocol(self, protocol):
        self._protocol = protocol
        if type(protocol) is SSLTransport:
            self._tls = <SSLTransport>protocol
            self._buffered = False
            self._data_received = None
            return
        self._tls = None
        self._buffered = isinstance(protocol, _protocols.BufferedProtocol)
        # A write pipe's protocol has no data_received; a reading one that
        # lacks it fails when data comes, as on asyncio.
        self._data_received = None if self._buffered else getattr(protocol, 'data_received', None)

    # ---- reading ------------------------------------------------------------------

    cdef int _on_readable(self) except -1:
        cdef ssize_t n
        cdef int err
        cdef Py_buffer view
        if self._kind == _WRITE_PIPE:
            # The reading end went away (an error or hang-up on our end).
            if self._wsize:
                self._force_close(BrokenPipeError())
            else:
                self._force_close(None)
            return 0
        if self._buffered:
            return self._read_buffered()
        if self._loop._read_buf == NULL:
            self._loop._read_buf = <char *>malloc(_READ_BUF_SIZE)
            if self._loop._read_buf == NULL:
                raise MemoryError()
        n = c_read(self._fd, self._loop._read_buf, _READ_BUF_SIZE)
        if n < 0:
            err = errno_value()
            if not _would_block(err):
                self._read_error(_os_error(err))
            return 0
        if n == 0:
            return self._on_eof()
        if self._tls is None:
            data = PyBytes_FromStringAndSize(self._loop._read_buf, n)
        try:
            if self._tls is not None:
                # Ciphertext: the TLS layer copies it into its BIO, no bytes object.
                self._tls._receive(self._loop._read_buf, n)
            elif self._data_received is None:
                self._protocol.data_received(data)   # raises AttributeError, as on asyncio
            else:
                self._data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.data_received() call failed.')
        return 0

    cdef int _read_buffered(self) except -1:
        cdef ssize_t n
        cdef int err
        cdef Py_buffer view
        try:
            buf = self._protocol.get_buffer(-1)
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
            if view.len == 0:
                PyBuffer_Release(&view)
                raise RuntimeError('get_buffer() returned an empty buffer')
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.get_buffer() call failed.')
            return 0
        n = c_read(self._fd, view.buf, <size_t>view.len)
        err = errno_value()
        PyBuffer_Release(&view)
        if n < 0:
            if not _would_block(err):
                self._read_error(_os_error(err))
            return 0
        if n == 0:
            return self._on_eof()
        try:
            self._protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.buffer_updated() call failed.')
        return 0

    cdef _read_error(self, exc):
        if self._kind == _SOCKET:
            self._fatal_error(exc, 'Fatal read error on socket transport')
        else:
            self._fatal_error(exc, 'Fatal read error on pipe transport')

    cdef int _on_eof(self) except -1:
        if self._loop._debug:
            logger.debug("%r received EOF", self)
        if self._kind == _READ_PIPE:
            # A pipe at EOF is done: eof_received, then connection_lost.
            self._closing = True
            self._reading = False
            self._update_events()
            self._loop._call_soon(self._protocol.eof_received, (), self._context)
            self._schedule_connection_lost(None)
            return 0
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.eof_received() call failed.')
            return 0
        if keep_open:
            self._reading = False
            self._update_events()
        else:
            self.close()
        return 0

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._reading = False
        self._update_events()
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._reading = True
        self._update_events()
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    def is_reading(self):
        return not self._paused and not self._closing

    # ---- writing ------------------------------------------------------------------

    def write(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if self._eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if self._empty_waiter is not None:
            raise RuntimeError('unable to write; sendfile is in progress')
        self._send(data)

    cdef int _send(self, data) except -1:
        """write() after its checks; the TLS layer calls it with its records."""
        cdef Py_buffer view
        cdef ssize_t n = 0
        cdef int err
        if self._conn_lost or (self._kind == _WRITE_PIPE and self._closing):
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('socket.send() raised exception.' if self._kind == _SOCKET else
                               'pipe closed by peer or os.write(pipe, data) raised exception.')
            self._conn_lost += 1
            return 0
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                return 0
            if self._wsize == 0:
                n = c_write(self._fd, view.buf, <size_t>view.len)
                if n < 0:
                    err = errno_value()
                    if not _would_block(err):
                        self._write_error(_os_error(err))
                        return 0
                    n = 0
                if n == view.len:
                    return 0
            if self._wbuf is None:
                self._wbuf = []
            if type(data) is bytes:
                if self._wsize == 0:
                    self._woff = n
                self._wbuf.append(data)
            else:
                self._wbuf.append(PyBytes_FromStringAndSize(<char *>view.buf + n, view.len - n))
            self._wsize += view.len - n
        finally:
            PyBuffer_Release(&view)
        self._update_events()
        self._maybe_pause_protocol()
        return 0

    def writelines(self, list_of_data):
        self.write(b''.join(list_of_data))

    cdef int _on_writable(self) except -1:
        cdef iovec iov[_IOV_BATCH]
        cdef int count = 0
        cdef Py_ssize_t i = self._whead, end = len(self._wbuf), off = self._woff
        cdef ssize_t n
        cdef int err
        cdef bytes b
        while i < end and count < _IOV_BATCH:
            b = <bytes>self._wbuf[i]
            iov[count].iov_base = PyBytes_AS_STRING(b) + off
            iov[count].iov_len = <size_t>(PyBytes_GET_SIZE(b) - off)
            off = 0
            count += 1
            i += 1
        if count == 1:
            n = c_write(self._fd, iov[0].iov_base, iov[0].iov_len)
        else:
            n = c_writev(self._fd, iov, count)
        if n < 0:
            err = errno_value()
            if _would_block(err):
                return 0
            self._drop_buffer()
            self._update_events()
            exc = _os_error(err)
            self._write_error(exc)
            if self._empty_waiter is not None:
                self._empty_waiter.set_exception(exc)
            return 0
        self._consume(n)
        self._maybe_resume_protocol()
        if self._wsize == 0:
            if self._closing:
                self._reading = False
            self._update_events()
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                self._schedule_connection_lost(None)
            elif self._eof:
                self._sock.shutdown(socket.SHUT_WR)
        return 0

    cdef _consume(self, Py_ssize_t n):
        """Drop n sent bytes from the front of the write buffer."""
        cdef list buf = self._wbuf
        cdef Py_ssize_t left
        self._wsize -= n
        while n > 0:
            left = PyBytes_GET_SIZE(<bytes>buf[self._whead]) - self._woff
            if n < left:
                self._woff += n
                break
            n -= left
            buf[self._whead] = None
            self._whead += 1
            self._woff = 0
        if self._whead == len(buf):
            buf.clear()
            self._whead = 0
        elif self._whead >= 64:
            del buf[:self._whead]
            self._whead = 0

    cdef _drop_buffer(self):
        if self._wbuf:
            self._wbuf.clear()
        self._whead = self._woff = self._wsize = 0

    cdef _write_error(self, exc):
        if self._kind == _SOCKET:
            self._fatal_error(exc, 'Fatal write error on socket transport')
        else:
            self._fatal_error(exc, 'Fatal write error on pipe transport')

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._kind == _WRITE_PIPE:
            # A pipe has no half-close: write_eof() closes once flushed.
            if self._closing:
                return
            self._closing = True
            if not self._wsize:
                self._reading = False
                self._update_events()
                self._schedule_connection_lost(None)
            return
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._wsize:
            self._sock.shutdown(socket.SHUT_WR)

    def _make_empty_waiter(self):
        """A future done once the write buffer is empty (for sendfile)."""
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._wsize:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None

    # ---- closing ------------------------------------------------------------------

    def close(self):
        if self._kind == _WRITE_PIPE:
            if self._sock is not None and not self._closing:
                self.write_eof()
            return
        if self._closing:
            return
        self._closing = True
        self._reading = False
        if self._kind == _READ_PIPE:
            self._update_events()
            self._conn_lost += 1
            self._schedule_connection_lost(None)
            return
        self._update_events()
        if not self._wsize:
            self._conn_lost += 1
            self._schedule_connection_lost(None)

    cdef bint _quiet_error(self, exc):
        # A read pipe reports every error but EIO (the pty went away).
        return isinstance(exc, OSError) and (self._kind != _READ_PIPE or exc.errno == errno.EIO)

    def __repr__(self):
        info = [type(self).__name__ if self._public is None else type(self._public).__name__]
        if self._sock is None:
            info.append('closed')
        elif self._closing:
            info.append('closing')
        info.append(f'fd={self._fd}')
        if self._sock is not None:
            info.append('read=' + ('polling' if self._reading else 'idle'))
            if self._kind != _READ_PIPE:
                state = 'polling' if self._wsize else 'idle'
                info.append(f'write=<{state}, bufsize={self._wsize}>')
        return '<{}>'.format(' '.join(info))


cdef void _on_transport_event(pl_loop_t *l, pl_io_t *io, unsigned revents) noexcept:
    """The poll phase's callback for every fd transport (stream or datagram)."""
    cdef _FdTransport t = <_FdTransport>io.data
    cdef _Loop loop = t._loop
    cdef object context = t._context
    try:
        PyContext_Enter(context)
        try:
            if revents & PL_READABLE:
                t._on_readable()
            if (revents & PL_WRITABLE) and t._wsize:
                t._on_writable()
        finally:
            PyContext_Exit(context)
    except BaseException as exc:
        loop._stop_with(exc)


cdef object _MISSING = object()


cdef class SocketTransport(_StreamTransport):
    """A TCP or Unix stream socket's transport (asyncio.Transport's API).

    'socket', 'sockname' and 'peername' are looked up on first use (an
    accepted connection's peername comes from accept), which keeps an idle
    connection small."""

    @property
    def __class__(self):
        # isinstance() falls back to __class__ when type() does not match:
        # this makes isinstance(t, asyncio.Transport) true, as asyncio's own
        # transports are, though a C class cannot inherit asyncio's.
        return _SocketTransportFacade

    def get_extra_info(self, name, default=None):
        value = self._extra.get(name, _MISSING)
        if value is not _MISSING:
            return value
        sock = self._sock
        if sock is None:
            return default
        if name == 'socket':
            value = _trsock.TransportSocket(sock)
        elif name == 'sockname':
            try:
                value = sock.getsockname()
            except OSError:
                value = None
        elif name == 'peername':
            try:
                value = sock.getpeername()
            except OSError:
                value = None
        else:
            return default
        self._extra[name] = value
        return value


class _SocketTransportFacade(_aio_transports_mod.Transport):
    """What SocketTransport instances report as __class__ (see there)."""
    __slots__ = ()


_SocketTransportFacade.__name__ = _SocketTransportFacade.__qualname__ = 'SocketTransport'
_SocketTransportFacade.__module__ = 'phaseloop'


# socket.socket's family and type properties wrap the C values in enums,
# in Python: 2.4 us of every connection's set-up; the C ones are ints.
cdef object _c_sock_family = _socket_c.socket.family
cdef object _c_sock_type = _socket_c.socket.type


cdef SocketTransport _new_socket_transport(_Loop loop, sock, protocol, waiter, dict extra, server):
    cdef SocketTransport t = SocketTransport.__new__(SocketTransport)
    cdef int family = _c_sock_family.__get__(sock)
    if extra is None:
        extra = {}
    if (family == socket.AF_INET or family == socket.AF_INET6) \
            and _c_sock_type.__get__(sock) == socket.SOCK_STREAM \
            and sock.proto == socket.IPPROTO_TCP:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t._setup(loop, sock, sock.fileno(), _SOCKET, protocol, extra, server)
    t._schedule_start(waiter)
    return t


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)
