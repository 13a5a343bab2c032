"""Node-style streams for asyncio: Readable, Writable, Duplex, Transform, pipeline.

Bytes mode (the default) counts buffered bytes; ``object_mode=True`` counts
chunks. Each stream has a ``high_water_mark`` (64 KiB, or 16 objects):

- a Readable pulls from its source (``_read``) in the background only while
  its buffer is under the mark, so a slow consumer stops a fast source;
- ``await writable.write(chunk)`` returns at once while the buffer is under
  the mark and waits when it is at or over it (backpressure).

The Node guide's example (examples/node_guide/stream_pipeline.py)::

    from phaseloop.streams import create_read_stream, create_write_stream, pipeline

    class Upper(Transform):
        async def transform(self, chunk):
            return chunk.upper()

    await pipeline(create_read_stream("input.txt"), Upper(), create_write_stream("output.txt"))

With text, give the read stream an encoding: chunks are then ``str``,
decoded without ever splitting a multi-byte character (``bytes.upper()``
changes ASCII letters only)::

    await pipeline(create_read_stream("input.txt", encoding="utf-8"),
                   Transform(str.upper), create_write_stream("output.txt"))

``async for chunk in readable`` reads until the end; leaving the loop early
destroys the stream. Stages of ``pipeline`` may also be iterables (a source),
async generator functions (``async def stage(source): async for c in source:
yield ...``) and plain functions (a Transform over each chunk). Sockets are
Duplex streams: ``await connect(host, port)`` and ``await serve(handler,
host, port)``.

Works on any asyncio loop. File I/O moves one chunk at a time, so the loop
is never blocked for longer than one chunk; a chunk the page cache holds is
read on the loop at once, any other in the loop's executor, and on phaseloop
a reader resumes as Node's I/O callbacks run (docs/phases.md). A pipeline
that fails removes (or cuts back) the file its write stream was writing.

The package: core.py (the stream classes), pipeline.py (pipeline, finished),
files.py (file streams), sockets.py (socket streams).
"""
from __future__ import annotations

from .core import (BYTES_HIGH_WATER_MARK, OBJECTS_HIGH_WATER_MARK, Duplex, PassThrough, Readable,
                   StreamError, Transform, Writable)
from .files import create_read_stream, create_write_stream
from .pipeline import finished, pipeline
from .sockets import SocketStream, connect, serve

__all__ = ["BYTES_HIGH_WATER_MARK", "Duplex", "OBJECTS_HIGH_WATER_MARK", "PassThrough",
           "Readable", "SocketStream", "StreamError", "Transform", "Writable", "connect",
           "create_read_stream", "create_write_stream", "finished", "pipeline", "serve"]
