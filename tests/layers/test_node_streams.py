"""phaseloop.streams: Node-style streams with backpressure, on phaseloop and asyncio.

Real files in tmp_path and real sockets on 127.0.0.1; memory is measured with
tracemalloc, fds with /proc/self/fd.
"""
import asyncio
import gc
import hashlib
import os
import tracemalloc

import pytest

from support.loops import open_fd_count
from phaseloop.streams import (PassThrough, Readable, StreamError, Transform, Writable, connect,
                               create_read_stream, create_write_stream, finished, pipeline, serve)

MiB = 1024 * 1024


def run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def fds_back_to(loop, count):
    """Whether the fd count returns to count once pending executor calls end (<= 2 s)."""
    async def wait():
        for _ in range(200):
            gc.collect()
            if open_fd_count() <= count:
                return True
            await asyncio.sleep(0.01)
        return False
    return run(loop, wait())


class Upper(Transform):
    """The Node guide's Transform (examples/node_guide/stream_pipeline.py)."""

    async def transform(self, chunk):
        return chunk.upper()


def make_file(path, size):
    block = bytes(range(97, 123)) * 2521          # 65,546 bytes of a..z
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return path


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def test_seed_example_uppercases_a_big_file_in_bounded_memory(loop, tmp_path):
    src = make_file(tmp_path / "input.txt", 48 * MiB)
    dst = tmp_path / "output.txt"

    async def main():
        tracemalloc.start()
        try:
            await pipeline(create_read_stream(src), Upper(), create_write_stream(dst))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak = run(loop, main(), timeout=120)
    assert os.path.getsize(dst) == 48 * MiB
    expected = hashlib.sha256()
    with open(src, "rb") as f:
        while chunk := f.read(MiB):
            expected.update(chunk.upper())
    assert sha(dst) == expected.hexdigest()
    assert peak < 2 * MiB, peak           # a few 64 KiB high-water marks, not the file


def test_fast_producer_slow_consumer_keeps_memory_bounded(loop):
    produced = []

    async def source():
        for i in range(400):
            produced.append(i)
            yield b"x" * 16384                    # 16 KiB chunks, 6.4 MiB in all

    class Slow(Writable):
        async def _write(self, chunk):
            await asyncio.sleep(0)

    async def main():
        src = Readable.from_iterable(source(), object_mode=False)
        sink = Slow()
        peak_buffered = 0

        async def watch():
            nonlocal peak_buffered
            while True:
                peak_buffered = max(peak_buffered, src.readable_length + sink.writable_length)
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        tracemalloc.start()
        try:
            await pipeline(src, sink)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            watcher.cancel()
        return peak_buffered, peak

    peak_buffered, peak = run(loop, main())
    assert len(produced) == 400
    assert peak_buffered <= 3 * 65536 + 16384, peak_buffered
    assert peak < 1 * MiB, peak


def test_writable_awaits_at_the_high_water_mark(loop):
    class Gate(Writable):
        def __init__(self):
            super().__init__(high_water_mark=4)
            self.open = asyncio.Event()
            self.got = []

        async def _write(self, chunk):
            await self.open.wait()
            self.got.append(chunk)

    async def main():
        w = Gate()
        for chunk in (b"a", b"b", b"c"):
            await w.write(chunk)                      # under the mark: returns at once
        blocked = asyncio.ensure_future(w.write(b"d"))  # reaches 4: must wait
        await asyncio.sleep(0.01)
        assert not blocked.done() and w.writable_length == 4
        w.open.set()
        await blocked
        await w.end()
        await finished(w)
        return w.got

    assert run(loop, main()) == [b"a", b"b", b"c", b"d"]


def test_object_mode_counts_chunks(loop):
    async def main():
        r = Readable(object_mode=True)
        assert r.readable_high_water_mark == 16
        results = [r.push({"n": i}) for i in range(16)]
        r.push(None)
        return results, [x async for x in r]

    results, items = run(loop, main())
    assert results == [True] * 15 + [False]
    assert items == [{"n": i} for i in range(16)]


def test_bytes_mode_rejects_objects(loop):
    async def main():
        with pytest.raises(TypeError, match="object_mode"):
            await Writable(write=lambda c: None).write(42)

    run(loop, main())


def test_from_iterable_sync_and_async(loop):
    async def agen():
        for i in range(3):
            yield i

    async def main():
        return ([x async for x in Readable.from_iterable([1, 2, 3])],
                [x async for x in Readable.from_iterable(agen())])

    assert run(loop, main()) == ([1, 2, 3], [0, 1, 2])


class Lines(Transform):
    """Node's hook names, as _read/_write/_final."""

    def __init__(self):
        super().__init__()
        self.rest = b""

    async def _transform(self, chunk):
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        for line in lines:
            self.push(line + b"\n")

    async def _flush(self):
        return self.rest or None


class LinesWithoutUnderscores(Transform):
    """The names without the underscore are the same hooks."""

    def __init__(self):
        super().__init__()
        self.rest = b""

    async def transform(self, chunk):
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        for line in lines:
            self.push(line + b"\n")

    async def flush(self):
        return self.rest or None


@pytest.mark.parametrize("cls", [Lines, LinesWithoutUnderscores], ids=lambda c: c.__name__)
def test_transform_subclass_with_push_and_flush(loop, cls):
    out = []

    async def main():
        await pipeline([b"ab\ncd", b"e\nf"], cls(), Writable(object_mode=True, write=out.append))

    run(loop, main())
    assert out == [b"ab\n", b"cde\n", b"f"]


def test_function_and_async_generator_stages(loop):
    async def double(source):
        async for x in source:
            yield x
            yield x

    out = []

    async def main():
        await pipeline(range(3), double, lambda x: x * 10, PassThrough(object_mode=True),
                       Writable(object_mode=True, write=out.append))

    run(loop, main())
    assert out == [0, 0, 10, 10, 20, 20]


def test_leaving_async_for_early_destroys_the_stream(loop, tmp_path):
    src = make_file(tmp_path / "in.bin", 4 * MiB)

    async def main():
        stream = create_read_stream(src)
        async for chunk in stream:
            break
        for _ in range(3):
            await asyncio.sleep(0)
        return stream

    run(loop, asyncio.sleep(0))    # the loop's own lazily made fds first
    before = open_fd_count()
    stream = run(loop, main())
    assert stream.destroyed
    assert fds_back_to(loop, before)


def test_read_stream_start_and_end_are_inclusive(loop, tmp_path):
    path = tmp_path / "digits"
    path.write_bytes(b"0123456789")

    async def main():
        return b"".join([c async for c in create_read_stream(path, start=2, end=5)])

    assert run(loop, main()) == b"2345"
    with pytest.raises(ValueError):
        create_read_stream(path, start=5, end=2)


def test_write_stream_flags(loop, tmp_path):
    path = tmp_path / "log"

    async def main():
        for flags in ("w", "a"):
            w = create_write_stream(path, flags=flags)
            await w.end(b"line\n")
        w = create_write_stream(path, flags="wx")
        with pytest.raises(FileExistsError):
            await w.end(b"again")

    run(loop, main())
    assert path.read_bytes() == b"line\nline\n"


@pytest.mark.parametrize("where", ["source", "transform", "sink"])
def test_an_error_in_any_stage_destroys_every_stage(loop, tmp_path, where):
    src = make_file(tmp_path / "in.bin", 2 * MiB)

    class Failing(Transform):
        async def transform(self, chunk):
            if where == "transform":
                raise ValueError("transform failed")
            return chunk

    class BadSource(Readable):
        def __init__(self):
            super().__init__()
            self.n = 0

        async def _read(self, size):
            self.n += 1
            if self.n == 3:
                raise ValueError("source failed")
            return b"x" * 1000

    class BadSink(Writable):
        async def _write(self, chunk):
            if where == "sink":
                raise ValueError("sink failed")

    async def main():
        source = BadSource() if where == "source" else create_read_stream(src)
        middle = Failing()
        sink = BadSink() if where == "sink" else create_write_stream(tmp_path / "out.bin")
        with pytest.raises(ValueError, match=f"{where} failed"):
            await pipeline(source, middle, sink)
        for _ in range(3):
            await asyncio.sleep(0)
        return source, middle, sink

    run(loop, asyncio.sleep(0))    # the loop's own lazily made fds first
    before = open_fd_count()
    stages = run(loop, main())
    assert all(s.destroyed for s in stages)
    gc.collect()
    assert open_fd_count() == before   # pipeline waits for the stages' fds to close


def test_cancelling_a_pipeline_leaves_no_open_fds(loop, tmp_path):
    src = make_file(tmp_path / "in.bin", 32 * MiB)

    class Slow(Transform):
        async def transform(self, chunk):
            await asyncio.sleep(0.001)
            return chunk

    async def main():
        stages = (create_read_stream(src), Slow(), create_write_stream(tmp_path / "out.bin"))
        task = asyncio.ensure_future(pipeline(*stages))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0)
        return stages

    run(loop, asyncio.sleep(0))    # the loop's own lazily made fds first
    before = open_fd_count()
    stages = run(loop, main())
    gc.collect()
    assert all(s.destroyed for s in stages)
    assert open_fd_count() == before   # pipeline waits for the stages' fds to close


def test_use_after_destroy_raises(loop):
    async def main():
        w = Writable(write=lambda c: None)
        w.destroy()
        with pytest.raises(StreamError):
            await w.write(b"x")
        r = Readable()
        r.destroy(OSError("gone"))
        with pytest.raises(OSError, match="gone"):
            await r.read()
        with pytest.raises(OSError, match="gone"):
            await finished(r)

    run(loop, main())


def test_a_timer_keeps_its_pace_while_a_file_is_copied(loop, tmp_path):
    src = make_file(tmp_path / "in.bin", 64 * MiB)

    async def main():
        gaps = []
        last = loop.time()

        async def tick():
            nonlocal last
            while True:
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        await pipeline(create_read_stream(src), create_write_stream(tmp_path / "out.bin"))
        ticker.cancel()
        return gaps

    gaps = run(loop, main(), timeout=120)
    assert len(gaps) >= 3
    # One 64 KiB chunk at a time: the loop is never held for long.
    assert max(gaps) < 0.25, max(gaps)


def test_socket_duplex_echo_with_backpressure(loop):
    payload = os.urandom(4 * MiB)

    async def handler(stream):
        async for chunk in stream:
            await stream.write(chunk)

    async def main():
        server = await serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = await connect("127.0.0.1", port)

        async def send():
            for i in range(0, len(payload), 65536):
                await client.write(payload[i:i + 65536])
            await client.end()

        sender = asyncio.ensure_future(send())
        received = bytearray()
        async for chunk in client:
            received += chunk
            assert client.readable_length <= 2 * 65536 + 262144
        await sender
        server.close()
        await server.wait_closed()
        return bytes(received)

    assert run(loop, main()) == payload
