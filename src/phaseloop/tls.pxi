# tls.pxi — TLS on every stream endpoint and start_tls.
#
# TLS runs in asyncio's own SSLProtocol (ssl.MemoryBIO, handshake and
# shutdown timeouts, the buffered-protocol read path) stacked on a
# phaseloop SocketTransport: the record layer is the standard library's,
# the socket I/O under it is ours. The application sees asyncio's
# _SSLProtocolTransport, exactly as on asyncio's loop.

from asyncio import sslproto as _sslproto


class _TLSMethods:

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None, extra=None,
                            server=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None):
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
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False)
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
        return ssl_protocol._app_transport
