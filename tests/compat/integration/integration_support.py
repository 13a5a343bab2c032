"""Helpers of the integration tests: running a coroutine on a loop, server processes.

The tests in this folder run real, unmodified libraries (uvicorn, Starlette,
aiohttp, httpx, anyio, websockets) on phaseloop and, for comparison, on asyncio's
own loop.  They use the ``loop`` fixture of ``tests/conftest.py`` (parametrized
over both loops) where the library lets the test pick the loop, and
``LOOP_FACTORIES`` where the library builds the loop itself (``anyio.run``,
uvicorn's ``--loop``).
"""
from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

import httpx

import phaseloop
from starlette_app import HELLO, JSON_DOCUMENT, stream_line

T = TypeVar("T")

#: Folder of this file (the apps served by subprocesses live here).
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
#: Seconds a test's whole client side may take before it fails.
CLIENT_TIMEOUT = 10.0
#: Seconds a server process may take to say it listens.
START_TIMEOUT = 15.0
#: Seconds a server process may take to exit after SIGTERM.
STOP_TIMEOUT = 5.0

#: Loop factories by the names of the ``loop`` fixture's parameters.
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "phaseloop": phaseloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def run(loop: asyncio.AbstractEventLoop, coro: Awaitable[T],
        timeout: float = CLIENT_TIMEOUT) -> T:
    """Run ``coro`` on ``loop`` (not running) to completion, failing after ``timeout`` s.

    The loop's default executor (which getaddrinfo and to_thread use) is shut down
    afterwards, so that no worker thread outlives the test: call this once per loop.
    """
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), timeout))


def loop_class_name(loop: asyncio.AbstractEventLoop) -> str:
    """'phaseloop.Loop', 'asyncio.unix_events._UnixSelectorEventLoop', ..."""
    cls = type(loop)
    return f"{cls.__module__}.{cls.__qualname__}"


def child_env() -> dict[str, str]:
    """Environment of a server process: ours, unbuffered, importing from the repo root."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class ServerProcess:
    """A server running in a child process; everything it wrote to stderr so far."""

    process: subprocess.Popen[bytes]
    port: int = 0
    stderr_text: str = ""
    _pending: bytes = field(default=b"", repr=False)

    def read_stderr(self, deadline: float, until: re.Pattern[str] | None = None
                    ) -> re.Match[str] | None:
        """Collect stderr until a line matches ``until``, EOF or ``deadline``.

        Returns the match, or None (EOF, deadline, or ``until`` None).
        """
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                if until is not None:
                    for line in self.stderr_text.splitlines():
                        if match := until.search(line):
                            return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._pending += chunk
                text, _, self._pending = self._pending.rpartition(b"\n")
                if text:
                    self.stderr_text += text.decode(errors="replace") + "\n"

    def stop(self) -> int:
        """SIGTERM, then wait (SIGKILL after STOP_TIMEOUT s); the exit status.

        The rest of stderr is collected into ``stderr_text``.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.read_stderr(time.monotonic() + 1)
        self.stderr_text += self._pending.decode(errors="replace")
        self._pending = b""
        assert self.process.stderr is not None
        self.process.stderr.close()
        return self.process.returncode


def start_server(command: Sequence[str], port_line: str,
                 timeout: float = START_TIMEOUT) -> ServerProcess:
    """Start ``command``; wait for a stderr line matching ``port_line`` (group 1: port).

    Raises AssertionError (with the server's stderr) when it exits or stays silent.
    """
    process = subprocess.Popen(list(command), cwd=REPO_ROOT, env=child_env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    server = ServerProcess(process)
    match = server.read_stderr(time.monotonic() + timeout, re.compile(port_line))
    if match is None:
        status = server.stop()
        raise AssertionError(f"server did not start (exit status {status}):\n"
                             f"{' '.join(command)}\n{server.stderr_text}")
    server.port = int(match.group(1))
    return server


def python_command(*args: str) -> list[str]:
    """``python ARGS`` with this interpreter."""
    return [sys.executable, *args]


#: What the app must report as its loop's class.
EXPECTED_CLASS_PREFIX = {"phaseloop": "phaseloop.", "asyncio": "asyncio."}


async def check_http(port: int, loop_name: str) -> None:
    """Every HTTP route of the app through httpx, one keep-alive client."""
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=5, trust_env=False) as client:
        response = await client.get("/loop")
        assert response.status_code == 200, response.text
        served_by = response.json()
        assert served_by["class"].startswith(EXPECTED_CLASS_PREFIX[loop_name]), served_by
        assert served_by["is_phaseloop"] is (loop_name == "phaseloop"), served_by
        assert served_by["startup_on_same_loop"] is True, served_by

        response = await client.get("/")
        assert response.status_code == 200
        assert response.content == HELLO.encode()
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["content-length"] == str(len(HELLO))

        response = await client.get("/json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == JSON_DOCUMENT

        document = {"numbers": list(range(2000)), "text": "été " * 500}
        response = await client.post("/echo", json=document)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": document,
                                   "length": len(response.request.content)}

        chunks = 50
        async with client.stream("GET", "/stream", params={"chunks": chunks}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["transfer-encoding"] == "chunked"
            body = b"".join([part async for part in streamed.aiter_bytes()])
        assert body == b"".join(stream_line(i) for i in range(chunks))

        response = await client.get("/missing")
        assert response.status_code == 404

        answers = await asyncio.gather(*(client.get("/", params={"n": i}) for i in range(20)))
        assert [(r.status_code, r.content) for r in answers] == [(200, HELLO.encode())] * 20
