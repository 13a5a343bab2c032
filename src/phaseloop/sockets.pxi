# sockets.pxi — the loop's sock_* coroutines (issue 3's low-level socket API).
#
# Each one tries the syscall at once; only when it would block does it
# register a reader or writer that retries, and a done-callback on the
# future removes that watcher again — whether the future finished or was
# cancelled — unless somebody replaced the watcher meanwhile.

import functools
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


cdef class _SockOps:
    """The reader/writer callbacks of the sock_* coroutines, as one object
    per loop so they are cdef-fast and share the loop's fd watchers."""
    cdef _Loop loop

    def watch_done(self, int fd, bint write, Handle handle, fut):
        # Remove the watcher unless it was replaced (then it is cancelled).
        if not handle._cancelled:
            if write:
                self.loop.remove_writer(fd)
            else:
                self.loop.remove_reader(fd)

    def call(self, fut, sock, str method, *args):
        """Retry sock.<method>(*args) (a recv/recvfrom/sendto flavour) and
        resolve fut with its result once it does not block."""
        if fut.done():
            return
        try:
            result = getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def sendall(self, fut, sock, view, list pos):
        if fut.done():
            return
        start = pos[0]
        try:
            n = sock.send(view[start:])
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            return
        start += n
        if start == len(view):
            fut.set_result(None)
        else:
            pos[0] = start

    def connected(self, fut, sock, address):
        if fut.done():
            return
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                raise OSError(err, f'Connect call failed {address}')
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)

    def accept(self, fut, sock):
        if fut.done():
            return
        try:
            conn, address = sock.accept()
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result((conn, address))

    def sendfile(self, fut, sock, int fileno, count, list state):
        """os.sendfile until done or it would block; state is [offset, sent]."""
        if fut.done():
            return
        while True:
            offset, total = state
            blocksize = count - total if count else 1 << 30
            if blocksize <= 0:
                fut.set_result(total)
                return
            try:
                sent = os.sendfile(sock.fileno(), fileno, offset, blocksize)
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except OSError as exc:
                if total == 0:
                    # Nothing sent yet: the read/send fallback can take over.
                    err = _exceptions.SendfileNotAvailableError('os.sendfile call failed')
                    err.__cause__ = exc
                    fut.set_exception(err)
                else:
                    fut.set_exception(exc)
                return
            except BaseException as exc:
                fut.set_exception(exc)
                return
            if sent == 0:
                fut.set_result(total)      # end of file
                return
            state[0] = offset + sent
            state[1] = total + sent
