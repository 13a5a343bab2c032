# endpoints/tls.pxi — TLS on every stream endpoint and start_tls.
#
# TLS runs in phaseloop's compiled layer, SSLTransport (transports/tls.pxi),
# stacked on a phaseloop SocketTransport. PHASELOOP_TLS=asyncio in the
# environment (read whenever a TLS connection is made) stacks asyncio's own
# sslproto.SSLProtocol there instead, as phaseloop did before it had its own
# layer: the way back for a program that meets a difference.

from libc.stdlib cimport getenv
from libc.string cimport strcmp

from asyncio import sslproto as _sslproto
from asyncio import streams as _aio_streams

#: The values PHASELOOP_TLS may take: which TLS layer new connections get.
TLS_LAYERS = ('phaseloop', 'asyncio')


cdef bint _asyncio_tls_layer() except -1:
    """True when PHASELOOP_TLS asks for asyncio's SSLProtocol. C's getenv
    (os.environ's changes reach it through putenv): os.environ.get cost a
    tenth of the Python a handshake runs."""
    cdef const char *layer = getenv(b'PHASELOOP_TLS')
    if layer == NULL or layer[0] == 0 or strcmp(layer, b'phaseloop') == 0:
        return False
    if strcmp(layer, b'asyncio') == 0:
        return True
    raise ValueError(f'PHASELOOP_TLS must be one of {", ".join(TLS_LAYERS)}, '
                     f'not {(<bytes>layer).decode(errors="replace")!r}')


cdef _move_read_ahead(protocol, tls_protocol):
    """start_tls(server_side=True) over asyncio streams: the bytes the
    StreamReader already holds came after the last plaintext line the
    server read, so they are the client's first TLS records (a ClientHello
    sent right behind a STARTTLS or PROXY line); they go to the TLS layer
    instead of being stranded in the reader."""
    if not isinstance(protocol, _aio_streams.StreamReaderProtocol):
        return
    reader = protocol._stream_reader
    if reader is None or not reader._buffer:
        return
    data = bytes(reader._buffer)
    reader._buffer.clear()
    reader._paused = False     # start_tls resumes the transport itself
    if type(tls_protocol) is SSLTransport:
        (<SSLTransport>tls_protocol)._incoming.write(data)
    else:
        tls_protocol._incoming.write(data)


class _TLSMethods:

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None, extra=None,
                            server=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None):
        try:
            use_sslproto = _asyncio_tls_layer()
        except ValueError:
            rawsock.close()
            raise
        if not use_sslproto:
            tls = _new_tls_transport(self, protocol, sslcontext, waiter, server_side,
                                     server_hostname, True, ssl_handshake_timeout,
                                     ssl_shutdown_timeout)
            _new_socket_transport(self, rawsock, tls, None, extra, server)
            return tls
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        _new_socket_transport(self, rawsock, ssl_protocol, None, extra, server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade a connection to TLS; return the new transport that
        protocol must use from now on."""
        if _ssl is None:
            raise RuntimeError('Python ssl module is not available')
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(f'sslcontext is expected to be an instance of ssl.SSLContext, '
                            f'got {sslcontext!r}')
        if not isinstance(transport, SocketTransport) \
                and not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(f'transport {transport!r} is not supported by start_tls()')
        waiter = self.create_future()
        if not _asyncio_tls_layer():
            ssl_protocol = _new_tls_transport(self, protocol, sslcontext, waiter, server_side,
                                              server_hostname, False, ssl_handshake_timeout,
                                              ssl_shutdown_timeout)
            app_transport = ssl_protocol
        else:
            ssl_protocol = _sslproto.SSLProtocol(
                self, protocol, sslcontext, waiter, server_side, server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                call_connection_made=False)
            app_transport = ssl_protocol._app_transport
        if server_side:
            _move_read_ahead(transport.get_protocol(), ssl_protocol)
        # Pause first, so ssl_protocol gets no data before connection_made.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return app_transport
