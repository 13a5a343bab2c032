# transports/datagram.pxi — DatagramTransport (UDP and Unix datagram sockets).
#
# Like a stream transport, a DatagramTransport owns its fd's C watcher and
# is called straight from the poll phase; one recvfrom per readable event,
# sendto at once when nothing is queued, the rest queued as (data, addr)
# and flushed when writable. Errors of single datagrams (ICMP port
# unreachable...) go to protocol.error_received, as in asyncio.

import collections

# asyncio sends an empty datagram from Python 3.13 on; before, sendto(b'')
# did nothing.  With empty datagrams, 3.13 counts 8 bytes of header per
# queued datagram in the write buffer size, so that a queue of them still
# reaches the high-water mark (3.13.0-3.13.5 forgot to take the header off
# again when the datagram was sent, CPython gh-135444; we count it both ways).
cdef bint _SENDS_EMPTY_DATAGRAMS = sys.version_info >= (3, 13)
cdef Py_ssize_t _DATAGRAM_HEADER = 8 if _SENDS_EMPTY_DATAGRAMS else 0


cdef class DatagramTransport(_FdTransport):
    """A UDP (or Unix datagram) socket's transport (asyncio.DatagramTransport's API)."""
    cdef object _address            # the connected peer (remote_addr), or None
    cdef bint _connected            # the socket has a peer: send(), as asyncio does
    cdef object _queue              # deque of (bytes, addr) not yet sent

    @property
    def __class__(self):
        # As SocketTransport: isinstance(t, asyncio.DatagramTransport) holds.
        return _DatagramTransportFacade

    cdef _start(self, waiter):
        cdef _Loop loop = self._loop
        loop._call_soon(self._protocol.connection_made, (self,), self._context)
        loop._call_soon(self._start_reading, (), self._context)
        if waiter is not None:
            loop._call_soon(_set_result_unless_cancelled, (waiter, None), None)

    def _start_reading(self):
        if self._closing or self._loop is None:
            return
        self._reading = True
        self._update_events()

    cdef int _on_readable(self) except -1:
        if self._conn_lost:
            return 0
        try:
            data, addr = self._sock.recvfrom(_READ_BUF_SIZE)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._protocol.error_received(exc)
            return 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on datagram transport')
            return 0
        self._protocol.datagram_received(data, addr)
        return 0

    cdef int _send(self, data, addr) except -1:
        """1 if sent, 0 if it would block; errors go to the protocol."""
        try:
            if self._connected:
                # Also a socket connected before it was handed over (sock=):
                # sendto() with an address fails on some connected sockets
                # (AF_UNIX: EISCONN), send() is what asyncio uses.
                self._sock.send(data)
            else:
                self._sock.sendto(data, addr)
            return 1
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._protocol.error_received(exc)
            return -2
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal write error on datagram transport')
            return -2

    def sendto(self, data, addr=None):
        """Send one datagram to addr (or to the connected peer)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if not data and not _SENDS_EMPTY_DATAGRAMS:
            return
        if self._address is not None:
            if addr not in (None, self._address):
                raise ValueError(f'Invalid address: must be None or {self._address}')
            addr = self._address
        if self._conn_lost and self._address is not None:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('socket.send() raised exception.')
            self._conn_lost += 1
            return
        if self._closing and self._sock is None:
            return
        if not self._wsize:
            if self._send(data, addr) != 0:
                return
        self._queue.append((bytes(data), addr))
        self._wsize += len(data) + _DATAGRAM_HEADER
        self._update_events()
        self._maybe_pause_protocol()

    cdef int _on_writable(self) except -1:
        cdef int r
        while self._queue:
            data, addr = self._queue.popleft()
            self._wsize -= len(data) + _DATAGRAM_HEADER
            r = self._send(data, addr)
            if r == 0:
                self._queue.appendleft((data, addr))
                self._wsize += len(data) + _DATAGRAM_HEADER
                break
            if r < 0 and self._conn_lost:
                return 0
        self._maybe_resume_protocol()
        if not self._wsize:
            self._update_events()
            if self._closing:
                self._schedule_connection_lost(None)
        return 0

    cdef _drop_buffer(self):
        if self._queue:
            self._queue.clear()
        self._wsize = 0

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._reading = False
        self._update_events()
        if not self._wsize:
            self._conn_lost += 1
            self._schedule_connection_lost(None)

    def __repr__(self):
        state = 'closed' if self._sock is None else ('closing' if self._closing else 'open')
        return f'<DatagramTransport {state} fd={self._fd} bufsize={self._wsize}>'


class _DatagramTransportFacade(_aio_transports_mod.DatagramTransport, _aio_transports_mod.Transport):
    """What DatagramTransport instances report as __class__ (asyncio's datagram
    transports are both DatagramTransport and Transport)."""
    __slots__ = ()


_DatagramTransportFacade.__name__ = _DatagramTransportFacade.__qualname__ = 'DatagramTransport'
_DatagramTransportFacade.__module__ = 'phaseloop'


cdef DatagramTransport _new_datagram_transport(_Loop loop, sock, protocol, address, waiter):
    cdef DatagramTransport t = DatagramTransport.__new__(DatagramTransport)
    extra = {'socket': _trsock.TransportSocket(sock)}
    try:
        extra['sockname'] = sock.getsockname()
    except OSError:
        extra['sockname'] = None
    try:
        extra['peername'] = sock.getpeername()
    except OSError:
        extra['peername'] = None
    t._address = address
    t._connected = extra['peername'] is not None
    t._queue = collections.deque()
    t._setup_fd(loop, sock, sock.fileno(), protocol, extra, None)
    t._start(waiter)
    return t
