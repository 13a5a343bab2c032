"""hypercorn and gunicorn serving the Starlette app, each on phaseloop and on asyncio.

The two ways docs/compat.md gives for running these servers on phaseloop:

- hypercorn: its asyncio ``serve()`` under ``phaseloop.run()``
  (``hypercorn_main.py``), with asyncio.run() for the differential run;
- gunicorn: a real gunicorn master with uvicorn's gunicorn worker subclassed to
  ask for ``loop="phaseloop:new_event_loop"`` (``gunicorn_workers.py``).

The app reports the class of the loop that serves it, so each test knows the
requests went through the loop asked for. The HTTP checks are the uvicorn
test's (text, JSON, a posted body, a chunked stream, 404, 20 concurrent
requests); the server must then stop on SIGTERM without a traceback.
"""
from __future__ import annotations

import re
import time

import pytest

import hypercorn  # noqa: F401  (a test requirement: missing, the run fails)
import gunicorn  # noqa: F401  (a test requirement: missing, the run fails)
import starlette  # noqa: F401  (a test requirement: missing, the run fails)
import httpx  # noqa: F401  (a test requirement: missing, the run fails)

from integration_support import (  # noqa: E402
    EXPECTED_CLASS_PREFIX,
    check_http,
    HERE,
    START_TIMEOUT,
    loop_class_name,
    python_command,
    run,
    start_server,
)

pytestmark = pytest.mark.timeout(60)

GUNICORN_WORKER = {"phaseloop": "PhaseloopWorker", "asyncio": "AsyncioWorker"}


def gunicorn_control_socket_args() -> list[str]:
    """gunicorn >= 24 opens a control socket under $HOME unless told not to."""
    from gunicorn.config import KNOWN_SETTINGS
    return (["--no-control-socket"]
            if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else [])


def test_hypercorn_serves_starlette(loop, loop_name):
    server = start_server(python_command(str(HERE / "hypercorn_main.py"), loop_name),
                          r"Running on http://127\.0\.0\.1:(\d+)")
    try:
        assert loop_class_name(loop).startswith(EXPECTED_CLASS_PREFIX[loop_name])
        run(loop, check_http(server.port, loop_name))
    finally:
        status = server.stop()
    log = server.stderr_text
    assert status == 0, log
    assert "Traceback" not in log and "hypercorn stopped" in log, log


def test_gunicorn_with_a_phaseloop_worker_serves_starlette(loop, loop_name):
    server = start_server(python_command(
        "-m", "gunicorn", "starlette_app:app", "--chdir", str(HERE),
        "-k", f"gunicorn_workers.{GUNICORN_WORKER[loop_name]}", "--workers", "1",
        "--bind", "127.0.0.1:0", "--graceful-timeout", "3",
        *gunicorn_control_socket_args()),
        r"Listening at: http://127\.0\.0\.1:(\d+)")
    try:
        # The master logs the port before its worker is up: wait for the app's start-up.
        started = server.read_stderr(time.monotonic() + START_TIMEOUT,
                                     re.compile("Application startup complete"))
        assert started is not None, server.stderr_text
        run(loop, check_http(server.port, loop_name))
    finally:
        status = server.stop()
    log = server.stderr_text
    assert status == 0, log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "Application startup complete." in log and "Shutting down: Master" in log, log
