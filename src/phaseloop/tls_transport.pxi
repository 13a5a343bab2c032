# tls_transport.pxi — phaseloop's TLS layer: SSLTransport.
#
# One SSLTransport per TLS connection (named as asyncio names its SSL
# classes; code and CPython's tests look for 'ssl' in the class name). It is
# the protocol of the stream transport under it (the raw transport, which
# carries ciphertext) and the transport the application sees (plaintext,
# asyncio's _SSLProtocolTransport API). Its state machine is asyncio's
# SSLProtocol's (handshake, WRAPPED, FLUSHING, SHUTDOWN, UNWRAPPED; the same
# timeouts, flow control limits, errors and callbacks in the same order),
# with typed state.
#
# Ciphertext in: a phaseloop stream transport reads into its loop's 256 KiB
#   read buffer and hands the bytes to _receive() at C level. They go into
#   the incoming MemoryBIO through the loop's _ByteWindow (no bytes object).
#   The plaintext is read only while the BIO or the SSL object has bytes
#   pending (a read that finds nothing raises SSLWantReadError, which costs
#   about as much as the read), straight into the one bytes object the
#   application gets per read event (sized by the ciphertext, cut to the
#   plaintext), or into a BufferedProtocol's own buffer.
# Plaintext out: write() encrypts at once into the outgoing MemoryBIO. The
#   records are sent when the read event that runs the application's
#   callback ends (at once outside one): whatever one data_received() wrote
#   leaves in one syscall, or one writev behind a backlog.
#
# Under a transport that is not phaseloop's (TLS over TLS, a custom
# transport with _start_tls_compatible) the layer is a plain Protocol:
# data_received() and transport.write().
#
# asyncio's sslproto.SSLProtocol is still used when PHASELOOP_TLS=asyncio
# (tls.pxi).

from cpython.buffer cimport PyBuffer_FillInfo

from asyncio import constants as _aio_constants

if _ssl is not None:
    import _ssl as _ssl_c
    _SSLAgainErrors = (_ssl.SSLWantReadError, _ssl.SSLSyscallError)
    _SSLError = _ssl.SSLError
    _CertificateError = _ssl.CertificateError
    _MemoryBIO = _ssl.MemoryBIO
    _SSLObject = _ssl.SSLObject
    _SSLSocket = _ssl_c._SSLSocket
else:  # pragma: no cover - Python built without OpenSSL
    _SSLAgainErrors = _SSLError = _CertificateError = ()
    _MemoryBIO = _SSLObject = _SSLSocket = None

# The C methods of the objects under ssl.SSLObject, looked up once: a call
# through them skips the attribute lookup, and the SSLObject's Python frame.
cdef object _bio_write = _MemoryBIO.write if _ssl is not None else None
cdef object _bio_read = _MemoryBIO.read if _ssl is not None else None
cdef object _sock_read = _SSLSocket.read if _ssl is not None else None
cdef object _sock_write = _SSLSocket.write if _ssl is not None else None
cdef object _sock_pending = _SSLSocket.pending if _ssl is not None else None

# The largest TLS record on the wire: 16 KiB of plaintext plus header,
# padding and tag (RFC 8446 5.2 allows 2**14 + 256 of ciphertext).
cdef Py_ssize_t _TLS_RECORD_MAX = 16384 + 256 + 5
# What encrypting one write() can add to it beyond its plaintext (record
# headers and tags), for the write flow control check while records wait
# for the read event to end; and room for the records TLS itself writes.
cdef Py_ssize_t _TLS_WRITE_OVERHEAD = 64
cdef Py_ssize_t _TLS_PROTOCOL_SLACK = 4096

cdef Py_ssize_t _TLS_READ_HIGH = _aio_constants.FLOW_CONTROL_HIGH_WATER_SSL_READ * 1024
cdef Py_ssize_t _TLS_WRITE_HIGH = _aio_constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE * 1024


cdef enum _TLSState:
    _TLS_UNWRAPPED
    _TLS_HANDSHAKE
    _TLS_WRAPPED
    _TLS_FLUSHING
    _TLS_SHUTDOWN

cdef tuple _TLS_STATE_NAMES = ('UNWRAPPED', 'DO_HANDSHAKE', 'WRAPPED', 'FLUSHING', 'SHUTDOWN')

# The application protocol's state: INIT -made-> MADE [-eof-> EOF] -lost-> LOST.
cdef enum _AppState:
    _APP_INIT
    _APP_MADE
    _APP_EOF
    _APP_LOST


@cython.final
cdef class _ByteWindow:
    """A buffer over (ptr, size), aimed anew before each use: MemoryBIO.write
    and SSLObject.read take it where they would take a fresh bytes or
    memoryview. One per loop (_Loop._tls_window); a call captures ptr and
    size when it parses its arguments, so nothing can move it under a call."""
    cdef char *ptr
    cdef Py_ssize_t size

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.ptr, self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef _ByteWindow _loop_tls_window(_Loop loop):
    """The loop's window, and its 256 KiB read buffer allocated."""
    if loop._read_buf == NULL:
        loop._read_buf = <char *>malloc(_READ_BUF_SIZE)
        if loop._read_buf == NULL:
            raise MemoryError()
    if loop._tls_window is None:
        loop._tls_window = _ByteWindow.__new__(_ByteWindow)
    return loop._tls_window


cdef Py_ssize_t _nbytes(data) except -1:
    if type(data) is bytes:
        return PyBytes_GET_SIZE(data)
    return memoryview(data).nbytes


cdef tuple _flow_limits(high, low, Py_ssize_t default_high):
    """(high, low) as asyncio's add_flowcontrol_defaults sets them."""
    if high is None:
        high = default_high if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError('high (%r) must be >= low (%r) must be >= 0' % (high, low))
    return high, low


cdef object _default_client_context(bint server_side, server_hostname):
    if server_side:
        raise ValueError('Server side SSL needs a valid SSLContext')
    # ssl=True: the default context, secure for clients.
    context = _ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


cdef class SSLTransport:
    """A TLS connection's transport: asyncio's SSL transport API
    (write, writelines, close, abort, pause/resume_reading, write buffer
    and read buffer limits, get_extra_info with 'sslcontext', 'ssl_object',
    'peercert', 'cipher', 'compression' and the socket's keys).

    Made by create_connection/create_server(ssl=...), start_tls and the
    other ssl= endpoints. It is also the protocol of the stream transport
    under it, so it has the protocol methods too (connection_made,
    data_received, eof_received, connection_lost, pause/resume_writing),
    which only that transport calls.

    >>> transport, protocol = await loop.create_connection(
    ...     Protocol, 'example.com', 443, ssl=ssl.create_default_context())
    >>> transport.get_extra_info('ssl_object').version()
    'TLSv1.3'
    """

    _start_tls_compatible = True
    _sendfile_compatible = _aio_constants._SendfileMode.FALLBACK

    cdef _Loop _loop
    cdef object _transport              # the transport under TLS (ciphertext)
    cdef _StreamTransport _raw          # the same when it is phaseloop's, else None
    cdef object _app_protocol
    cdef object _sslcontext
    cdef object _sslobj                 # the ssl.SSLObject ('ssl_object')
    cdef object _sslsock                # its _ssl._SSLSocket, called directly (None: custom class)
    cdef object _incoming               # MemoryBIO: ciphertext received
    cdef object _outgoing               # MemoryBIO: ciphertext to send
    cdef object _waiter
    cdef object _peercert
    cdef list _backlog                  # plaintext waiting for the handshake (or SSL); None: empty
    cdef Py_ssize_t _backlog_size
    cdef Py_ssize_t _unsent_bound       # at most this much ciphertext waits for the read event's end
    cdef object _handshake_timer
    cdef object _shutdown_timer
    cdef double _handshake_timeout
    cdef double _shutdown_timeout
    cdef double _handshake_started
    cdef Py_ssize_t _read_high
    cdef Py_ssize_t _read_low
    cdef Py_ssize_t _write_high
    cdef Py_ssize_t _write_low
    cdef int _conn_lost
    cdef _TLSState _state
    cdef _AppState _app_state
    cdef bint _server_side
    cdef bint _app_buffered             # the application protocol is a BufferedProtocol
    cdef bint _closed                   # close()/abort() called or the connection lost
    cdef bint _handshake_done           # the post-handshake extra info is there
    cdef bint _eof_received
    cdef bint _app_reading_paused
    cdef bint _app_writing_paused
    cdef bint _ssl_reading_paused       # the raw transport is paused by us
    cdef bint _ssl_writing_paused       # the raw transport asked us to pause
    cdef bint _in_receive               # records written meanwhile go out when it ends
    cdef object __weakref__
    cdef dict __dict__                  # instance attributes, as the other transports take

    def __init__(self, *args, **kwargs):
        raise TypeError("phaseloop TLS transports are created by the loop")

    @property
    def __class__(self):
        # As SocketTransport: isinstance(t, asyncio.Transport) is true.
        return _SSLTransportFacade

    # ---- set-up ---------------------------------------------------------------------

    cdef _setup(self, _Loop loop, app_protocol, sslcontext, waiter, bint server_side,
                server_hostname, bint call_connection_made, ssl_handshake_timeout,
                ssl_shutdown_timeout):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _aio_constants.SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, "
                             f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _aio_constants.SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(f"ssl_shutdown_timeout should be a positive number, "
                             f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _default_client_context(server_side, server_hostname)
        if not server_hostname or server_side:
            server_hostname = None
        self._loop = loop
        self._sslcontext = sslcontext
        self._server_side = server_side
        self._waiter = waiter
        self._handshake_timeout = ssl_handshake_timeout
        self._shutdown_timeout = ssl_shutdown_timeout
        self._set_app_protocol(app_protocol)
        self._app_state = _APP_INIT if call_connection_made else _APP_MADE
        self._state = _TLS_UNWRAPPED
        self._incoming = _MemoryBIO()
        self._outgoing = _MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(self._incoming, self._outgoing,
                                           server_side=server_side,
                                           server_hostname=server_hostname)
        # ssl.SSLObject's methods only forward to its _SSLSocket; calling that
        # directly saves a Python frame per call. A custom sslobject_class
        # is called as it is.
        if type(self._sslobj) is _SSLObject and type(self._sslobj._sslobj) is _SSLSocket:
            self._sslsock = self._sslobj._sslobj
        self._read_high = _TLS_READ_HIGH
        self._read_low = _TLS_READ_HIGH // 4
        self._write_high = _TLS_WRITE_HIGH
        self._write_low = _TLS_WRITE_HIGH // 4

    cdef _set_app_protocol(self, protocol):
        self._app_protocol = protocol
        self._app_buffered = (hasattr(protocol, 'get_buffer')
                              and isinstance(protocol, _protocols.BufferedProtocol))

    cdef _wakeup_waiter(self, exc=None):
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)

    cdef int _set_state(self, _TLSState new_state) except -1:
        cdef _TLSState old = self._state
        if (new_state == _TLS_UNWRAPPED
                or (old == _TLS_UNWRAPPED and new_state == _TLS_HANDSHAKE)
                or (old == _TLS_HANDSHAKE and new_state == _TLS_WRAPPED)
                or (old == _TLS_WRAPPED and new_state == _TLS_FLUSHING)
                or (old == _TLS_FLUSHING and new_state == _TLS_SHUTDOWN)):
            self._state = new_state
            return 0
        raise RuntimeError(f'cannot switch state from SSLProtocolState.{_TLS_STATE_NAMES[old]} '
                           f'to SSLProtocolState.{_TLS_STATE_NAMES[new_state]}')

    # ---- the SSL object's calls ----------------------------------------------------

    cdef inline object _ssl_read(self, Py_ssize_t n):
        """Up to n bytes of plaintext, as a new bytes object."""
        if self._sslsock is not None:
            return _sock_read(self._sslsock, n)
        return self._sslobj.read(n)

    cdef inline Py_ssize_t _ssl_read_into(self, _ByteWindow window) except -1:
        if self._sslsock is not None:
            return _sock_read(self._sslsock, window.size, window)
        return self._sslobj.read(window.size, window)

    cdef inline Py_ssize_t _ssl_write(self, data) except -1:
        if self._sslsock is not None:
            return _sock_write(self._sslsock, data)
        return self._sslobj.write(data)

    cdef inline Py_ssize_t _ssl_pending(self) except -1:
        """Plaintext decrypted and not read yet (a record read in part)."""
        if self._sslsock is not None:
            return _sock_pending(self._sslsock)
        return self._sslobj.pending()

    # ---- the protocol of the raw transport ------------------------------------------

    def connection_made(self, transport):
        """The raw transport is connected: start the handshake."""
        self._transport = transport
        self._raw = transport if isinstance(transport, _StreamTransport) else None
        self._start_handshake()

    def data_received(self, data):
        """Ciphertext from a transport that is not phaseloop's."""
        _bio_write(self._incoming, data)
        self._on_ciphertext()

    cdef int _receive(self, char *data, Py_ssize_t n) except -1:
        """Ciphertext read by the raw transport into its loop's buffer."""
        cdef _ByteWindow window = self._loop._tls_window
        if window is None:
            window = _loop_tls_window(self._loop)
        window.ptr = data
        window.size = n
        _bio_write(self._incoming, window)
        return self._on_ciphertext()

    cdef int _on_ciphertext(self) except -1:
        cdef _TLSState state = self._state
        if self._in_receive:        # re-entered (TLS over TLS): the outer one sends
            return self._dispatch_ciphertext(state)
        self._in_receive = True
        try:
            self._dispatch_ciphertext(state)
        finally:
            self._in_receive = False
        return self._control_app_writing(self._send_records())

    cdef int _dispatch_ciphertext(self, _TLSState state) except -1:
        if state == _TLS_WRAPPED:
            return self._do_read()
        if state == _TLS_HANDSHAKE:
            return self._do_handshake()
        if state == _TLS_FLUSHING:
            return self._do_flush()
        if state == _TLS_SHUTDOWN:
            return self._do_shutdown()
        return 0

    def eof_received(self):
        """The peer ended the TCP stream (with or without close_notify)."""
        self._eof_received = True
        try:
            if self._loop._debug:
                logger.debug("%r received EOF", self)
            if self._state == _TLS_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError)
            elif self._state == _TLS_WRAPPED:
                self._set_state(_TLS_FLUSHING)
                if self._app_reading_paused:
                    return True
                self._do_flush()
            elif self._state == _TLS_FLUSHING:
                self._do_write()
                self._set_state(_TLS_SHUTDOWN)
                self._do_shutdown()
            elif self._state == _TLS_SHUTDOWN:
                self._do_shutdown()
        except Exception:
            self._transport.close()
            raise

    def connection_lost(self, exc):
        """The raw transport is closed: tell the application (once)."""
        self._backlog = None
        self._backlog_size = 0
        _bio_read(self._outgoing)
        self._conn_lost += 1
        self._closed = True
        if self._state != _TLS_HANDSHAKE:
            if self._app_state == _APP_MADE or self._app_state == _APP_EOF:
                self._app_state = _APP_LOST
                self._loop._call_soon(self._app_protocol.connection_lost, (exc,), None)
        self._set_state(_TLS_UNWRAPPED)
        self._transport = None
        self._raw = None
        self._app_protocol = None
        self._wakeup_waiter(exc)
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def pause_writing(self):
        """The raw transport's buffer is over its high-water mark."""
        assert not self._ssl_writing_paused
        self._ssl_writing_paused = True

    def resume_writing(self):
        """The raw transport's buffer drained below its low-water mark."""
        assert self._ssl_writing_paused
        self._ssl_writing_paused = False
        self._process_outgoing()

    # ---- handshake ------------------------------------------------------------------

    cdef int _start_handshake(self) except -1:
        if self._loop._debug:
            logger.debug("%r starts SSL handshake", self)
            self._handshake_started = self._loop.time()
        self._set_state(_TLS_HANDSHAKE)
        self._handshake_timer = self._loop.call_later(self._handshake_timeout,
                                                      self._check_handshake_timeout)
        return self._do_handshake()

    def _check_handshake_timeout(self):
        if self._state == _TLS_HANDSHAKE:
            self._fatal_error(ConnectionAbortedError(
                f"SSL handshake is taking longer than {self._handshake_timeout} seconds: "
                f"aborting the connection"))

    cdef int _do_handshake(self) except -1:
        try:
            if self._sslsock is not None:
                self._sslsock.do_handshake()
            else:
                self._sslobj.do_handshake()
        except _SSLAgainErrors:
            return self._process_outgoing()
        except _SSLError as exc:
            return self._on_handshake_complete(exc)
        return self._on_handshake_complete(None)

    cdef int _on_handshake_complete(self, handshake_exc) except -1:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        try:
            if handshake_exc is not None:
                raise handshake_exc
            self._set_state(_TLS_WRAPPED)
            self._peercert = self._sslobj.getpeercert()
        except Exception as exc:
            handshake_exc = None
            self._set_state(_TLS_UNWRAPPED)
            if isinstance(exc, _CertificateError):
                msg = 'SSL handshake failed on verifying the certificate'
            else:
                msg = 'SSL handshake failed'
            self._fatal_error(exc, msg)
            self._wakeup_waiter(exc)
            return 0
        if self._loop._debug:
            logger.debug("%r: SSL handshake took %.1f ms", self,
                         (self._loop.time() - self._handshake_started) * 1e3)
        self._handshake_done = True
        if self._app_state == _APP_INIT:
            self._app_state = _APP_MADE
            self._app_protocol.connection_made(self)
        self._wakeup_waiter()
        return self._do_read()

    # ---- shutdown -------------------------------------------------------------------

    cdef int _start_shutdown(self) except -1:
        if (self._state == _TLS_FLUSHING or self._state == _TLS_SHUTDOWN
                or self._state == _TLS_UNWRAPPED):
            return 0
        self._closed = True
        if self._state == _TLS_HANDSHAKE:
            return self._abort(None)
        self._set_state(_TLS_FLUSHING)
        self._shutdown_timer = self._loop.call_later(self._shutdown_timeout,
                                                     self._check_shutdown_timeout)
        return self._do_flush()

    def _check_shutdown_timeout(self):
        if self._state == _TLS_FLUSHING or self._state == _TLS_SHUTDOWN:
            self._force_close_raw(TimeoutError('SSL shutdown timed out'))

    cdef int _do_flush(self) except -1:
        self._do_read()
        self._set_state(_TLS_SHUTDOWN)
        return self._do_shutdown()

    cdef int _do_shutdown(self) except -1:
        try:
            if not self._eof_received:
                if self._sslsock is not None:
                    self._sslsock.shutdown()
                else:
                    self._sslobj.unwrap()
        except _SSLAgainErrors:
            return self._process_outgoing()
        except _SSLError as exc:
            return self._on_shutdown_complete(exc)
        self._process_outgoing()
        self._call_eof_received()
        return self._on_shutdown_complete(None)

    cdef int _on_shutdown_complete(self, shutdown_exc) except -1:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if shutdown_exc:
            self._fatal_error(shutdown_exc)
        else:
            self._loop._call_soon(self._transport.close, (), None)
        return 0

    cdef int _abort(self, exc) except -1:
        self._set_state(_TLS_UNWRAPPED)
        if self._transport is not None:
            self._force_close_raw(exc)
        return 0

    cdef _force_close_raw(self, exc):
        if self._raw is not None:
            self._raw._force_close(exc)
        elif hasattr(self._transport, '_force_close'):
            self._transport._force_close(exc)
        else:
            self._transport.abort()

    # ---- outgoing -------------------------------------------------------------------

    cdef bint _write_refused(self) except -1:
        """A write after close(), abort() or the connection's loss: counted
        (and logged past a threshold) and dropped, as on asyncio."""
        if (self._state != _TLS_FLUSHING and self._state != _TLS_SHUTDOWN
                and self._state != _TLS_UNWRAPPED):
            return False
        if self._conn_lost >= _aio_constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning('SSL connection is closed')
        self._conn_lost += 1
        return True

    cdef int _write_appdata(self, data) except -1:
        """write(data) once checked; data is bytes-like and not empty."""
        cdef Py_ssize_t size, count
        if self._write_refused():
            return 0
        if self._state != _TLS_WRAPPED or self._backlog:
            self._add_backlog(data, 0, _nbytes(data))
            return self._write_backlog()
        # WRAPPED with nothing waiting: encrypt now, no backlog.
        try:
            size = _nbytes(data)
            try:
                count = self._ssl_write(data)
            except _SSLAgainErrors:
                count = 0
            if count < size:
                self._add_backlog(data, count, size)
            self._unsent_bound += count + _TLS_WRITE_OVERHEAD
            self._process_outgoing()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _write_backlog(self) except -1:
        """Encrypt the backlog now if the handshake is done."""
        if self._state == _TLS_WRAPPED:
            try:
                self._do_write()
            except Exception as exc:
                self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef _add_backlog(self, data, Py_ssize_t start, Py_ssize_t size):
        # A copy of what the caller may still change (bytearray, memoryview).
        if type(data) is not bytes or start:
            data = bytes(memoryview(data).cast('B')[start:])
        if self._backlog is None:
            self._backlog = []
        self._backlog.append(data)
        self._backlog_size += size - start

    cdef int _do_write(self) except -1:
        """Encrypt the backlog, as far as the SSL object takes it."""
        cdef bytes data
        cdef Py_ssize_t count, size
        cdef list backlog = self._backlog
        try:
            while backlog:
                data = <bytes>backlog[0]
                size = PyBytes_GET_SIZE(data)
                count = self._ssl_write(data)
                self._unsent_bound += count + _TLS_WRITE_OVERHEAD
                if count < size:
                    backlog[0] = data[count:]
                    self._backlog_size -= count
                else:
                    del backlog[0]
                    self._backlog_size -= size
        except _SSLAgainErrors:
            pass
        return self._process_outgoing()

    cdef int _process_outgoing(self) except -1:
        """Send the encrypted records, then write flow control. While a read
        event runs, the records wait for its end (_on_ciphertext sends them),
        and the exact flow control check runs only when the records waiting
        could reach the high-water mark."""
        if not self._in_receive:
            return self._control_app_writing(self._send_records())
        if (not self._app_writing_paused and self._unsent_bound + self._backlog_size
                + _TLS_PROTOCOL_SLACK >= self._write_high):
            return self._control_app_writing(-1)
        return 0

    cdef Py_ssize_t _send_records(self) except -2:
        """Send what the outgoing BIO holds: the bytes left there, -1 if unknown."""
        cdef bytes data
        if (self._ssl_writing_paused or self._transport is None
                or self._state == _TLS_UNWRAPPED):
            return -1
        data = _bio_read(self._outgoing)
        self._unsent_bound = 0
        if PyBytes_GET_SIZE(data):
            if self._raw is not None:
                self._raw._send(data)
            else:
                self._transport.write(data)
        return 0

    cdef int _control_app_writing(self, Py_ssize_t pending) except -1:
        """pause_writing/resume_writing on the application protocol when the
        bytes not yet handed on (pending: in the outgoing BIO, -1: ask it)
        cross the limits."""
        cdef Py_ssize_t size
        if pending == 0 and self._backlog_size == 0 and not self._app_writing_paused:
            return 0
        if pending < 0:
            pending = self._outgoing.pending
        size = pending + self._backlog_size
        if size >= self._write_high and not self._app_writing_paused:
            self._app_writing_paused = True
            try:
                self._app_protocol.pause_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    'message': 'protocol.pause_writing() failed',
                    'exception': exc,
                    'transport': self,
                    'protocol': self,
                })
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
            try:
                self._app_protocol.resume_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc,
                    'transport': self,
                    'protocol': self,
                })
        return 0

    # ---- incoming -------------------------------------------------------------------

    cdef int _do_read(self) except -1:
        if self._state != _TLS_WRAPPED and self._state != _TLS_FLUSHING:
            return 0
        try:
            if not self._app_reading_paused:
                if self._app_buffered:
                    self._read_into_app_buffer()
                else:
                    self._read_and_deliver()
                if self._backlog:
                    self._do_write()
                else:
                    self._process_outgoing()
            # A copied read leaves the incoming BIO empty: below the limits.
            if self._app_reading_paused or self._ssl_reading_paused or self._app_buffered:
                self._control_ssl_reading()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _read_and_deliver(self) except -1:
        """Decrypt all there is and hand it to data_received() at once.

        Reads only while the incoming BIO has bytes (or the SSL object has
        plaintext): a read that finds nothing raises SSLWantReadError, which
        costs as much as the read. One record (the common case, at most
        16 KiB of plaintext) is read as the bytes object the protocol gets;
        more are decrypted straight into one bytes object sized by the
        ciphertext there is, then cut to the plaintext (asyncio and uvloop
        decrypt each record into a bytes object of its own, then join)."""
        cdef Py_ssize_t n = self._incoming.pending
        cdef Py_ssize_t count
        cdef bytes first
        cdef list parts
        cdef bint eof
        if n == 0:
            n = self._ssl_pending()
            if n == 0:
                return 0
        if n > _TLS_RECORD_MAX:
            parts = []
        else:
            try:
                first = self._ssl_read(n)
            except _SSLAgainErrors:
                return 0        # a record in part
            count = PyBytes_GET_SIZE(first)
            if count == 0:
                return self._deliver_eof()
            # Fewer bytes than asked: the record is done (a record read in
            # part before can hold more plaintext than the BIO's bytes).
            if count < n:
                if not self._incoming.pending:
                    return self._deliver(first, False)
            elif not self._incoming.pending and not self._ssl_pending():
                return self._deliver(first, False)
            parts = [first]
        eof = self._read_records(parts)
        if not parts:
            data = None
        elif len(parts) == 1:
            data = parts[0]
        else:
            data = b''.join(parts)
        return self._deliver(data, eof)

    cdef bint _read_records(self, list parts) except -1:
        """Decrypt the records there are into new bytes objects appended to
        parts: each sized by the ciphertext in the BIO (plus a record the SSL
        object may hold in part), filled in place, cut to what it got.
        True when close_notify came."""
        cdef _ByteWindow window = _loop_tls_window(self._loop)
        cdef PyObject *block = NULL
        cdef Py_ssize_t cap = 0, total = 0, count
        cdef bint eof = False
        try:
            while True:
                if total == cap:
                    if block != NULL:
                        parts.append(<object>block)
                        Py_DECREF_raw(block)
                        block = NULL
                    cap = self._incoming.pending + _TLS_RECORD_MAX
                    total = 0
                    block = PyBytes_FromStringAndSize_raw(NULL, cap)
                    if block == NULL:
                        _raise_pending()
                window.ptr = PyBytes_AS_STRING(<object>block) + total
                window.size = cap - total
                try:
                    count = self._ssl_read_into(window)
                except _SSLAgainErrors:
                    break
                if count == 0:      # close_notify
                    eof = True
                    break
                total += count
                if count < window.size:
                    # SSL_read returns one record at most: this one is done.
                    if not self._incoming.pending:
                        break
                elif not self._incoming.pending and not self._ssl_pending():
                    break
            if total:
                if _PyBytes_Resize_raw(&block, total) < 0:
                    _raise_pending()        # block is NULL: freed
                parts.append(<object>block)
        finally:
            if block != NULL:
                Py_DECREF_raw(block)
        return eof

    cdef int _deliver(self, data, bint eof) except -1:
        if data is not None:
            self._app_protocol.data_received(data)
        if eof:
            return self._deliver_eof()
        return 0

    cdef int _deliver_eof(self) except -1:
        """close_notify received."""
        self._call_eof_received()
        return self._start_shutdown()

    cdef int _read_into_app_buffer(self) except -1:
        """A BufferedProtocol: decrypt straight into its buffer."""
        cdef Py_buffer view
        cdef _ByteWindow window = _loop_tls_window(self._loop)
        cdef Py_ssize_t offset = 0, count = 1, wants
        cdef bint full = False
        buf = self._app_protocol.get_buffer(self._incoming.pending)
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
        try:
            wants = view.len
            if wants == 0:
                raise RuntimeError('get_buffer() returned an empty buffer')
            while self._incoming.pending or self._ssl_pending():
                window.ptr = <char *>view.buf + offset
                window.size = wants - offset
                try:
                    count = self._ssl_read_into(window)
                except _SSLAgainErrors:
                    break
                if count == 0:
                    break
                offset += count
                if offset == wants:
                    full = True
                    break
        finally:
            PyBuffer_Release(&view)
        if full:
            # As asyncio: the rest after the protocol has seen this buffer.
            self._loop._call_soon(self._read_later, (), None)
        if offset > 0:
            self._app_protocol.buffer_updated(offset)
        if count == 0:
            return self._deliver_eof()
        return 0

    def _read_later(self):
        self._do_read()

    cdef _call_eof_received(self):
        try:
            if self._app_state == _APP_MADE:
                self._app_state = _APP_EOF
                keep_open = self._app_protocol.eof_received()
                if keep_open:
                    logger.warning('returning true from eof_received() '
                                   'has no effect when using ssl')
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Error calling eof_received()')

    cdef int _control_ssl_reading(self) except -1:
        cdef Py_ssize_t size = self._incoming.pending
        if size >= self._read_high and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._read_low and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()
        return 0

    def _resume_read(self):
        if self._state == _TLS_WRAPPED:
            self._do_read()
        elif self._state == _TLS_FLUSHING:
            self._do_flush()
        elif self._state == _TLS_SHUTDOWN:
            self._do_shutdown()

    # ---- errors ---------------------------------------------------------------------

    cdef _fatal_error(self, exc, message='Fatal error on transport'):
        if self._in_receive:
            # What the application wrote before the error leaves first, as
            # it would have had the records not waited for the read event.
            self._send_records()
        if self._transport is not None:
            self._force_close_raw(exc)
        if isinstance(exc, OSError):
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, _exceptions.CancelledError):
            self._loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self._transport,
                'protocol': self,
            })

    # ---- the application's transport API ------------------------------------------

    def get_extra_info(self, name, default=None):
        """'sslcontext'; after the handshake 'ssl_object', 'peercert', 'cipher'
        and 'compression'; then what the transport under TLS knows."""
        if name == 'sslcontext':
            return self._sslcontext
        if self._handshake_done:
            if name == 'ssl_object':
                return self._sslobj
            if name == 'peercert':
                return self._peercert
            if name == 'cipher':
                return self._sslobj.cipher()
            if name == 'compression':
                return self._sslobj.compression()
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol):
        self._set_app_protocol(protocol)

    def get_protocol(self):
        return self._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Flush what was written, send close_notify, wait (up to
        ssl_shutdown_timeout) for the peer's, then close; connection_lost(None)."""
        if not self._closed:
            self._closed = True
            self._start_shutdown()

    def abort(self):
        """Close at once: buffered data is lost; connection_lost(None)."""
        self._force_close(None)

    def _force_close(self, exc):
        self._closed = True
        self._abort(exc)

    def is_reading(self):
        return not self._app_reading_paused

    def pause_reading(self):
        """No data_received() until resume_reading()."""
        self._app_reading_paused = True

    def resume_reading(self):
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop._call_soon(self._resume_read, (), None)

    def write(self, data):
        """Encrypt data and send it (or buffer it until the handshake is done
        or the transport under TLS can take it)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        if not data:
            return
        self._write_appdata(data)

    def writelines(self, list_of_data):
        """Encrypt all of them in one pass (one send, as asyncio)."""
        if self._write_refused():
            return
        for data in list_of_data:
            if data:
                self._add_backlog(data, 0, _nbytes(data))
        self._write_backlog()

    def write_eof(self):
        """TLS has no half-close (as asyncio's SSL transport)."""
        raise NotImplementedError

    def can_write_eof(self):
        return False

    def get_write_buffer_size(self):
        """Bytes written and not yet handed to the transport under TLS."""
        return self._outgoing.pending + self._backlog_size

    def get_write_buffer_limits(self):
        return (self._write_low, self._write_high)

    def set_write_buffer_limits(self, high=None, low=None):
        self._write_high, self._write_low = _flow_limits(high, low, _TLS_WRITE_HIGH)
        self._control_app_writing(-1)

    def get_read_buffer_size(self):
        """Ciphertext received and not yet decrypted."""
        return self._incoming.pending

    def get_read_buffer_limits(self):
        return (self._read_low, self._read_high)

    def set_read_buffer_limits(self, high=None, low=None):
        self._read_high, self._read_low = _flow_limits(high, low, _TLS_READ_HIGH)
        self._control_ssl_reading()

    @property
    def _protocol_paused(self):
        # loop.sendfile's fallback reads it.
        return self._app_writing_paused

    @property
    def _ssl_protocol(self):
        # asyncio's SSL transport keeps its SSLProtocol here; this object is both.
        return self

    def _test__append_write_backlog(self, data):
        # asyncio's test hook (CPython's test_ssl calls it).
        if self._backlog is None:
            self._backlog = []
        self._backlog.append(data)
        self._backlog_size += len(data)

    def __repr__(self):
        info = ['SSLTransport', _TLS_STATE_NAMES[self._state]]
        if self._server_side:
            info.append('server')
        if self._closed:
            info.append('closed')
        if self._transport is not None:
            info.append(f'on {self._transport!r}')
        return '<{}>'.format(' '.join(info))

    def __del__(self):
        if not self._closed:
            self._closed = True
            warnings.warn("unclosed transport <phaseloop.SSLTransport object>", ResourceWarning)


class _SSLTransportFacade(_aio_transports_mod._FlowControlMixin, _aio_transports_mod.Transport):
    """What SSLTransport instances report as __class__ (see SocketTransport).
    asyncio's SSL transport is a _FlowControlMixin too: the sendfile fallback
    checks it."""
    __slots__ = ()


_SSLTransportFacade.__name__ = _SSLTransportFacade.__qualname__ = 'SSLTransport'
_SSLTransportFacade.__module__ = 'phaseloop'


cdef SSLTransport _new_tls_transport(_Loop loop, app_protocol, sslcontext, waiter,
                                     bint server_side, server_hostname,
                                     bint call_connection_made, ssl_handshake_timeout,
                                     ssl_shutdown_timeout):
    cdef SSLTransport t = SSLTransport.__new__(SSLTransport)
    t._setup(loop, app_protocol, sslcontext, waiter, server_side, server_hostname,
             call_connection_made, ssl_handshake_timeout, ssl_shutdown_timeout)
    return t
