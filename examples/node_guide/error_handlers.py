"""Global error handlers that log and exit 1 (error_handlers.mjs).

process.on(...) is errors.on_*: registering is enough. process.exit(1) is
sys.exit(1): the program ends with status 1 once the loop has shut down
(tasks cancelled, transports closed). `python error_handlers.py` raises in a
timer callback, `python error_handlers.py rejection` lets a task fail with
nobody awaiting it.
"""
import asyncio
import logging
import sys

import phaseloop
from phaseloop import errors

logging.basicConfig(format="%(message)s")
logger = logging.getLogger("app")


@errors.on_uncaught_exception
def on_uncaught(error, context):
    logger.error("Uncaught Exception: %s", error)
    sys.exit(1)


@errors.on_unhandled_rejection
def on_rejection(reason, context):
    logger.error("Unhandled Rejection: %s", reason)
    sys.exit(1)


async def fail():
    raise Exception("nobody awaited me")


def boom():
    raise Exception("boom")


async def main():
    loop = asyncio.get_running_loop()
    if sys.argv[1:] == ["rejection"]:
        task = asyncio.ensure_future(fail())          # noqa: F841 - never awaited
    else:
        loop.call_later(0, boom)
    await asyncio.sleep(0.1)
    print("still running")


phaseloop.run(main())
