# endpoints/server.pxi — Server (asyncio.AbstractServer) and the accept path.
#
# asyncio accepts each connection in a Task of its own; here the listening
# socket's reader makes the protocol and the transport directly, so an
# accepted connection costs no task. Server follows Python 3.13's API on
# every version: close_clients(), abort_clients(), and wait_closed() that
# waits for the connections to end.

import collections.abc
import itertools

from asyncio import exceptions as _aio_exceptions

cdef int _ACCEPT_RETRY_DELAY = 1


class Server(_events.AbstractServer):
    """A listening server: the object create_server/create_unix_server return.

    >>> server = await loop.create_server(MyProtocol, "127.0.0.1", 8000)
    >>> async with server:
    ...     await server.serve_forever()
    """

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None):
        self._loop = loop
        self._sockets = sockets
        self._clients = set()
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None

    def __repr__(self):
        return f'<{self.__class__.__name__} sockets={self.sockets!r}>'

    def _attach(self, transport):
        self._clients.add(transport)

    def _detach(self, transport):
        self._clients.discard(transport)
        if not self._clients and self._sockets is None:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(
                self._protocol_factory, sock, self._ssl_context, self, self._backlog,
                self._ssl_handshake_timeout, self._ssl_shutdown_timeout)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(_trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        """Stop listening and close the listening sockets; open
        connections stay open (see close_clients/abort_clients)."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._loop._stop_serving(sock)
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if not self._clients:
            self._wakeup()

    def close_clients(self):
        """Close every connection this server accepted (buffered bytes are sent)."""
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self):
        """Abort every connection this server accepted (buffered bytes are dropped)."""
        for transport in list(self._clients):
            transport.abort()

    async def start_serving(self):
        self._start_serving()
        await _tasks.sleep(0)

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(f'server {self!r} is already being awaited on serve_forever()')
        if self._sockets is None:
            raise RuntimeError(f'server {self!r} is closed')
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except _aio_exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and its connections are gone."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


def _accept_waiter_done(loop, protocol, transport, waiter):
    """A TLS connection's handshake ended: on failure, close it."""
    if waiter.cancelled():
        exc = None
    else:
        exc = waiter.exception()
        if exc is None:
            return
    transport.close()
    if exc is not None and loop.get_debug():
        loop.call_exception_handler({
            'message': 'Error on transport creation for incoming connection',
            'exception': exc,
            'protocol': protocol,
            'transport': transport,
        })


class _ServerMethods:
    """The accept path, shared by TCP and Unix servers."""

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None,
                       backlog=100, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        self.add_reader(sock.fileno(), self._accept_connection, protocol_factory, sock,
                        sslcontext, server, backlog, ssl_handshake_timeout,
                        ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        self.remove_reader(sock.fileno())
        unix_path = self._unix_server_paths.pop(sock, None)
        if unix_path is not None:
            _unlink_unix_socket(*unix_path)
        sock.close()

    def _accept_connection(self, protocol_factory, sock, sslcontext, server, backlog,
                           ssl_handshake_timeout, ssl_shutdown_timeout):
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of fds or memory: report, pause accepting a moment.
                    self.call_exception_handler({
                        'message': 'socket.accept() out of system resource',
                        'exception': exc,
                        'socket': _trsock.TransportSocket(sock),
                    })
                    self.remove_reader(sock.fileno())
                    self.call_later(_ACCEPT_RETRY_DELAY, self._start_serving, protocol_factory,
                                    sock, sslcontext, server, backlog,
                                    ssl_handshake_timeout, ssl_shutdown_timeout)
                    return
                raise
            self._accept_one(protocol_factory, conn, {'peername': addr}, sslcontext, server,
                             ssl_handshake_timeout, ssl_shutdown_timeout)

    def _accept_one(self, protocol_factory, conn, extra, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout):
        protocol = transport = None
        try:
            protocol = protocol_factory()
            if sslcontext:
                waiter = self.create_future()
                transport = self._make_ssl_transport(
                    conn, protocol, sslcontext, waiter, server_side=True, extra=extra,
                    server=server, ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
                waiter.add_done_callback(
                    functools.partial(_accept_waiter_done, self, protocol, transport))
            else:
                transport = _new_socket_transport(self, conn, protocol, None, extra, server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            if self.get_debug():
                context = {
                    'message': 'Error on transport creation for incoming connection',
                    'exception': exc,
                }
                if protocol is not None:
                    context['protocol'] = protocol
                if transport is not None:
                    context['transport'] = transport
                self.call_exception_handler(context)
