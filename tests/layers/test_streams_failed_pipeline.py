"""A pipeline that fails (or is cancelled) leaves no half-written file that
could pass for a whole one: a file its write stream created is removed, one
that existed is cut back to its length when opened. Real files, on
phaseloop and on asyncio's loop.
"""
import asyncio

import pytest

from phaseloop.streams import Transform, create_read_stream, create_write_stream, pipeline

MiB = 1024 * 1024


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


def failing_after(n):
    seen = 0

    def transform(chunk):
        nonlocal seen
        seen += 1
        if seen > n:
            raise ValueError("the transform failed")
        return chunk
    return Transform(transform)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "input.bin"
    path.write_bytes(b"x" * (2 * MiB))
    return path


def test_a_file_the_pipeline_created_is_removed(loop, source, tmp_path):
    dst = tmp_path / "output.bin"

    async def main():
        with pytest.raises(ValueError, match="transform failed"):
            await pipeline(create_read_stream(source), failing_after(4), create_write_stream(dst))

    run(loop, main())
    assert not dst.exists()


@pytest.mark.parametrize("flags, left", [("a", b"old content\n"), ("w", b"")])
def test_an_existing_file_is_cut_back(loop, source, tmp_path, flags, left):
    dst = tmp_path / "output.bin"
    dst.write_bytes(b"old content\n")

    async def main():
        with pytest.raises(ValueError):
            await pipeline(create_read_stream(source), failing_after(4),
                           create_write_stream(dst, flags=flags))

    run(loop, main())
    assert dst.read_bytes() == left


def test_a_cancelled_pipeline_removes_its_file_too(loop, source, tmp_path):
    dst = tmp_path / "output.bin"

    async def slow(source_stream):
        async for chunk in source_stream:
            await asyncio.sleep(0.01)
            yield chunk

    async def main():
        task = asyncio.ensure_future(pipeline(create_read_stream(source), slow,
                                              Transform(bytes.upper), create_write_stream(dst)))
        while not dst.exists() or dst.stat().st_size == 0:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())
    assert not dst.exists()


def test_a_file_replaced_meanwhile_is_left_alone(loop, source, tmp_path):
    dst = tmp_path / "output.bin"
    seen = 0

    def transform(chunk):
        nonlocal seen
        seen += 1
        if seen == 4:              # the sink has written the first chunks by now
            dst.rename(tmp_path / "moved.bin")
            dst.write_bytes(b"someone else's file")
            raise ValueError("failed after the swap")
        return chunk

    async def main():
        with pytest.raises(ValueError):
            await pipeline(create_read_stream(source), Transform(transform),
                           create_write_stream(dst))

    run(loop, main())
    assert dst.read_bytes() == b"someone else's file"
    assert (tmp_path / "moved.bin").stat().st_size > 0   # not ours to remove by its new name


def test_a_finished_pipeline_keeps_its_file(loop, source, tmp_path):
    dst = tmp_path / "output.bin"
    run(loop, pipeline(create_read_stream(source), create_write_stream(dst)))
    assert dst.stat().st_size == 2 * MiB
