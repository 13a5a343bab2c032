"""pipeline() and finished(): Node's stream.pipeline and stream.finished."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .core import Readable, Transform, Writable, _Base

__all__ = ["finished", "pipeline"]


async def finished(stream: _Base) -> None:
    """Wait until a stream has ended (Readable), finished (Writable) or both
    (Duplex); raises the error it failed with."""
    await asyncio.shield(stream._completion())


def _as_stage(stage: Any, position: int, last: bool, object_mode: bool) -> Any:
    if isinstance(stage, _Base):
        return stage
    if position == 0 and (hasattr(stage, "__aiter__") or hasattr(stage, "__iter__")) \
            and not isinstance(stage, (bytes, str)):
        return Readable.from_iterable(stage)
    if inspect.isasyncgenfunction(stage):
        return stage
    if callable(stage) and not last:
        return Transform(stage, object_mode=object_mode)
    raise TypeError(f"pipeline stage {position} is not a stream, iterable or function: {stage!r}")


async def pipeline(*stages: Any) -> None:
    """Connect stages source -> transforms -> sink and wait until the sink
    has finished. On an error or cancellation every stream stage is destroyed
    and the first error is raised; an unfinished file write stream removes
    the file it created (or cuts an existing one back to its length when
    opened) before that.

    >>> await pipeline(create_read_stream("in.txt"), Transform(bytes.upper),
    ...                create_write_stream("out.txt"))
    """
    if len(stages) < 2:
        raise TypeError("pipeline() needs at least a source and a destination")
    parts: list[Any] = []
    object_mode = True        # what a function stage sees: its source's mode
    for i, s in enumerate(stages):
        part = _as_stage(s, i, i == len(stages) - 1, object_mode)
        object_mode = part.object_mode if isinstance(part, _Base) else True
        parts.append(part)
    if not isinstance(parts[-1], Writable):
        raise TypeError(f"the last pipeline stage must be a Writable, got {parts[-1]!r}")
    loop = asyncio.get_running_loop()
    pumps: list[asyncio.Task] = []
    source: Any = parts[0]
    for part in parts[1:]:
        if isinstance(part, Writable):
            pumps.append(loop.create_task(_pump(source, part)))
            source = part
        else:                                   # an async generator function
            source = part(source)
    streams = [p for p in parts if isinstance(p, _Base)]
    try:
        await asyncio.gather(*pumps)
        await finished(parts[-1])
    except BaseException as exc:
        first = exc
        for task in pumps:
            if task.done() and not task.cancelled() and task.exception() is not None:
                first = task.exception()
                break
        for task in pumps:
            task.cancel()
        failure = first if not isinstance(first, asyncio.CancelledError) else None
        for stream in streams:
            stream._discard_partial()
            stream.destroy(failure)
        await asyncio.gather(*pumps, *(s._released() for s in streams), return_exceptions=True)
        if first is exc:
            raise
        raise first from None


async def _pump(source: Any, sink: Writable) -> None:
    async for chunk in source:
        await sink.write(chunk)
    await sink.end()
