"""Frames on a Unix stream socket: the wire format of process workers and channels.

One frame::

    header   <BHQ    kind, number of handles, payload length
    table    <BQ * n handle kind and size (bytes of a buffer, length of a shared buffer)
    payload          the pickled message (cloning.encode)
    buffers          the raw bytes of each buffer handle, in table order

Descriptors (a shared buffer's memory file, a transferred port's socket) go as
SCM_RIGHTS with the ``sendmsg`` that carries the frame's bytes, or an earlier one: the
receiver keeps them in arrival order and a frame takes the next ones it needs, so they
can arrive early but never late. Small frames stay whole; a buffer travels from the
sender's object straight to ``sendmsg`` (scatter/gather), never copied into the pickle.
"""
from __future__ import annotations

import array
import collections
import os
import socket
import struct
from typing import Any

__all__ = ["FrameParser", "HEADER", "HANDLE", "frame_head", "recv_with_fds", "send_with_fds"]

HEADER = struct.Struct("<BHQ")
HANDLE = struct.Struct("<BQ")

# frame kinds
MESSAGE = 0      # a user message
ONLINE = 1       # child -> parent: the worker's loop runs its entry point
ERROR = 2        # child -> parent: the entry point raised (cloning.exception_record)
INIT = 3         # parent -> child: what to run (the first frame)

# handle kinds: the first three are buffers (bytes on the wire), the others descriptors
H_BYTES = 0
H_BYTEARRAY = 1
H_MEMORYVIEW = 2
H_SHARED = 3
H_PORT = 4
BUFFER_KINDS = (H_BYTES, H_BYTEARRAY, H_MEMORYVIEW)

#: Linux's SCM_MAX_FD: the most descriptors one sendmsg may carry.
MAX_FDS = 253
_ANCILLARY_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
_CLOEXEC = int(getattr(socket, "MSG_CMSG_CLOEXEC", 0))
_CTRUNC = int(socket.MSG_CTRUNC)      # a plain int: IntFlag's & is Python code


def frame_head(kind: int, payload_len: int, table: list[tuple[int, int]]) -> bytes:
    """The header and handle table of a frame."""
    head = HEADER.pack(kind, len(table), payload_len)
    if table:
        head += b"".join(HANDLE.pack(k, size) for k, size in table)
    return head


class ProtocolError(ConnectionError):
    """The byte stream is not a sequence of frames (or lost its descriptors)."""


class FrameParser:
    """Cuts a byte stream, and the descriptors that came with it, into frames.

    ``feed(data, fds)`` appends to ``frames`` each complete frame as ``(kind, payload,
    handles, size)``, where a handle is ``(kind, size, value)``: the bytes of a buffer
    or a descriptor (now owned by the frame's receiver), and ``size`` counts the frame's
    bytes. A frame split over many reads is joined once, when all of it is there.
    """

    def __init__(self) -> None:
        self.frames: collections.deque = collections.deque()
        self.fds: collections.deque[int] = collections.deque()
        self._pieces: list[bytes] = []
        self._have = 0
        self._need = HEADER.size

    def feed(self, data: bytes, fds: list[int] | tuple = ()) -> None:
        if fds:
            self.fds.extend(fds)
        if self._pieces:
            self._pieces.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._pieces)
            self._pieces = []
        self._have = 0
        self._need = self._parse(data)

    def _parse(self, data: bytes) -> int:
        """Take every whole frame out of ``data``; keep the rest; return the bytes
        needed before trying again."""
        end_of_data = len(data)
        pos = 0
        frames = self.frames
        header_size = HEADER.size
        while True:
            if end_of_data - pos < header_size:
                need = header_size
                break
            kind, count, payload_len = HEADER.unpack_from(data, pos)
            start = pos + header_size
            if not count:
                end = start + payload_len
                if end > end_of_data:
                    need = end - pos
                    break
                frames.append((kind, data[start:end], (), end - pos))
                pos = end
                continue
            payload_start = start + count * HANDLE.size
            if payload_start > end_of_data:
                need = payload_start - pos
                break
            table = [HANDLE.unpack_from(data, start + i * HANDLE.size) for i in range(count)]
            end = payload_start + payload_len + sum(size for k, size in table
                                                    if k in BUFFER_KINDS)
            if end > end_of_data:
                need = end - pos
                break
            frames.append((kind, data[payload_start:payload_start + payload_len],
                           self._handles(table, data, payload_start + payload_len),
                           end - pos))
            pos = end
        if pos < end_of_data:
            rest = data[pos:] if pos else data
            self._pieces = [rest]
            self._have = len(rest)
        return need

    def _handles(self, table: list[tuple[int, int]], data: bytes, offset: int) -> list:
        handles = []
        for kind, size in table:
            if kind in BUFFER_KINDS:
                handles.append((kind, size, data[offset:offset + size]))
                offset += size
            else:
                if not self.fds:
                    raise ProtocolError("a frame's descriptors did not arrive")
                handles.append((kind, size, self.fds.popleft()))
        return handles

    def close(self) -> None:
        """Close the descriptors no frame took (the stream ended early)."""
        while self.fds:
            _close_quietly(self.fds.popleft())


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def recv_with_fds(sock: socket.socket, into: memoryview) -> tuple[int, Any]:
    """One ``recvmsg`` into ``into``: the byte count (0 at the end) and the descriptors
    that came with them (close-on-exec)."""
    n, ancillary, flags, _addr = sock.recvmsg_into([into], _ANCILLARY_SPACE, _CLOEXEC)
    if not ancillary and not flags & _CTRUNC:
        return n, ()
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(data[:len(data) - len(data) % got.itemsize])
            fds.extend(got)
    if not _CLOEXEC:
        for fd in fds:
            os.set_inheritable(fd, False)
    if flags & _CTRUNC:
        for fd in fds:
            _close_quietly(fd)
        raise ProtocolError("descriptors were cut off in transit")
    return n, fds


def send_with_fds(sock: socket.socket, buffers: list[Any], fds: list[int]) -> int:
    """One ``sendmsg`` of ``buffers``, with ``fds`` as SCM_RIGHTS; bytes sent."""
    if not fds:
        return sock.sendmsg(buffers)
    return sock.sendmsg(buffers, [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   array.array("i", fds))])
