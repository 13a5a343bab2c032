"""``SocketLink``: a MessagePort's transport over one end of a Unix socketpair.

Used between a parent and a process worker, and by every ``MessageChannel`` (so its
ports can move to any thread or process). Frames (framing.py) are written and read by
the loop the port is bound to, with backpressure both ways:

- **writing**: ``post_message`` appends the frame to a queue and asks the loop for one
  flush (``call_soon``), so a burst of messages goes out in one ``sendmsg``. What the
  socket does not take waits for the loop's writer callback. ``MessagePort.drain()``
  waits while more than the port's ``high_water`` bytes are queued, until at most
  ``low_water`` are left.
- **reading**: frames go to the port's inbox until they are delivered (a ``message``
  listener, ``receive()``). Past ``high_water`` undelivered bytes the link stops
  reading; the socket fills up, and so does the sender's queue, and the sender's
  ``drain()`` waits: memory stays bounded on both sides, whatever the rates.
"""
from __future__ import annotations

import collections
import socket
import threading
import time
import weakref
from typing import Any

from .cloning import BUFFER_TYPES
from .exceptions import DataCloneError
from .framing import (BUFFER_KINDS, H_BYTEARRAY, H_BYTES, H_MEMORYVIEW, H_PORT, H_SHARED,
                      HEADER, MAX_FDS, MESSAGE, FrameParser, ProtocolError, frame_head,
                      recv_with_fds, send_with_fds, _close_quietly)
from .shared_buffer import SharedBuffer

__all__ = ["SocketLink", "close_inherited_links", "materialize"]

_COALESCE = 64 * 1024          # frames smaller than this are copied into one write buffer
_READ_SIZE = 256 * 1024
_READS_PER_CALLBACK = 16       # then let the loop serve the others
_VIEWS_PER_SEND = 64
_BURST_GAP = 50e-6             # frames posted closer than this to a write are batched
_BLOCKED_LOOP = 0.001          # a flush this late means the posting code blocks the loop

#: Every open link of this process: a forked child closes its copies of them.
_live_links: "weakref.WeakSet[SocketLink]" = weakref.WeakSet()


class _Scratch(threading.local):
    """One read buffer per thread: a read is copied out before the next one."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_READ_SIZE))


_scratch = _Scratch()


class SocketLink:
    """One end of a socketpair carrying frames for ``port`` (set by the port)."""

    crosses_process = True

    def __init__(self, sock: socket.socket, parser: FrameParser | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.parser = parser if parser is not None else FrameParser()
        self.port: Any = None
        self.loop: Any = None
        self.remote_closed = False      # end of the stream read (or the socket failed)
        self.wake_scheduled = False     # (the in-process link's flag; unused here)
        self.closed = False             # our socket is closed
        self.unread = 0                 # bytes of delivered frames not yet taken
        self._closing = False           # close() asked: flush, then close
        self._reading = False
        self._paused = False
        self._writing = False           # the loop's writer is registered
        self._flush_handle: Any = None
        self._burst_start = 0.0
        self._last_write = 0.0
        # [data, offset, fds, keep, open]: ``keep`` holds what must live until the fds
        # are sent (a shared buffer; a transferred port's socket, closed then); an
        # ``open`` chunk is a bytearray that small frames are appended to.
        self._chunks: collections.deque[list] = collections.deque()
        self._queued = 0
        #: Called when the other side's end of the stream is read (a process
        #: worker checks there whether its parent is gone).
        self.on_eof: Any = None
        _live_links.add(self)

    # ---- binding to a loop -------------------------------------------------------------

    def bind(self, loop: Any) -> None:
        self.loop = loop
        if self.closed:
            return
        self._start_reading()
        if self.parser.frames:          # read before there was a loop (a child's INIT)
            loop.call_soon(self._deliver)
        if self._chunks:
            self._schedule_flush()

    def unbind(self) -> None:
        """Leave the loop (the port moves to another thread); queued frames stay."""
        loop = self.loop
        if loop is None:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not loop.is_closed():
            self._stop_reading()
            if self._writing:
                loop.remove_writer(self.sock.fileno())
        self._reading = self._writing = False
        self.loop = None

    # ---- writing ---------------------------------------------------------------------

    def check_handles(self, handles: list) -> None:
        """Raise DataCloneError for what cannot cross a socket (before anything moves)."""
        fds = 0
        for h in handles:
            if isinstance(h, memoryview) and not h.c_contiguous:
                raise DataCloneError("a memoryview in transfer= must be C-contiguous")
            if isinstance(h, SharedBuffer) or hasattr(h, "_prepare_transfer"):
                fds += 1
        if fds > MAX_FDS:
            raise DataCloneError(f"one message can carry at most {MAX_FDS} ports and "
                                 f"shared buffers, not {fds}")

    def send(self, kind: int, payload: bytes, handles: Any) -> int:
        """Queue one frame and get it going; return its size. ``check_handles`` has
        passed."""
        chunks = self._chunks
        if handles:
            size = self._queue_with_handles(kind, payload, handles)
        elif len(payload) < _COALESCE:          # the common case: one small frame
            size = HEADER.size + len(payload)
            last = chunks[-1] if chunks else None
            if last is not None and last[4] and len(last[0]) < _COALESCE:
                last[0] += HEADER.pack(kind, 0, len(payload))
                last[0] += payload
            else:
                data = bytearray(HEADER.pack(kind, 0, len(payload)))
                data += payload
                chunks.append([data, 0, [], [], True])
        else:                                   # a big one: no copy into a buffer
            size = HEADER.size + len(payload)
            chunks.append([HEADER.pack(kind, 0, len(payload)), 0, [], [], False])
            chunks.append([payload, 0, [], [], False])
        self._queued += size
        if kind != MESSAGE and self.loop is not None and not self._writing:
            # A control frame (online, error) goes at once and counts for no burst.
            if self._write_queued() and self._chunks:
                self._schedule_flush()
            return size
        self._schedule_flush()
        return size

    def _queue_with_handles(self, kind: int, payload: bytes, handles: list) -> int:
        table: list[tuple[int, int]] = []
        buffers: list[Any] = []
        fds: list[int] = []
        keep: list[Any] = []
        for h in handles:
            if isinstance(h, BUFFER_TYPES):
                if isinstance(h, memoryview):
                    # 1-D bytes: len() is its size from here on
                    h = h.cast("B") if h.format != "B" or h.ndim != 1 else h
                table.append((H_MEMORYVIEW if isinstance(h, memoryview) else
                              H_BYTES if isinstance(h, bytes) else H_BYTEARRAY, len(h)))
                buffers.append(h)
            elif isinstance(h, SharedBuffer):
                table.append((H_SHARED, len(h)))
                fds.append(h._shared_fd)
                keep.append(h)
            else:                       # a port moving to the other side
                sock = h._prepare_transfer(cross_process=True)
                table.append((H_PORT, 0))
                fds.append(sock.fileno())
                keep.append(sock)
        head = frame_head(kind, len(payload), table)
        chunks = self._chunks
        if len(payload) < _COALESCE:
            chunks.append([head + payload, 0, fds, keep, False])
        else:
            chunks.append([head, 0, fds, keep, False])
            chunks.append([payload, 0, [], [], False])
        for buf in buffers:
            chunks.append([buf, 0, [], [], False])
        return len(head) + len(payload) + sum(len(buf) for buf in buffers)

    def outstanding(self) -> int:
        """Bytes queued and not yet taken by the socket."""
        return self._queued

    def _schedule_flush(self) -> None:
        loop = self.loop
        if loop is None or self._writing or self.closed:
            return
        now = time.monotonic()
        if self._flush_handle is None:
            if now - self._last_write >= _BURST_GAP:
                # Nothing went out just now: this frame is no part of a burst. It is
                # written at once (a worker that posts and then computes without
                # awaiting still gets it to the other side).
                self._last_write = now
                if self._write_queued() and self._chunks:
                    self._flush_handle = loop.call_soon(self._flush)  # socket full
                return
            # A burst: the frames go out together when the loop runs, one sendmsg.
            self._flush_handle = loop.call_soon(self._flush)
            self._burst_start = now
        elif now - self._burst_start > _BLOCKED_LOOP:
            # The flush has not run for that long: the code posting keeps the loop
            # busy (a CPU loop reporting progress). Write what is queued now.
            self._burst_start = self._last_write = now
            self._write_queued()

    def _flush(self) -> None:
        """On the loop: write what is queued; the writer callback takes the rest."""
        self._flush_handle = None
        if self.closed or self.loop is None:
            return
        if not self._write_queued():
            return
        loop = self.loop
        if self._chunks and not self._writing:
            self._writing = True
            loop.add_writer(self.sock.fileno(), self._flush)
        elif not self._chunks and self._writing:
            self._writing = False
            loop.remove_writer(self.sock.fileno())
        if self.port._drain_waiters:
            self.port._writable()
        if self._closing and not self._chunks:
            self._close_now()

    def _write_queued(self) -> bool:
        """Send what the socket takes now; False if the socket broke."""
        chunks = self._chunks
        while chunks:
            views: list[Any] = []
            made: list[memoryview] = []     # our views of partly sent chunks
            fds: list[int] = []
            carried: list[list] = []
            for chunk in chunks:
                if chunk[2]:
                    if views and len(fds) + len(chunk[2]) > MAX_FDS:
                        break
                    fds.extend(chunk[2])
                    carried.append(chunk)
                if chunk[1]:
                    view = memoryview(chunk[0])[chunk[1]:]
                    made.append(view)
                    views.append(view)
                else:
                    views.append(chunk[0])
                if len(views) >= _VIEWS_PER_SEND:
                    break
            try:
                sent = send_with_fds(self.sock, views, fds)
            except (BlockingIOError, InterruptedError):
                sent = -1
            except OSError as exc:
                self._failed(exc)
                return False
            finally:
                for view in made:           # an open chunk grows again after this
                    view.release()
            if sent < 0:
                break
            for chunk in carried:       # their descriptors went with this sendmsg
                chunk[2] = []
                _release(chunk[3])
                chunk[3] = []
            self._queued -= sent
            while sent:
                chunk = chunks[0]
                left = len(chunk[0]) - chunk[1]
                if sent >= left:
                    sent -= left
                    chunks.popleft()
                else:
                    chunk[1] += sent
                    sent = 0
        return True

    # ---- reading ---------------------------------------------------------------------

    def _start_reading(self) -> None:
        if self._reading or self._paused or self.remote_closed or self.closed or \
                self._closing or self.loop is None:
            return
        self._reading = True
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.sock.fileno())

    def _on_readable(self) -> None:
        self._read(_READS_PER_CALLBACK)

    def read_to_end(self) -> None:
        """Read what the socket holds now, ignoring the pause: the other side has
        exited, so it is no more than the socket's buffer."""
        if not self.remote_closed and not self.closed:
            self._paused = False
            self._read(None)

    def _read(self, most: int | None) -> None:
        """Read (at most ``most`` times, or until the socket is empty) and deliver."""
        view = _scratch.view
        reads = 0
        while most is None or reads < most:
            reads += 1
            try:
                n, fds = recv_with_fds(self.sock, view)
            except (BlockingIOError, InterruptedError):
                break
            except ProtocolError as exc:
                self._failed(exc)
                return
            except OSError:
                n, fds = 0, []
            if not n:
                self._deliver()
                self._on_eof()
                return
            try:
                self.parser.feed(bytes(view[:n]), fds)
            except ProtocolError as exc:
                self._failed(exc)
                return
            if most is not None:
                self._deliver()
                if not self._reading or n < len(view):
                    return
        self._deliver()

    def _deliver(self) -> None:
        """Hand the parsed frames to the port; pause past its high-water mark."""
        frames = self.parser.frames
        port = self.port
        while frames:
            kind, payload, raw, size = frames.popleft()
            try:
                handles = materialize(raw, type(port)) if raw else ()
            except Exception as exc:  # noqa: BLE001 - that message is lost, not the port
                port._message_error(exc)
                continue
            if kind == MESSAGE:
                self.unread += size
                port._inbox.append((payload, handles, size))
            else:
                port._control_frame(kind, payload, handles)
        if self.unread > port.high_water and self._reading:
            self._paused = True
            self._stop_reading()
        port._dispatch()

    def delivered(self, size: int) -> None:
        """The port delivered a message of ``size`` bytes: resume below low water."""
        self.unread -= size
        if self._paused and self.unread <= self.port.low_water:
            self._paused = False
            self._start_reading()

    def has_buffered_data(self) -> bool:
        """Whether messages are held here (queued to send, or read and not taken)."""
        return bool(self._chunks or self.unread or self.parser.frames or
                    self.parser._pieces)

    # ---- closing ---------------------------------------------------------------------

    def _on_eof(self) -> None:
        """The other side closed: nothing more can be read or written, so the socket
        closes now; what was read stays in the port's inbox until it is taken."""
        self.remote_closed = True
        self._close_now()
        if self.on_eof is not None:
            self.on_eof()
        self.port._dispatch()

    def _failed(self, exc: BaseException) -> None:
        """The socket broke (the other side died mid-write, or sent garbage): what is
        queued can no longer go anywhere."""
        self.remote_closed = True
        self._close_now()
        self.port._dispatch()

    def close(self) -> None:
        """Close after the queued frames are written (bytes posted before close()
        are delivered); at once when there is no loop to write them."""
        if self.closed or self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._chunks or self.loop is None or self.remote_closed:
            self._close_now()
        else:
            self._schedule_flush()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.unbind()
        self.closed = True
        _live_links.discard(self)
        self.sock.close()
        self.parser.close()
        while self._chunks:
            _release(self._chunks.popleft()[3])
        self._queued = 0

    def take_socket(self) -> socket.socket:
        """Give up the socket (its port moves to another process)."""
        self.unbind()
        self.closed = True
        _live_links.discard(self)
        return self.sock


def _release(keep: list) -> None:
    """Drop what a chunk kept alive; a transferred port's socket is closed (the
    other process has its own descriptor now)."""
    for obj in keep:
        if isinstance(obj, socket.socket):
            obj.close()


def materialize(raw: list, port_type: Any) -> list:
    """The objects for a frame's handles as they arrived (buffers, descriptors)."""
    out = []
    try:
        for kind, size, value in raw:
            if kind == H_BYTES:
                out.append(value)
            elif kind == H_BYTEARRAY:
                out.append(bytearray(value))
            elif kind == H_MEMORYVIEW:
                out.append(memoryview(bytearray(value)))
            elif kind == H_SHARED:
                out.append(SharedBuffer._map(value, size))
            elif kind == H_PORT:
                out.append(port_type._over_socket(socket.socket(fileno=value)))
            else:
                raise ProtocolError(f"unknown handle kind {kind}")
    except BaseException:
        for kind, size, value in raw[len(out):]:
            if kind not in BUFFER_KINDS:
                _close_quietly(value)
        raise
    return out


def close_inherited_links(keep: Any = None) -> None:
    """In a forked child: close our copies of the parent's links (all but ``keep``),
    so that the parent's peers still see the end of the stream when the parent
    closes them. Loops are not touched: the parent's loop does not run here."""
    for link in list(_live_links):
        if link is keep or link.closed:
            continue
        link.closed = True
        try:
            link.sock.close()
        except OSError:
            pass
    _live_links.clear()
    if keep is not None:
        _live_links.add(keep)
