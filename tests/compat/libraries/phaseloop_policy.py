"""pytest plugin: phaseloop.Policy() is the event loop policy of the session.

tests/compat/run_libraries.py loads it with ``-p phaseloop_policy`` ("policy"
mode), so every asyncio.run(), asyncio.Runner and IsolatedAsyncioTestCase of
a library's suite runs on a phaseloop loop.
"""
import asyncio

import phaseloop


def pytest_configure(config):
    asyncio.set_event_loop_policy(phaseloop.Policy())
