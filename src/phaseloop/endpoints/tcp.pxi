# endpoints/tcp.pxi — TCP endpoints: create_connection (DNS, local_addr, happy
# eyeballs), create_server (several hosts, reuse_address/port, keep_alive),
# connect_accepted_socket and loop.sendfile over a transport. asyncio's
# arguments, checks and error messages, Python 3.13's on every version
# (all_errors, keep_alive).

from asyncio import base_events as _base_events
from asyncio import staggered as _staggered

cdef object _ipaddr_info = getattr(_base_events, '_ipaddr_info', None)
cdef int _SENDFILE_FALLBACK_CHUNK = 256 * 1024


def _interleave_addrinfos(addrinfos, first_address_family_count=1):
    """Alternate address families (RFC 8305), the first family first."""
    families = {}
    for info in addrinfos:
        families.setdefault(info[0], []).append(info)
    lists = list(families.values())
    reordered = []
    if first_address_family_count > 1:
        reordered.extend(lists[0][:first_address_family_count - 1])
        lists[0] = lists[0][first_address_family_count - 1:]
    for group in itertools.zip_longest(*lists):
        reordered.extend(info for info in group if info is not None)
    return reordered


def _check_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout):
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')


def _check_stream_socket(sock, family=None):
    if sock.type != socket.SOCK_STREAM or (family is not None and sock.family != family):
        if family == socket.AF_UNIX:
            raise ValueError(f'A UNIX Domain Stream Socket was expected, got {sock!r}')
        raise ValueError(f'A Stream Socket was expected, got {sock!r}')


class _TCPMethods:

    async def _ensure_resolved(self, address, *, family=0, type=socket.SOCK_STREAM,
                               proto=0, flags=0):
        host, port = address[:2]
        if _ipaddr_info is not None:
            info = _ipaddr_info(host, port, family, type, proto, *address[2:])
            if info is not None:
                return [info]
        return await self.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)

    async def _connect_sock(self, exceptions, addr_info, local_addr_infos=None):
        """One connection attempt; its errors go to exceptions too."""
        my_exceptions = []
        exceptions.append(my_exceptions)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                for lfamily, _, _, _, laddr in local_addr_infos:
                    if lfamily != family:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        msg = f'error while attempting to bind on address {laddr!r}: {exc.strerror.lower()}'
                        my_exceptions.append(OSError(exc.errno, msg))
                else:
                    if my_exceptions:
                        raise my_exceptions.pop()
                    raise OSError(f"no matching local address with family={family} found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            my_exceptions.append(exc)
            if sock is not None:
                sock.close()
            raise
        except:
            if sock is not None:
                sock.close()
            raise
        finally:
            exceptions = my_exceptions = None

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None,
                                family=0, proto=0, flags=0, sock=None, local_addr=None,
                                server_hostname=None, ssl_handshake_timeout=None,
                                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                                interleave=None, all_errors=False):
        """Connect to host:port (or use sock) and return (transport, protocol)."""
        if server_hostname is not None and not ssl:
            raise ValueError('server_hostname is only meaningful with ssl')
        if server_hostname is None and ssl:
            if not host:
                raise ValueError('You must set server_hostname when using ssl without a host')
            server_hostname = host
        _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1   # RFC 8305 wants interleaving with happy eyeballs
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            infos = await self._ensure_resolved((host, port), family=family,
                                                type=socket.SOCK_STREAM, proto=proto, flags=flags)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            laddr_infos = None
            if local_addr is not None:
                laddr_infos = await self._ensure_resolved(local_addr, family=family,
                                                          type=socket.SOCK_STREAM,
                                                          proto=proto, flags=flags)
                if not laddr_infos:
                    raise OSError('getaddrinfo() returned empty list')
            if interleave:
                infos = _interleave_addrinfos(infos, interleave)
            exceptions = []
            if happy_eyeballs_delay is None:
                for addrinfo in infos:
                    try:
                        sock = await self._connect_sock(exceptions, addrinfo, laddr_infos)
                        break
                    except OSError:
                        continue
            else:
                sock, _, _ = await _staggered.staggered_race(
                    (functools.partial(self._connect_sock, exceptions, addrinfo, laddr_infos)
                     for addrinfo in infos),
                    happy_eyeballs_delay, loop=self)
            if sock is None:
                exceptions = [exc for sub in exceptions for exc in sub]
                try:
                    if all_errors:
                        raise ExceptionGroup("create_connection failed", exceptions)
                    if len(exceptions) == 1:
                        raise exceptions[0]
                    model = str(exceptions[0])
                    if all(str(exc) == model for exc in exceptions):
                        raise exceptions[0]
                    raise OSError('Multiple exceptions: {}'.format(
                        ', '.join(str(exc) for exc in exceptions)))
                finally:
                    exceptions = None
        else:
            if sock is None:
                raise ValueError('host and port was not specified and no sock specified')
            _check_stream_socket(sock)
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def _create_connection_transport(self, sock, protocol_factory, ssl, server_hostname,
                                           server_side=False, ssl_handshake_timeout=None,
                                           ssl_shutdown_timeout=None):
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = self.create_future()
        if ssl:
            sslcontext = None if isinstance(ssl, bool) else ssl
            transport = self._make_ssl_transport(
                sock, protocol, sslcontext, waiter, server_side=server_side,
                server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout)
        else:
            transport = _new_socket_transport(self, sock, protocol, waiter, None, None)
        try:
            await waiter
        except:
            transport.close()
            raise
        return transport, protocol

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Wrap an already accepted connection in a transport and protocol."""
        _check_stream_socket(sock)
        _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            _check_ssl_socket(sock)
        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, '', server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        return transport, protocol

    async def _create_server_getaddrinfo(self, host, port, family, flags):
        infos = await self._ensure_resolved((host, port), family=family,
                                            type=socket.SOCK_STREAM, flags=flags)
        if not infos:
            raise OSError(f'getaddrinfo({host!r}) returned empty list')
        return infos

    async def create_server(self, protocol_factory, host=None, port=None, *,
                            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                            keep_alive=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, start_serving=True):
        """Listen on host:port (several hosts allowed) or on sock; return a Server."""
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            _check_ssl_socket(sock)
        if (sock is None and _server_socket_provider is not None and not reuse_port
                and (host is None or isinstance(host, str)) and (host is not None or port is not None)):
            # A phaseloop.cluster worker that opted in (cluster.share_servers()):
            # the primary hands the listening socket over, as Node's cluster does.
            sock = await _server_socket_provider(host, port, backlog)
            host = port = None
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            sockets = []
            if host == '':
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            fs = [self._create_server_getaddrinfo(h, port, family, flags) for h in hosts]
            infos = await _tasks.gather(*fs)
            infos = set(itertools.chain.from_iterable(infos))
            completed = False
            try:
                for res in infos:
                    af, socktype, proto, canonname, sa = res
                    try:
                        sock = socket.socket(af, socktype, proto)
                    except socket.error:
                        if self.get_debug():
                            logger.warning('create_server() failed to create socket.socket(%r, %r, %r)',
                                           af, socktype, proto, exc_info=True)
                        continue
                    sockets.append(sock)
                    if reuse_address:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                    if reuse_port:
                        if not hasattr(socket, 'SO_REUSEPORT'):
                            raise ValueError('reuse_port not supported by socket module')
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if keep_alive:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                    if af == socket.AF_INET6 and hasattr(socket, 'IPPROTO_IPV6'):
                        # One socket per family: IPv6 must not take the IPv4 port too.
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                    try:
                        sock.bind(sa)
                    except OSError as err:
                        msg = f'error while attempting to bind on address {sa!r}: {err.strerror.lower()}'
                        raise OSError(err.errno, msg) from None
                completed = True
            finally:
                if not completed:
                    for s in sockets:
                        s.close()
        else:
            if sock is None:
                raise ValueError('Neither host/port nor sock were specified')
            _check_stream_socket(sock)
            sockets = [sock]
        for s in sockets:
            s.setblocking(False)
        server = Server(self, sockets, protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _tasks.sleep(0)   # let the listening readers go in
        if self.get_debug():
            logger.info("%r is serving", server)
        return server

    # ---- loop.sendfile over a transport ----------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send a file over a transport: os.sendfile on a plain socket
        transport, else read/write with the transport's flow control.
        Returns the number of bytes sent."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        native = type(transport) is SocketTransport
        if not native and not isinstance(transport, _StreamTransport) \
                and not hasattr(transport, '_sendfile_compatible'):
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        _check_sendfile_params(transport.get_extra_info('socket') or _StreamLike, file, offset, count)
        if native:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except _exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not "
                               f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, SocketTransport transport, file, offset, count):
        cdef _Loop loop = <_Loop?>self   # checked: this mixin only lives in Loop
        fd = transport._fd
        resume_reading = transport.is_reading()
        transport.pause_reading()
        await transport._make_empty_waiter()
        # The fd is the transport's; let sock_sendfile watch it meanwhile.
        loop._untrack_transport(fd, transport)
        try:
            return await self.sock_sendfile(transport._sock, file, offset, count, fallback=False)
        finally:
            transport._reset_empty_waiter()
            if transport._sock is not None:
                loop._track_transport(fd, transport)
                if resume_reading:
                    transport.resume_reading()

    async def _sendfile_fallback(self, transport, file, offset, count):
        if not isinstance(transport, _StreamTransport):
            return await _base_events.BaseEventLoop._sendfile_fallback(
                self, transport, file, offset, count)
        if offset:
            file.seek(offset)
        blocksize = min(count, _SENDFILE_FALLBACK_CHUNK) if count else _SENDFILE_FALLBACK_CHUNK
        buf = bytearray(blocksize)
        total_sent = 0
        resume_reading = transport.is_reading()
        transport.pause_reading()
        high = transport.get_write_buffer_limits()[1]
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                if transport.is_closing():
                    raise ConnectionError("Connection closed by peer")
                transport.write(bytes(view[:read]))
                total_sent += read
                if transport.get_write_buffer_size() > high:
                    try:
                        await transport._make_empty_waiter()
                    finally:
                        transport._reset_empty_waiter()
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)
            if resume_reading:
                transport.resume_reading()


class _StreamLike:
    """What _check_sendfile_params needs of a transport without a socket."""
    type = socket.SOCK_STREAM
