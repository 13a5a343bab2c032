"""Stands in for uvloop so that a test suite's uvloop variant runs on phaseloop.

tests/compat/run_libraries.py puts this folder first on the path of the
suite it runs ("shim" mode); nothing else imports it.
"""
import asyncio

import phaseloop

__version__ = "0+phaseloop." + phaseloop.__version__

Loop = phaseloop.Loop
new_event_loop = phaseloop.new_event_loop
EventLoopPolicy = phaseloop.Policy
run = phaseloop.run


class loop:  # noqa: N801 - uvloop.loop.Loop is what suites check for methods
    Loop = phaseloop.Loop


def install():
    asyncio.set_event_loop_policy(phaseloop.Policy())
