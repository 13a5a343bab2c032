"""examples/deploy/nginx.conf for real: nginx (Debian's package, installed when
missing) on 127.0.0.1 in front of two ``phaseloop serve`` instances, as two hosts
would run them in production.

A bounded load (request count and time) goes through nginx while each instance
is restarted in turn, first with SIGHUP (the workers replaced one at a time),
then with SIGTERM and a start again on the same port: no request fails. Behind
nginx, with ``--proxy-headers``, the rate limiter keys on the client's own
address (X-Forwarded-For from nginx), not nginx's. Everything listens on
127.0.0.1; nginx and every process are stopped at the end.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from support.cluster import Primary, assert_gone, get_when_up
from support.http import fetch
from support.net import closed_port
from support.nginx import Nginx
from support.paths import SERVE_APPS

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(90)]

#: Bounds of the load: requests in all, seconds at most. Each client thread paces
#: itself (PACE_S between requests) so the count bound is not reached before the
#: restarts are done on a fast machine: 3 threads at most ~600 requests/s.
MAX_REQUESTS = 40_000
MAX_SECONDS = 60.0
PACE_S = 0.005


class Instance:
    """One ``phaseloop serve`` instance on a fixed port (a host of the example)."""

    def __init__(self, primaries: list, spec: str, port: int, *extra: str) -> None:
        self.spec, self.port, self.extra = spec, port, extra
        self.primaries = primaries
        self.start()

    def start(self) -> None:
        self.p = Primary(["-m", "phaseloop", "serve", self.spec, "--workers", "2",
                          "--port", str(self.port), "--no-access-log", "--proxy-headers",
                          *self.extra], SERVE_APPS, port=self.port)
        self.primaries.append(self.p)
        get_when_up(self.port)

    def pids(self) -> set[int]:
        return set(self.p.worker_pids())

    def stop(self) -> None:
        self.p.signal(signal.SIGTERM)
        assert self.p.wait(20) == 0, self.p.log
        assert_gone(self.p.worker_pids())


class Load:
    """Client threads doing one request after another through nginx, each on a new
    connection, until stopped or the bounds are reached; every answer is kept."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port = port
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.workers: list[int] = []
        self.failures: list[str] = []
        self.deadline = time.monotonic() + MAX_SECONDS
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if len(self.workers) + len(self.failures) >= MAX_REQUESTS:
                    return
            try:
                r = fetch(self.port, "/", timeout=10)
                outcome = r.json()["worker"] if r.status == 200 else "status %d" % r.status
            except Exception as exc:  # noqa: BLE001 - counted as a failure
                outcome = repr(exc)
            with self.lock:
                if isinstance(outcome, int):
                    self.workers.append(outcome)
                else:
                    self.failures.append(outcome)
            time.sleep(PACE_S)

    def wait_for_any(self, pids: set[int], nginx: Nginx, timeout: float = 15.0) -> None:
        """Until one of ``pids`` has answered through ``nginx`` since now (an instance
        nginx saw fail is left out for the upstream's fail_timeout first)."""
        with self.lock:
            start = len(self.workers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pids & set(self.workers[start:]):
                    return
            time.sleep(0.05)
        raise AssertionError("none of %s answered through nginx; since then: %s (%d requests "
                             "in all); nginx's log:\n%s"
                             % (sorted(pids), sorted(set(self.workers[start:])),
                                len(self.workers), nginx.error_log()[-2000:]))

    def finish(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)


@pytest.mark.parametrize("spec", ["phaseloop_app:app", "fastapi_app:app"])
def test_restarting_each_instance_behind_nginx_fails_no_request(primaries, tmp_path, spec):
    a = Instance(primaries, spec, closed_port())
    b = Instance(primaries, spec, closed_port())
    nginx = Nginx(tmp_path / "nginx", closed_port(), [a.port, b.port])
    load = None
    try:
        nginx.wait_ready()
        load = Load(nginx.port)
        load.wait_for_any(a.pids(), nginx)
        load.wait_for_any(b.pids(), nginx)
        for instance in (a, b):                       # SIGHUP: a rolling restart
            old = instance.pids()
            instance.p.signal(signal.SIGHUP)
            instance.p.wait_for("rolling restart done", timeout=20)
            load.wait_for_any(instance.pids() - old, nginx)
        for instance in (a, b):                       # SIGTERM, then start again
            instance.stop()
            instance.start()
            load.wait_for_any(instance.pids(), nginx)
        load.finish()
        assert not load.failures, (load.failures[:5], nginx.error_log()[-2000:])
        assert len(load.workers) > 100, "too little load to mean anything"
        answered = set(load.workers)
        assert all(answered & i.pids() for i in (a, b))
    finally:
        if load is not None:
            load.finish()
        nginx.stop()
    for instance in (a, b):
        instance.stop()


def test_rate_limit_keys_on_the_client_behind_nginx(primaries, tmp_path):
    """phaseloop_app's /limited allows 3 requests a minute per req.client."""
    app = Instance(primaries, "phaseloop_app:app", closed_port(), "--workers", "1")
    # One worker: the rate limiter's counts are per process.
    nginx = Nginx(tmp_path / "nginx", closed_port(), [app.port, closed_port()])
    try:
        nginx.wait_ready()

        def limited(source: str, **headers: str) -> tuple[int, str | None]:
            r = fetch(nginx.port, "/limited", source=source,
                      headers={k.replace("_", "-"): v for k, v in headers.items()})
            return r.status, (r.json().get("client") if r.status == 200 else None)

        first = [limited("127.0.0.2") for _ in range(3)]
        assert first == [(200, "127.0.0.2")] * 3
        assert limited("127.0.0.2")[0] == 429
        # A forged X-Forwarded-For does not give a fresh key: nginx appends the
        # real address, and the instance takes the rightmost untrusted one.
        assert limited("127.0.0.2", X_Forwarded_For="192.0.2.99")[0] == 429
        assert limited("127.0.0.3") == (200, "127.0.0.3")
    finally:
        nginx.stop()
    app.stop()
