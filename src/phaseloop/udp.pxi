# udp.pxi — create_datagram_endpoint and DatagramTransport.
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


class _UDPMethods:

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None,
                                       remote_addr=None, *, family=0, proto=0, flags=0,
                                       reuse_port=None, allow_broadcast=None, sock=None):
        """Create a datagram endpoint: (DatagramTransport, protocol)."""
        if sock is not None:
            if sock.type != socket.SOCK_DGRAM:
                raise ValueError(f'A UDP Socket was expected, got {sock!r}')
            if (local_addr or remote_addr or family or proto or flags
                    or reuse_port or allow_broadcast):
                opts = dict(local_addr=local_addr, remote_addr=remote_addr, family=family,
                            proto=proto, flags=flags, reuse_port=reuse_port,
                            allow_broadcast=allow_broadcast)
                problems = ', '.join(f'{k}={v}' for k, v in opts.items() if v)
                raise ValueError(f'socket modifier keyword arguments can not be used '
                                 f'when sock is specified. ({problems})')
            sock.setblocking(False)
            r_addr = None
        else:
            addr_pairs_info = await self._datagram_addresses(local_addr, remote_addr,
                                                             family, proto, flags)
            exceptions = []
            for (family, proto), (local_address, remote_address) in addr_pairs_info:
                sock = None
                r_addr = None
                try:
                    sock = socket.socket(family=family, type=socket.SOCK_DGRAM, proto=proto)
                    if reuse_port:
                        if not hasattr(socket, 'SO_REUSEPORT'):
                            raise ValueError('reuse_port not supported by socket module')
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if allow_broadcast:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    sock.setblocking(False)
                    if local_addr:
                        sock.bind(local_address)
                    if remote_addr:
                        if not allow_broadcast:
                            await self.sock_connect(sock, remote_address)
                        r_addr = remote_address
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    exceptions.append(exc)
                except:
                    if sock is not None:
                        sock.close()
                    raise
                else:
                    break
            else:
                raise exceptions[0]
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = _new_datagram_transport(self, sock, protocol, r_addr, waiter)
        try:
            await waiter
        except:
            transport.close()
            raise
        return transport, protocol

    async def _datagram_addresses(self, local_addr, remote_addr, family, proto, flags):
        """((family, proto), (local, remote)) candidates, as asyncio pairs them."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError('unexpected address family')
            return (((family, proto), (None, None)),)
        if family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError('string is expected')
            if local_addr and local_addr[0] not in (0, '\0'):
                try:
                    if _stat.S_ISSOCK(os.stat(local_addr).st_mode):
                        os.remove(local_addr)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logger.error('Unable to check or remove stale UNIX socket %r: %r',
                                 local_addr, err)
            return (((family, proto), (local_addr, remote_addr)),)
        addr_infos = {}
        for idx, addr in ((0, local_addr), (1, remote_addr)):
            if addr is not None:
                if not (isinstance(addr, tuple) and len(addr) == 2):
                    raise TypeError('2-tuple is expected')
                infos = await self._ensure_resolved(addr, family=family, type=socket.SOCK_DGRAM,
                                                    proto=proto, flags=flags)
                if not infos:
                    raise OSError('getaddrinfo() returned empty list')
                for fam, _, pro, _, address in infos:
                    addr_infos.setdefault((fam, pro), [None, None])[idx] = address
        pairs = [(key, pair) for key, pair in addr_infos.items()
                 if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))]
        if not pairs:
            raise ValueError('can not get address information')
        return pairs
