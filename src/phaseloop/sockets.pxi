# sockets.pxi — the waits of the loop's sock_* coroutines (asyncio's low-level socket API).
#
# Each one tries the syscall at once; only when it would block does it
# register a _SockWait as the socket's reader or writer, which retries, and
# the coroutine's ``finally`` removes that watcher again — whether the future
# finished or the caller was cancelled — unless somebody replaced it meanwhile.

import io as _io

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _ssl = None

from asyncio import exceptions as _exceptions

cdef object _SENDFILE_FALLBACK_BUFSIZE = 256 * 1024


cdef _check_not_ssl(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_sendfile_params(sock, file, offset, count):
    if 'b' not in getattr(file, 'mode', 'b'):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


def _is_ip_literal(host, int family):
    """True if host needs no resolution for this address family."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode('idna')
    if not isinstance(host, str):
        return False
    families = (socket.AF_INET, socket.AF_INET6) if family == socket.AF_UNSPEC else (family,)
    for fam in families:
        try:
            socket.inet_pton(fam, host.partition('%')[0])
            return True
        except (OSError, ValueError):
            pass
    return False


# What a _SockWait retries when its socket is ready.
cdef enum _SockOp:
    _SOCK_CALL        # sock.<method>(*args): the recv/recvfrom/sendto flavours
    _SOCK_SENDALL     # sock.send(view[pos:]) until all of view is sent
    _SOCK_CONNECTED   # SO_ERROR of a connect in progress
    _SOCK_ACCEPT      # sock.accept(), the new socket made non-blocking
    _SOCK_SENDFILE    # os.sendfile; args is (fileno, count, [offset, sent])


@cython.final
cdef class _SockWait:
    """One pending sock_* operation.

    It is the fd watcher's callback itself (called with no arguments when
    the socket is ready, through a Handle with empty args), so a waiting
    sock_recv costs this object, its future and the watcher: no bound
    method, argument tuple, partial or done-callback. The coroutine that
    made it removes the watcher in its ``finally``, whether the future
    finished or the caller was cancelled.
    """
    cdef object fut
    cdef object sock
    cdef object method      # the socket method's name, for _SOCK_CALL
    cdef tuple args
    cdef Py_ssize_t pos     # bytes of args[0] already sent, for _SOCK_SENDALL
    cdef _SockOp op

    def __cinit__(self, _SockOp op, fut, sock, method, tuple args):
        self.op = op
        self.fut = fut
        self.sock = sock
        self.method = method
        self.args = args

    def __repr__(self):
        names = {_SOCK_CALL: self.method, _SOCK_SENDALL: 'sendall', _SOCK_CONNECTED: 'connect',
                 _SOCK_ACCEPT: 'accept', _SOCK_SENDFILE: 'sendfile'}
        return f'<sock_{names[self.op]} waiting on {self.sock!r}>'

    def __call__(self):
        if self.fut.done():
            return
        try:
            if self.op == _SOCK_CALL:
                # Looked up on every try, as asyncio does: a wrapper or a test
                # may replace the method while the call waits.
                self.fut.set_result(getattr(self.sock, self.method)(*self.args))
            elif self.op == _SOCK_SENDALL:
                self._sendall()
            elif self.op == _SOCK_CONNECTED:
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    raise OSError(err, f'Connect call failed {self.args[0]}')
                self.fut.set_result(None)
            elif self.op == _SOCK_ACCEPT:
                conn, address = self.sock.accept()
                conn.setblocking(False)
                self.fut.set_result((conn, address))
            else:
                self._sendfile()
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fut.set_exception(exc)

    cdef _sendall(self):
        view = self.args[0]
        self.pos += self.sock.send(view[self.pos:])
        if self.pos == len(view):
            self.fut.set_result(None)

    cdef _sendfile(self):
        """os.sendfile until done or it would block."""
        fileno, count, state = self.args
        while True:
            offset, total = state
            blocksize = count - total if count else 1 << 30
            if blocksize <= 0:
                self.fut.set_result(total)
                return
            try:
                sent = os.sendfile(self.sock.fileno(), fileno, offset, blocksize)
            except (BlockingIOError, InterruptedError):
                raise
            except OSError as exc:
                if total == 0:
                    # Nothing sent yet: the read/send fallback can take over.
                    err = _exceptions.SendfileNotAvailableError('os.sendfile call failed')
                    err.__cause__ = exc
                    raise err
                raise
            if sent == 0:
                self.fut.set_result(total)      # end of file
                return
            state[0] = offset + sent
            state[1] = total + sent
