"""Text from phaseloop.streams: create_read_stream(encoding=...) and
Readable.set_encoding give str chunks decoded incrementally, as Node's
StringDecoder: a multi-byte character split between two chunks comes out
whole. Real files in tmp_path, on phaseloop and on asyncio's loop.
"""
import asyncio

import pytest

from phaseloop.streams import (Readable, Transform, Writable, create_read_stream,
                               create_write_stream, pipeline)

# 2-, 3- and 4-byte UTF-8 characters between ASCII ones.
TEXT = "héllo wörld — naïve ∑ 🙂 ok " * 50


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 64])
def test_read_stream_with_encoding_never_splits_a_character(loop, tmp_path, chunk_size):
    path = tmp_path / "text.txt"
    path.write_bytes(TEXT.encode())

    async def main():
        return [c async for c in create_read_stream(path, encoding="utf-8",
                                                    high_water_mark=chunk_size)]

    chunks = run(loop, main())
    assert all(isinstance(c, str) for c in chunks)
    assert "".join(chunks) == TEXT
    # Decoding each chunk by hand is what failed: every chunk is whole text.
    assert all(c.encode().decode() == c for c in chunks)


def test_set_encoding_decodes_what_is_buffered_too(loop):
    async def main():
        r = Readable()
        data = "ä€🙂".encode()
        r.push(data[:3])          # "ä" and the first byte of "€"
        assert r.set_encoding("utf8") is r
        assert r.encoding == "utf-8"
        r.push(data[3:6])         # the rest of "€", half of "🙂"
        r.push(data[6:])
        r.push(None)
        return [c async for c in r]

    assert run(loop, main()) == ["ä", "€", "🙂"]


def test_invalid_and_truncated_bytes_become_replacement_characters(loop):
    async def main():
        r = Readable(encoding="utf-8")
        r.push(b"a\xffb")
        r.push("é".encode()[:1])  # a character cut off by the end of the stream
        r.push(None)
        return "".join([c async for c in r])

    assert run(loop, main()) == "a\ufffdb\ufffd"


def test_unknown_encoding_is_a_lookup_error(tmp_path):
    with pytest.raises(LookupError):
        create_read_stream(tmp_path / "x", encoding="no-such-codec")
    with pytest.raises(LookupError):
        Readable().set_encoding("no-such-codec")


def test_the_uppercase_pipeline_with_text(loop, tmp_path):
    src, dst = tmp_path / "input.txt", tmp_path / "output.txt"
    src.write_bytes(TEXT.encode())

    async def main():
        # 7-byte reads: characters are cut between reads all the time.
        await pipeline(create_read_stream(src, encoding="utf-8", high_water_mark=7),
                       Transform(str.upper), create_write_stream(dst))

    run(loop, main())
    assert dst.read_text(encoding="utf-8") == TEXT.upper()
    # What bytes.upper() would have done: ASCII only, the rest left alone.
    assert TEXT.encode().upper().decode() != TEXT.upper()
    assert "É" not in TEXT.encode().upper().decode()


def test_a_transform_gets_str_as_written_and_a_writable_gets_bytes(loop):
    seen, out = [], []

    async def main():
        t = Transform(lambda c: seen.append(type(c)) or c)
        sink = Writable(write=out.append)
        await pipeline(["é", b"x"], t, sink)

    run(loop, main())
    assert seen == [str, bytes]
    assert out == ["é".encode(), b"x"]
