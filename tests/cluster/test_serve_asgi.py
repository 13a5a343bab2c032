"""``phaseloop serve`` with ASGI apps: uvicorn's protocols in every cluster worker.

Real primaries in subprocesses on 127.0.0.1 (support.cluster.Primary), serving
the bare ASGI app and the FastAPI app of tests/support/serve_apps/: both
workers answer (round-robin by default: two requests in a row reach two
workers), lifespan runs once per worker, WebSockets work, SIGTERM and Ctrl-C
finish the request in flight, SIGHUP replaces the workers with no failed
request, and nothing is left running.
"""
from __future__ import annotations

import json
import os
import re
import signal

import pytest
from websockets.sync.client import connect as websocket_connect

from support.cluster import (STARTED, Primary, assert_gone, get, get_when_up,
                             requests_during_rolling_restart, serve_app, slow_request_in_flight,
                             wait_workers_ready)
from support.http import fetch

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(40)]

APPS = {"asgi": "asgi_app:app", "fastapi": "fastapi_app:app", "phaseloop": "phaseloop_app:app"}


@pytest.mark.parametrize("kind", ["asgi", "fastapi", "phaseloop"])
def test_two_requests_in_a_row_reach_two_workers(primaries, kind):
    p = serve_app(primaries, APPS[kind])
    p.wait_for(STARTED, 2)
    wait_workers_ready(p, 2)
    first, second = get(p.port)["worker"], get(p.port)["worker"]
    assert first != second and {first, second} == set(p.worker_pids())
    assert "(round_robin)" in p.log
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert_gone(p.worker_pids())


def test_lifespan_runs_once_per_worker(primaries):
    p = serve_app(primaries, APPS["asgi"])
    pids = wait_workers_ready(p, 2)
    for pid in pids:
        p.wait_for("lifespan startup in %d" % pid)
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    for pid in pids:
        assert p.log.count("lifespan startup in %d" % pid) == 1, p.log
        assert p.log.count("lifespan shutdown in %d" % pid) == 1, p.log
    assert "Traceback" not in p.log, p.log


def test_fastapi_json_round_trip_and_routes(primaries):
    p = serve_app(primaries, APPS["fastapi"])
    get_when_up(p.port)
    sent = {"name": "phaseloop", "count": 3}
    r = fetch(p.port, "/echo", method="POST", body=json.dumps(sent).encode(),
              headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json() == sent
    r = fetch(p.port, "/echo", method="POST", body=b'{"name": 1}',
              headers={"Content-Type": "application/json"})
    assert r.status == 422
    assert fetch(p.port, "/items/41").json()["item_id"] == 41
    assert fetch(p.port, "/nowhere").status == 404
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


def test_websocket_through_uvicorn(primaries):
    p = serve_app(primaries, APPS["asgi"])
    get_when_up(p.port)
    with websocket_connect("ws://127.0.0.1:%d/ws" % p.port, open_timeout=5) as ws:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv(timeout=5) == "echo: " + text
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


@pytest.mark.parametrize("stop", ["SIGTERM", "ctrl-c"])
@pytest.mark.parametrize("kind", ["asgi", "phaseloop"])
def test_stopping_finishes_the_request_in_flight(primaries, kind, stop):
    p = serve_app(primaries, APPS[kind], "--drain-timeout", "5")
    get_when_up(p.port)
    t, result = slow_request_in_flight(p)
    if stop == "ctrl-c":
        os.killpg(p.proc.pid, signal.SIGINT)    # what a terminal's Ctrl-C does
    else:
        p.signal(signal.SIGTERM)
    t.join(8)
    assert "error" not in result, (result, p.log)
    assert result["body"]["path"] == "/slow/0.6"
    assert p.wait() == 0, p.log
    assert p.log.count("stopped (exit code 0)") == 2, p.log
    assert "Traceback" not in p.log and "KeyboardInterrupt" not in p.log, p.log
    assert_gone(p.worker_pids())


@pytest.mark.parametrize("kind", ["asgi", "fastapi"])
def test_sighup_rolling_restart_drops_no_request(primaries, kind):
    p = serve_app(primaries, APPS[kind], "--no-access-log")
    before = wait_workers_ready(p, 2)
    answers, errors = requests_during_rolling_restart(p)
    assert not errors, (errors[:3], p.log)
    assert len(answers) > 20
    assert not (set(answers[-10:]) & before), "old workers still answer after the restart"
    assert "unexpectedly" not in p.log, p.log
    assert_gone(sorted(before))
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


LIFESPAN_FAILS = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
'''


def test_a_failing_lifespan_startup_stops_the_cluster(primaries, tmp_path):
    (tmp_path / "failing_app.py").write_text(LIFESPAN_FAILS)
    p = Primary(["-m", "phaseloop", "serve", "failing_app:app", "--workers", "1", "--port",
                 "0", "--lifespan", "on", "--max-restarts", "1"], tmp_path)
    primaries.append(p)
    assert p.wait(20) == 1, p.log
    assert "no database" in p.log
    assert re.search(r"died unexpectedly \(exit code 3\)", p.log), p.log
