"""Uppercase input.txt into output.txt through a stream pipeline (stream_pipeline.mjs).

chunk.toString() becomes the read stream's encoding: the chunks arrive as str,
decoded without ever cutting a multi-byte character in two (Node's toString()
on a raw chunk would), so str.upper() sees whole characters. bytes.upper()
would leave every non-ASCII letter as it is.
"""
import phaseloop
from phaseloop.streams import Transform, create_read_stream, create_write_stream, pipeline


class UpperCase(Transform):
    async def transform(self, chunk):
        return chunk.upper()


upper_case = UpperCase()


async def main():
    await pipeline(
        create_read_stream("input.txt", encoding="utf-8"),
        upper_case,
        create_write_stream("output.txt"),
    )


phaseloop.run(main())
