"""examples/cluster_app.py on the real phaseloop.http.App, through ``phaseloop serve``
and as a program: ``GET /`` answers ``{"worker": pid}`` from each worker, SIGHUP
replaces the workers with no failed request, SIGTERM stops everything with status 0."""
from __future__ import annotations

import signal
import urllib.request

import pytest

from support.cluster import STARTED, Primary, get, requests_during_rolling_restart, wait_workers_ready
from support.paths import REPO_ROOT

pytestmark = pytest.mark.timeout(30)

@pytest.mark.parametrize("scheduling", ["shared", "reuse_port", "round_robin"])
def test_serve_example(primaries, scheduling):
    p = Primary(["-m", "phaseloop", "serve", "examples.cluster_app:app", "--workers", "2",
                 "--port", "0", "--scheduling", scheduling], REPO_ROOT)
    primaries.append(p)
    p.wait_for(STARTED, 2)
    seen = wait_workers_ready(p, 2)
    assert seen == set(p.worker_pids())
    body = get(p.port)
    assert list(body) == ["worker"] and body["worker"] in seen
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


# A rolling restart of the real App drops no request: App.drain() gives a connection
# that has not sent its request yet a short grace period instead of closing it.
def test_example_program_rolling_restart(primaries):
    p = Primary(["examples/cluster_app.py", "2", "0"], REPO_ROOT)
    primaries.append(p)
    before = wait_workers_ready(p, 2)
    answers, errors = requests_during_rolling_restart(p)
    assert not errors, (errors[:3], p.log)
    assert answers and not (set(answers[-10:]) & before)
    p.signal(signal.SIGINT)
    assert p.wait() == 0, p.log


# The README's curl line prints the answer: one JSON line, ending with a newline so the
# shell prompt starts on a line of its own.
def test_example_answer_is_one_json_line(primaries):
    p = Primary(["examples/cluster_app.py", "1", "0"], REPO_ROOT)
    primaries.append(p)
    (pid,) = wait_workers_ready(p, 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/", timeout=5) as answer:
        content_type, body = answer.headers["Content-Type"], answer.read()
    assert content_type == "application/json"
    assert body == b'{"worker": %d}\n' % pid
    p.signal(signal.SIGINT)
    assert p.wait() == 0, p.log
