"""The IPC channel between the primary and a worker: length-prefixed frames
(JSON for the cluster's own commands, JSON or pickle for users' messages) on a
Unix socket pair, with file descriptors passed along (SCM_RIGHTS)."""
from __future__ import annotations

import array
import asyncio
import collections
import json
import os
import pickle
import socket
import struct
from typing import Any, Callable, Iterable, Sequence

from ..emitter import report_listener_error
from . import state

_HEADER = struct.Struct("!IB")        # payload length, kind
_KIND_INTERNAL = 0                    # JSON dict with a "cmd"
_KIND_USER = 1                        # a user message in settings["serialization"]
_MAX_FRAME = 64 * 1024 * 1024


def _encode(kind: int, obj: Any) -> bytes:
    if kind == _KIND_INTERNAL or state.settings["serialization"] == "json":
        payload = json.dumps(obj, separators=(",", ":")).encode()
    else:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > _MAX_FRAME:
        raise ValueError("cluster message too large (%d bytes)" % len(payload))
    return _HEADER.pack(len(payload), kind) + payload


def _decode(kind: int, payload: bytes) -> Any:
    if kind == _KIND_INTERNAL or state.settings["serialization"] == "json":
        return json.loads(payload)
    return pickle.loads(payload)


class _Channel:
    """One end of a socketpair carrying length-prefixed frames, driven by a loop's
    readers and writers. ``on_frame(kind, obj, fds)`` gets each frame with the file
    descriptors it carried (SCM_RIGHTS: a frame that carries some says how many in its
    ``"fds"`` key); ``on_close()`` is called once when the other end goes away or
    :meth:`close` is called."""

    def __init__(self, sock: socket.socket, on_frame: Callable[[int, Any, list[int]], None],
                 on_close: Callable[[], None]) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._on_frame = on_frame
        self._on_close = on_close
        self._rbuf = bytearray()
        self._rfds: collections.deque[int] = collections.deque()   # received, not yet claimed
        # What is still to send, in order: [bytes, fds]. The fds go with the first
        # byte of their frame (sendmsg), so a frame is never split from them.
        self._out: collections.deque[list[Any]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading on ``loop`` (and flush what was queued before)."""
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)
        if self._out:
            self._flush()

    def send(self, kind: int, obj: Any, fds: Sequence[int] = ()) -> bool:
        """Queue one frame (with ``fds``, sent along with it: the channel sends
        duplicates it closes once sent, so the caller keeps its own); False if
        the channel is closed."""
        if self.closed:
            return False
        if fds:
            obj = dict(obj, fds=len(fds))
        self._out.append([_encode(kind, obj), [os.dup(fd) for fd in fds]])
        if not self._writing:
            self._flush()
        return True

    @property
    def pending(self) -> bool:
        """Whether frames wait to be sent."""
        return bool(self._out)

    def _send_some(self, data: bytes, fds: list[int]) -> int:
        if fds:
            return self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", fds))])
        return self.sock.send(data)

    def _flush(self) -> None:
        if self.closed:
            return
        if self._loop is None:       # not attached yet: write what fits, blocking
            try:
                self.sock.setblocking(True)
                while self._out:
                    data, fds = self._out[0]
                    n = self._send_some(data, fds)
                    _close_all(fds)
                    if n < len(data):
                        self._out[0] = [data[n:], []]
                    else:
                        self._out.popleft()
            except OSError:
                self.close()
            finally:
                if not self.closed:
                    self.sock.setblocking(False)
            return
        while self._out:
            data, fds = self._out[0]
            try:
                n = self._send_some(data, fds)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            _close_all(fds)                        # sent with the first byte
            if n < len(data):
                self._out[0] = [data[n:], []]
            else:
                self._out.popleft()
        if self._out and not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._flush)
        elif not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 262144, 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data, fds = b"", []
            self._rfds.extend(fds)
            if not data:
                self._parse()
                self.close()
                return
            self._rbuf += data
            if len(data) < 262144:
                break
        self._parse()

    def drain(self) -> None:
        """Read and deliver whatever is already buffered in the socket."""
        if not self.closed:
            self._readable()

    def _parse(self) -> None:
        buf = self._rbuf
        while len(buf) >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buf)
            if size > _MAX_FRAME:
                self.close()
                return
            end = _HEADER.size + size
            if len(buf) < end:
                return
            payload = bytes(buf[_HEADER.size:end])
            del buf[:end]
            try:
                obj = _decode(kind, payload)
            except Exception as exc:  # noqa: BLE001 - a bad frame is reported, not fatal
                report_listener_error("cluster: undecodable message", exc)
                continue
            count = obj.get("fds", 0) if kind == _KIND_INTERNAL and isinstance(obj, dict) else 0
            fds = [self._rfds.popleft() for _ in range(min(count, len(self._rfds)))]
            self._on_frame(kind, obj, fds)
            if self.closed:
                return

    def close(self) -> None:
        """Stop watching and close the socket; calls ``on_close`` once."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.remove_reader(self.sock.fileno())
                if self._writing:
                    self._loop.remove_writer(self.sock.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
        self.sock.close()
        _close_all(self._rfds)
        self._rfds.clear()
        for _data, fds in self._out:
            _close_all(fds)
        self._out.clear()
        self._on_close()


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
