"""uvicorn serving a Starlette app, started from its own command line, on each loop.

The server is the unmodified ``python -m uvicorn`` in a subprocess, given the loop
with ``--loop``: ``--loop phaseloop:new_event_loop`` (uvicorn >= 0.36 takes an
import string ``module:factory`` of a loop factory) or ``--loop asyncio``.  The app
(``starlette_app.py``) reports the class of its running loop, so the test knows
the requests were served by the loop asked for.  Both of uvicorn's HTTP
implementations run: httptools (its default where installed) and h11 (pure
Python); websockets go through uvicorn's default (websockets' sans-I/O protocol).

The client side is httpx's AsyncClient and websockets' client, on the test's loop
(the same kind as the server's).  Every response is checked: status, headers that
matter, body byte for byte.  The server must then stop gracefully on SIGTERM
("Finished server process" logged, no traceback and no ERROR line in its log).
"""
from __future__ import annotations

import importlib.util
import signal
import subprocess

import pytest

import uvicorn  # noqa: F401  (a test requirement: missing, the run fails)
import starlette  # noqa: F401  (a test requirement: missing, the run fails)
import httpx
import websockets  # noqa: F401  (a test requirement: missing, the run fails)

from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from integration_support import (  # noqa: E402
    EXPECTED_CLASS_PREFIX,
    check_http,
    HERE,
    ServerProcess,
    child_env,
    loop_class_name,
    python_command,
    run,
    start_server,
)

pytestmark = pytest.mark.timeout(60)

#: uvicorn's --loop argument per loop fixture name.
UVICORN_LOOP = {"phaseloop": "phaseloop:new_event_loop", "asyncio": "asyncio"}
PORT_LINE = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
HTTP_IMPLEMENTATIONS = ["h11"] + (["httptools"] if importlib.util.find_spec("httptools")
                                  else [])


def start_uvicorn(loop_name: str, http: str) -> ServerProcess:
    """``python -m uvicorn starlette_app:app`` on a free port of 127.0.0.1."""
    return start_server(python_command(
        "-m", "uvicorn", "starlette_app:app", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", "0", "--loop", UVICORN_LOOP[loop_name],
        "--http", http, "--lifespan", "on", "--no-access-log", "--log-level", "info",
        "--timeout-graceful-shutdown", "3"), PORT_LINE)


async def check_websocket(port: int) -> None:
    """Text and binary frames, small and large, echoed by /ws."""
    messages: list[str | bytes] = ["hello", "", "é" * 1000, b"\x00\x01\x02",
                                   bytes(range(256)) * 400, "x" * 100_000]
    async with ws_connect(f"ws://127.0.0.1:{port}/ws", proxy=None, open_timeout=5) as ws:
        for message in messages:
            await ws.send(message)
            echoed = await ws.recv()
            assert type(echoed) is type(message)
            assert echoed == message
    assert ws.close_code == 1000


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_uvicorn_serves_starlette(loop, loop_name, http):
    server = start_uvicorn(loop_name, http)
    try:
        assert loop_class_name(loop).startswith(EXPECTED_CLASS_PREFIX[loop_name])

        async def client_side() -> None:
            await check_http(server.port, loop_name)
            await check_websocket(server.port)

        run(loop, client_side())
    finally:
        status = server.stop()
    log = server.stderr_text
    # recent uvicorn shuts down gracefully, then re-raises the signal it caught
    assert status in (0, -signal.SIGTERM), log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "Application startup complete." in log and "Finished server process" in log, log


def test_uvicorn_rejects_a_loop_factory_that_does_not_exist():
    """--loop is really the import string uvicorn uses: a wrong one stops the start-up."""
    done = subprocess.run(
        python_command("-m", "uvicorn", "starlette_app:app", "--app-dir", str(HERE),
                       "--host", "127.0.0.1", "--port", "0",
                       "--loop", "phaseloop:no_such_factory"),
        env=child_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30, check=False)
    assert done.returncode == 3, done.stderr  # uvicorn's STARTUP_FAILURE
    assert "no_such_factory" in done.stderr, done.stderr
