"""``phaseloop serve``'s flags (uvicorn's names), each on a real primary, for an ASGI
app (uvicorn's protocols) and for a phaseloop.http App (its own server), and the
command as a newcomer meets it: ``--help`` without markup, the line saying where
it listens, ``--reload``.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from support.cluster import Primary, assert_gone, get_when_up, serve_app
from support.http import fetch
from support.paths import SERVE_APPS

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(40)]

APPS = {"asgi": "asgi_app:app", "phaseloop": "phaseloop_app:app"}
both_kinds = pytest.mark.parametrize("kind", sorted(APPS))


def stop(p: Primary) -> None:
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert_gone(p.worker_pids())


def test_help_has_no_markup():
    for args in ([], ["serve"]):
        done = subprocess.run([sys.executable, "-m", "phaseloop", *args, "--help"],
                              capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        for markup in ("``", ":func:", ":class:", ":data:", ".. ", "::"):
            assert markup not in done.stdout, (markup, done.stdout)
    assert "--forwarded-allow-ips" in done.stdout and "round_robin" in done.stdout


@both_kinds
def test_prints_where_it_listens(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--log-level", "warning")
    line = p.wait_for(r"phaseloop serve: \S+ on (http://127\.0\.0\.1:\d+) with 2 workers "
                      r"\(round_robin\); Ctrl-C stops it").group(1)
    assert line == "http://127.0.0.1:%d" % p.port
    get_when_up(p.port)
    stop(p)


@both_kinds
def test_uds(primaries, tmp_path, kind):
    path = str(tmp_path / "app.sock")
    p = Primary(["-m", "phaseloop", "serve", APPS[kind], "--workers", "2", "--uds", path],
                SERVE_APPS, port=0)
    primaries.append(p)
    p.wait_for(re.escape("on unix:%s with 2 workers" % path))
    deadline = time.monotonic() + 8
    seen = set()
    while len(seen) < 2 and time.monotonic() < deadline:
        try:
            seen.add(fetch(uds=path).json()["worker"])
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.05)
    assert seen == set(p.worker_pids())
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666)
    stop(p)
    assert not os.path.exists(path), "the socket file is removed at exit"


def listen_backlog(port: int) -> int:
    """The accept queue's size of the listening socket on ``port`` (ss's Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return int(out.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
@both_kinds
def test_backlog(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--backlog", "77")
    get_when_up(p.port)
    assert listen_backlog(p.port) == 77
    stop(p)


@both_kinds
def test_limit_concurrency(primaries, kind):
    """As uvicorn counts: 503 once N connections are open, the asking one included."""
    p = serve_app(primaries, APPS[kind], "--limit-concurrency", "2", workers=1)
    assert get_when_up(p.port)["worker"]
    with socket.create_connection(("127.0.0.1", p.port)) as idle:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")      # kept alive, open
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        r = fetch(p.port)
        assert r.status == 503, (r, p.log)
    deadline = time.monotonic() + 5
    while fetch(p.port).status != 200:
        assert time.monotonic() < deadline, "still 503 after the other connection closed"
        time.sleep(0.05)
    stop(p)


def seconds_until_closed(port: int, limit: float) -> float | None:
    """Send a keep-alive request; seconds until the server closes the connection
    (None if it is still open after ``limit``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        try:
            while s.recv(65536):
                pass
        except (TimeoutError, socket.timeout):
            return None
        return time.monotonic() - start


@both_kinds
def test_timeout_keep_alive(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--timeout-keep-alive", "0.5", workers=1)
    get_when_up(p.port)
    closed_after = seconds_until_closed(p.port, 5)
    assert closed_after is not None and closed_after < 4
    stop(p)
    p = serve_app(primaries, APPS[kind], workers=1)     # the default: 5 s
    get_when_up(p.port)
    assert seconds_until_closed(p.port, 1.5) is None
    stop(p)


@both_kinds
def test_ssl(primaries, certificate, kind):
    cert, key = certificate
    p = serve_app(primaries, APPS[kind], "--ssl-certfile", cert, "--ssl-keyfile", key)
    assert p.wait_for(r"on (https://127\.0\.0\.1:\d+)")
    deadline = time.monotonic() + 8
    while True:
        try:
            r = fetch(p.port, cafile=cert)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert r.status == 200 and r.json()["scheme"] == "https"
    stop(p)


@both_kinds
def test_log_level(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--log-level", "warning")
    get_when_up(p.port)
    stop(p)
    assert "INFO" not in p.log and "worker 1 started" not in p.log, p.log
    p = serve_app(primaries, APPS[kind], "--log-level", "debug")
    get_when_up(p.port)
    stop(p)
    assert "DEBUG" in p.log and "worker 1 started" in p.log, p.log


@both_kinds
def test_access_log(primaries, kind):
    line = re.compile(r'127\.0\.0\.1:\d+ - "GET /\?from=test HTTP/1\.1" 200')
    p = serve_app(primaries, APPS[kind])          # on by default, as uvicorn's
    get_when_up(p.port)
    assert fetch(p.port, "/?from=test").status == 200
    p.wait_for(line)
    stop(p)
    p = serve_app(primaries, APPS[kind], "--no-access-log")
    get_when_up(p.port)
    assert fetch(p.port, "/?from=test").status == 200
    stop(p)
    assert not line.search(p.log), p.log


@both_kinds
def test_proxy_headers(primaries, kind):
    forwarded = {"X-Forwarded-For": "203.0.113.7, 127.0.0.3", "X-Forwarded-Proto": "https"}
    p = serve_app(primaries, APPS[kind], "--proxy-headers",
                  "--forwarded-allow-ips", "127.0.0.1,127.0.0.3")
    get_when_up(p.port)
    body = fetch(p.port, headers=forwarded).json()
    # 127.0.0.3 is a trusted proxy too: the client is the address before it.
    assert (body["client"], body["scheme"]) == ("203.0.113.7", "https")
    body = fetch(p.port, headers=forwarded, source="127.0.0.2").json()
    assert (body["client"], body["scheme"]) == ("127.0.0.2", "http"), "untrusted peer"
    stop(p)
    p = serve_app(primaries, APPS[kind])          # off by default
    get_when_up(p.port)
    body = fetch(p.port, headers=forwarded).json()
    assert (body["client"], body["scheme"]) == ("127.0.0.1", "http")
    stop(p)


def test_proxy_headers_key_the_rate_limiter(primaries):
    """phaseloop.http's rate_limit keys on req.client: behind a trusted proxy, the
    client the proxy names, not the proxy."""
    p = serve_app(primaries, APPS["phaseloop"], "--proxy-headers", workers=1)
    get_when_up(p.port)

    def limited(client: str) -> int:
        return fetch(p.port, "/limited", headers={"X-Forwarded-For": client}).status

    assert [limited("198.51.100.1") for _ in range(4)] == [200, 200, 200, 429]
    assert limited("198.51.100.2") == 200
    stop(p)


@both_kinds
def test_root_path(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--root-path", "/api")
    get_when_up(p.port)
    body = fetch(p.port, "/").json()
    assert (body["root_path"], body["path"]) == ("/api", "/")
    stop(p)


APP_V1 = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'{"worker": 0, "version": %d}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%%d" %% len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


def test_reload(primaries, tmp_path):
    module = tmp_path / "reloaded_app.py"
    module.write_text(APP_V1 % 1)
    p = Primary(["-m", "phaseloop", "serve", "reloaded_app:app", "--workers", "1", "--port",
                 "0", "--reload", "--reload-dir", str(tmp_path)], tmp_path)
    primaries.append(p)
    assert get_when_up(p.port)["version"] == 1
    time.sleep(0.5)                  # the watcher is up (it starts with the child)
    module.write_text(APP_V1 % 2)
    port = int(p.wait_for(r"on http://127\.0\.0\.1:(\d+)", count=2, timeout=15).group(1))
    assert get_when_up(port)["version"] == 2
    os.killpg(p.proc.pid, signal.SIGINT)        # Ctrl-C
    assert p.wait(15) == 0, p.log
    assert "Traceback" not in p.log, p.log


def test_flags_an_app_without_asgi_cannot_take(primaries, tmp_path):
    (tmp_path / "only_serve.py").write_text(
        "class App:\n    async def serve(self, sock):\n        pass\napp = App()\n")
    done = subprocess.run([sys.executable, "-m", "phaseloop", "serve", "only_serve:app",
                           "--root-path", "/x", "--limit-concurrency", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2
    assert "--limit-concurrency, --root-path cannot apply" in done.stderr, done.stderr


def test_ssl_keyfile_needs_certfile(tmp_path):
    done = subprocess.run([sys.executable, "-m", "phaseloop", "serve", "x:app",
                           "--ssl-keyfile", "k.pem"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 2 and "--ssl-keyfile needs --ssl-certfile" in done.stderr
