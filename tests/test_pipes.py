"""Pipe transports: connect_read_pipe / connect_write_pipe on os.pipe().

On phaseloop and asyncio: 10 MiB through a pipe with write flow control
(length and SHA-256), EOF, pause_reading/resume_reading, close/abort,
the reader going away, and asyncio's ValueError for a file that is not a
pipe, socket or character device.
"""
import asyncio
import os
import socket

import pytest

from test_tcp import MiB, Recorder, assert_fds_steady, digest, payload, run


class PipeWriter(asyncio.Protocol):
    """Follows pause_writing/resume_writing; records the end."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.pauses = []
        self.resumes = []
        self.lost_calls = []
        self.lost = loop.create_future()
        self.can_write = loop.create_future()
        self.can_write.set_result(None)

    def connection_made(self, transport):
        self.transport = transport

    def pause_writing(self):
        self.pauses.append(self.transport.get_write_buffer_size())
        self.can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        self.resumes.append(self.transport.get_write_buffer_size())
        self.can_write.set_result(None)

    def connection_lost(self, exc):
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)
        if not self.can_write.done():
            self.can_write.set_result(None)


@pytest.fixture
def pipe():
    """(read file, write file) of an os.pipe(), unbuffered, closed after."""
    r, w = os.pipe()
    rf, wf = open(r, "rb", buffering=0), open(w, "wb", buffering=0)
    yield rf, wf
    for f in (rf, wf):
        if not f.closed:
            f.close()


async def pipe_ends(loop, pipe, reader_factory=Recorder):
    """Transports on both ends of the pipe: Recorder reads, PipeWriter writes."""
    rf, wf = pipe
    read_t, reader = await loop.connect_read_pipe(reader_factory, rf)
    write_t, writer = await loop.connect_write_pipe(PipeWriter, wf)
    return read_t, reader, write_t, writer


@pytest.mark.parametrize("size", [1, 10 * MiB, 64 * MiB], ids=["1B", "10MiB", "64MiB"])
def test_data_through_a_pipe_with_flow_control(loop, pipe, size):
    data = payload(size, seed=size)

    async def main():
        read_t, reader, write_t, writer = await pipe_ends(
            loop, pipe, lambda: Recorder(keep=False))
        view = memoryview(data)
        for offset in range(0, len(data), 256 * 1024):
            await writer.can_write
            write_t.write(view[offset:offset + 256 * 1024])
            assert write_t.get_write_buffer_size() <= 64 * 1024 + 256 * 1024
        write_t.close()
        assert await writer.lost is None
        assert await reader.lost is None
        return reader, writer

    reader, writer = run(loop, main(), timeout=20)
    assert reader.digest() == digest(data)
    assert reader.events == ["made", "data", "eof", "lost"]
    if size > MiB:
        assert len(writer.pauses) >= 1
    assert len(writer.resumes) == len(writer.pauses)
    assert writer.lost_calls == [None] and reader.lost_calls == [None]


def test_write_flow_control_crossings(loop, pipe):
    rf, wf = pipe
    os.set_blocking(rf.fileno(), False)
    chunk = 16 * 1024

    async def main():
        transport, writer = await loop.connect_write_pipe(PipeWriter, wf)
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        written = 0
        while not writer.pauses:
            assert written < 16 * MiB, "pause_writing never came"
            transport.write(b"p" * chunk)
            written += chunk
            await asyncio.sleep(0)
        transport.write(b"p" * chunk)  # still paused: no second call
        written += chunk
        assert len(writer.pauses) == 1
        assert 64 * 1024 < writer.pauses[0] <= 64 * 1024 + chunk
        drained = 0
        while not writer.resumes:
            try:
                drained += len(rf.read(1 << 20) or b"")
            except BlockingIOError:
                pass
            await asyncio.sleep(0)
        assert writer.resumes[0] <= 16 * 1024
        transport.close()
        await writer.lost
        while drained < written:
            await asyncio.sleep(0)
            try:
                drained += len(rf.read(1 << 20) or b"")
            except BlockingIOError:
                pass
        return written, drained, writer

    written, drained, writer = run(loop, main())
    assert drained == written
    assert len(writer.pauses) == len(writer.resumes) == 1


def test_pause_and_resume_reading(loop, pipe):
    rf, wf = pipe

    async def main():
        transport, reader = await loop.connect_read_pipe(Recorder, rf)
        assert transport.is_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        wf.write(b"waiting")
        await asyncio.sleep(0.05)
        assert reader.size == 0
        transport.resume_reading()
        assert transport.is_reading()
        await reader.received_at_least(7)
        wf.close()
        await reader.lost
        return reader

    reader = run(loop, main())
    assert bytes(reader.data) == b"waiting"
    assert reader.events == ["made", "data", "eof", "lost"]


def test_eof_when_the_writer_closes(loop, pipe):
    rf, wf = pipe

    async def main():
        _, reader = await loop.connect_read_pipe(Recorder, rf)
        wf.write(b"last words")
        wf.close()
        return await reader.lost, reader

    exc, reader = run(loop, main())
    assert exc is None
    assert reader.events == ["made", "data", "eof", "lost"]
    assert bytes(reader.data) == b"last words"


def test_close_of_the_write_pipe_flushes_first(loop, pipe):
    data = payload(3 * MiB, seed=8)

    async def main():
        read_t, reader, write_t, writer = await pipe_ends(loop, pipe)
        write_t.writelines([data[:MiB], data[MiB:]])
        assert write_t.get_write_buffer_size() > 0
        write_t.close()
        assert write_t.is_closing()
        await writer.lost
        await reader.lost
        return reader, writer

    reader, writer = run(loop, main())
    assert reader.digest() == digest(data)
    assert writer.lost_calls == [None]


def test_write_eof_closes_the_write_pipe(loop, pipe):

    async def main():
        read_t, reader, write_t, writer = await pipe_ends(loop, pipe)
        assert write_t.can_write_eof()
        write_t.write(b"done")
        write_t.write_eof()
        await writer.lost
        await reader.lost
        return reader, writer

    reader, writer = run(loop, main())
    assert bytes(reader.data) == b"done"
    assert writer.lost_calls == [None]
    assert reader.events == ["made", "data", "eof", "lost"]


def test_abort_drops_what_is_buffered(loop, pipe):

    async def main():
        read_t, reader, write_t, writer = await pipe_ends(loop, pipe)
        read_t.pause_reading()
        write_t.set_write_buffer_limits(high=64 * MiB)
        write_t.write(b"a" * (4 * MiB))
        buffered = write_t.get_write_buffer_size()
        write_t.abort()
        assert await writer.lost is None
        read_t.resume_reading()
        await reader.lost
        return buffered, reader

    buffered, reader = run(loop, main())
    assert buffered > 0
    assert reader.size <= 4 * MiB - buffered
    assert reader.events[-2:] == ["eof", "lost"]


def test_reader_gone_with_nothing_buffered(loop, pipe):
    rf, wf = pipe

    async def main():
        transport, writer = await loop.connect_write_pipe(PipeWriter, wf)
        rf.close()
        exc = await writer.lost
        await asyncio.sleep(0.01)
        return exc, writer

    exc, writer = run(loop, main())
    assert exc is None
    assert writer.lost_calls == [None]


def test_reader_gone_with_bytes_buffered(loop, pipe):
    rf, wf = pipe

    async def main():
        transport, writer = await loop.connect_write_pipe(PipeWriter, wf)
        transport.write(b"b" * MiB)
        assert transport.get_write_buffer_size() > 0
        rf.close()
        exc = await writer.lost
        await asyncio.sleep(0.01)
        return exc, writer

    exc, writer = run(loop, main())
    assert isinstance(exc, BrokenPipeError)
    assert writer.lost_calls == [exc]


def test_closing_the_read_pipe(loop, pipe):
    rf, wf = pipe

    async def main():
        transport, reader = await loop.connect_read_pipe(Recorder, rf)
        transport.close()
        assert transport.is_closing()
        transport.close()
        return await reader.lost, reader

    exc, reader = run(loop, main())
    assert exc is None and reader.lost_calls == [None]
    assert reader.events == ["made", "lost"]
    with pytest.raises(BrokenPipeError):
        wf.write(b"x")  # the read end is closed


def test_extra_info_pipe(loop, pipe):
    rf, wf = pipe

    async def main():
        read_t, reader, write_t, writer = await pipe_ends(loop, pipe)
        result = read_t.get_extra_info("pipe"), write_t.get_extra_info("pipe")
        write_t.close()
        await reader.lost
        return result

    assert run(loop, main()) == (rf, wf)


def test_write_after_close_is_ignored(loop, pipe):
    rf, wf = pipe

    async def main():
        transport, writer = await loop.connect_write_pipe(PipeWriter, wf)
        transport.write(b"kept")
        transport.close()
        for _ in range(3):
            transport.write(b"dropped")
        await writer.lost

    run(loop, main())
    os.set_blocking(rf.fileno(), False)  # a write end left open must not hang the test
    assert rf.read() == b"kept"
    assert rf.read() == b""  # EOF: the transport closed the write end


def test_socket_as_a_pipe(loop):
    """asyncio accepts a socket where a pipe is expected (and closes it)."""
    a, b = socket.socketpair()
    data = payload(300000, seed=2)

    async def main():
        read_t, reader = await loop.connect_read_pipe(Recorder, a)
        write_t, writer = await loop.connect_write_pipe(PipeWriter, b)
        write_t.write(data)
        await reader.received_at_least(len(data))
        read_t.close()
        write_t.close()
        await reader.lost
        await writer.lost
        return reader

    with a, b:
        assert run(loop, main()).digest() == digest(data)
        assert a.fileno() == -1 and b.fileno() == -1


def test_regular_file_is_refused(loop, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"x")

    def refused():
        with open(path, "rb", buffering=0) as f:
            with pytest.raises(ValueError):
                run(loop, loop.connect_read_pipe(Recorder, f))
        with open(path, "wb", buffering=0) as f:
            with pytest.raises(ValueError):
                run(loop, loop.connect_write_pipe(PipeWriter, f))

    assert_fds_steady(loop, refused)


def test_fds_steady_after_pipes_close(loop):

    def one_round():
        r, w = os.pipe()
        pair = (open(r, "rb", buffering=0), open(w, "wb", buffering=0))

        async def main():
            read_t, reader, write_t, writer = await pipe_ends(loop, pair)
            write_t.write(b"x")
            write_t.close()
            await reader.lost
            await writer.lost

        run(loop, main())
        # The transports closed the fds; the file objects only need collecting.
        assert all(f.closed or _fd_closed(f) for f in pair)

    assert_fds_steady(loop, one_round)


def _fd_closed(f):
    try:
        os.fstat(f.fileno())
    except (OSError, ValueError):
        return True
    return False
