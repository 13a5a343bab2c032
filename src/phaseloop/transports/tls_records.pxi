# transports/tls_records.pxi — an SSLTransport's records (transports/tls.pxi).
#
# Out: what the application writes is encrypted into the outgoing BIO at
# once (or kept in a backlog until the handshake is done), and the records
# go to the raw transport in one syscall when the read event ends; write
# flow control on the application's protocol.  In: the records the raw
# transport hands over are decrypted only while bytes are pending, into
# the bytes object data_received() gets or a BufferedProtocol's buffer;
# read flow control on the raw transport.
#
# Functions of the SSLTransport, not methods, only so that this file and
# tls.pxi stay apart (Cython keeps a cdef class in one file); a call costs
# the same.

# ---- outgoing -------------------------------------------------------------------

cdef bint _tls_write_refused(SSLTransport self) except -1:
    """A write after close(), abort() or the connection's loss: counted
    (and logged past a threshold) and dropped, as on asyncio."""
    if (self._state != _TLS_FLUSHING and self._state != _TLS_SHUTDOWN
            and self._state != _TLS_UNWRAPPED):
        return False
    if self._conn_lost >= _aio_constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
        logger.warning('SSL connection is closed')
    self._conn_lost += 1
    return True

cdef int _tls_write_appdata(SSLTransport self, data) except -1:
    """write(data) once checked; data is bytes-like and not empty."""
    cdef Py_ssize_t size, count
    if _tls_write_refused(self):
        return 0
    if self._state != _TLS_WRAPPED or self._backlog:
        _tls_add_backlog(self, data, 0, _nbytes(data))
        return _tls_write_backlog(self)
    # WRAPPED with nothing waiting: encrypt now, no backlog.
    try:
        size = _nbytes(data)
        try:
            count = self._ssl_write(data)
        except _SSLAgainErrors:
            count = 0
        if count < size:
            _tls_add_backlog(self, data, count, size)
        self._unsent_bound += count + _TLS_WRITE_OVERHEAD
        _tls_process_outgoing(self)
    except Exception as exc:
        self._fatal_error(exc, 'Fatal error on SSL protocol')
    return 0

cdef int _tls_write_backlog(SSLTransport self) except -1:
    """Encrypt the backlog now if the handshake is done."""
    if self._state == _TLS_WRAPPED:
        try:
            _tls_do_write(self)
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
    return 0

cdef _tls_add_backlog(SSLTransport self, data, Py_ssize_t start, Py_ssize_t size):
    # A copy of what the caller may still change (bytearray, memoryview).
    if type(data) is not bytes or start:
        data = bytes(memoryview(data).cast('B')[start:])
    if self._backlog is None:
        self._backlog = []
    self._backlog.append(data)
    self._backlog_size += size - start

cdef int _tls_do_write(SSLTransport self) except -1:
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
    return _tls_process_outgoing(self)

cdef int _tls_process_outgoing(SSLTransport self) except -1:
    """Send the encrypted records, then write flow control. While a read
    event runs, the records wait for its end (_on_ciphertext sends them),
    and the exact flow control check runs only when the records waiting
    could reach the high-water mark."""
    if not self._in_receive:
        return _tls_control_app_writing(self, _tls_send_records(self))
    if (not self._app_writing_paused and self._unsent_bound + self._backlog_size
            + _TLS_PROTOCOL_SLACK >= self._write_high):
        return _tls_control_app_writing(self, -1)
    return 0

cdef Py_ssize_t _tls_send_records(SSLTransport self) except -2:
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

cdef int _tls_control_app_writing(SSLTransport self, Py_ssize_t pending) except -1:
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

cdef int _tls_do_read(SSLTransport self) except -1:
    if self._state != _TLS_WRAPPED and self._state != _TLS_FLUSHING:
        return 0
    try:
        if not self._app_reading_paused:
            if self._app_buffered:
                _tls_read_into_app_buffer(self)
            else:
                _tls_read_and_deliver(self)
            if self._backlog:
                _tls_do_write(self)
            else:
                _tls_process_outgoing(self)
        # A copied read leaves the incoming BIO empty: below the limits.
        if self._app_reading_paused or self._ssl_reading_paused or self._app_buffered:
            _tls_control_ssl_reading(self)
    except Exception as exc:
        self._fatal_error(exc, 'Fatal error on SSL protocol')
    return 0

cdef int _tls_read_and_deliver(SSLTransport self) except -1:
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
            return _tls_deliver_eof(self)
        # Fewer bytes than asked: the record is done (a record read in
        # part before can hold more plaintext than the BIO's bytes).
        if count < n:
            if not self._incoming.pending:
                return _tls_deliver(self, first, False)
        elif not self._incoming.pending and not self._ssl_pending():
            return _tls_deliver(self, first, False)
        parts = [first]
    eof = _tls_read_records(self, parts)
    if not parts:
        data = None
    elif len(parts) == 1:
        data = parts[0]
    else:
        data = b''.join(parts)
    return _tls_deliver(self, data, eof)

cdef bint _tls_read_records(SSLTransport self, list parts) except -1:
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

cdef int _tls_deliver(SSLTransport self, data, bint eof) except -1:
    if data is not None:
        self._app_protocol.data_received(data)
    if eof:
        return _tls_deliver_eof(self)
    return 0

cdef int _tls_deliver_eof(SSLTransport self) except -1:
    """close_notify received."""
    _tls_call_eof_received(self)
    return self._start_shutdown()

cdef int _tls_read_into_app_buffer(SSLTransport self) except -1:
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
        return _tls_deliver_eof(self)
    return 0

cdef _tls_call_eof_received(SSLTransport self):
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

cdef int _tls_control_ssl_reading(SSLTransport self) except -1:
    cdef Py_ssize_t size = self._incoming.pending
    if size >= self._read_high and not self._ssl_reading_paused:
        self._ssl_reading_paused = True
        self._transport.pause_reading()
    elif size <= self._read_low and self._ssl_reading_paused:
        self._ssl_reading_paused = False
        self._transport.resume_reading()
    return 0
