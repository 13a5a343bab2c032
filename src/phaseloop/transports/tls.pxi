# transports/tls.pxi — phaseloop's TLS layer: SSLTransport.
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
# (endpoints/tls.pxi).

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
        return _tls_control_app_writing(self, _tls_send_records(self))

    cdef int _dispatch_ciphertext(self, _TLSState state) except -1:
        if state == _TLS_WRAPPED:
            return _tls_do_read(self)
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
                _tls_do_write(self)
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
        _tls_process_outgoing(self)

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
            return _tls_process_outgoing(self)
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
        return _tls_do_read(self)

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
        _tls_do_read(self)
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
            return _tls_process_outgoing(self)
        except _SSLError as exc:
            return self._on_shutdown_complete(exc)
        _tls_process_outgoing(self)
        _tls_call_eof_received(self)
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

    # ---- reading again later (scheduled as bound methods) --------------------------

    def _read_later(self):
        _tls_do_read(self)

    def _resume_read(self):
        if self._state == _TLS_WRAPPED:
            _tls_do_read(self)
        elif self._state == _TLS_FLUSHING:
            self._do_flush()
        elif self._state == _TLS_SHUTDOWN:
            self._do_shutdown()

    # ---- errors ---------------------------------------------------------------------

    cdef _fatal_error(self, exc, message='Fatal error on transport'):
        if self._in_receive:
            # What the application wrote before the error leaves first, as
            # it would have had the records not waited for the read event.
            _tls_send_records(self)
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
        _tls_write_appdata(self, data)

    def writelines(self, list_of_data):
        """Encrypt all of them in one pass (one send, as asyncio)."""
        if _tls_write_refused(self):
            return
        for data in list_of_data:
            if data:
                _tls_add_backlog(self, data, 0, _nbytes(data))
        _tls_write_backlog(self)

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
        _tls_control_app_writing(self, -1)

    def get_read_buffer_size(self):
        """Ciphertext received and not yet decrypted."""
        return self._incoming.pending

    def get_read_buffer_limits(self):
        return (self._read_low, self._read_high)

    def set_read_buffer_limits(self, high=None, low=None):
        self._read_high, self._read_low = _flow_limits(high, low, _TLS_READ_HIGH)
        _tls_control_ssl_reading(self)

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
