"""``phaseloop serve --metrics``: GET /metrics in Prometheus' text format, across
the workers (prometheus_client's multiprocess mode), read back with
prometheus_client's own parser, for a FastAPI app and a phaseloop.http App."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.cluster import assert_gone, get, get_when_up, serve_app, wait_workers_ready
from support.http import fetch

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(40)]

#: How often a worker updates its loop metrics (serve/metrics.py), and a margin.
UPDATE_WAIT = 1.5


def scrape(port: int) -> dict[str, list]:
    """Every sample of GET /metrics, by metric family name."""
    r = fetch(port, "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain"), r
    return {family.name: family.samples
            for family in text_string_to_metric_families(r.body.decode())}


def value(samples: list, name: str, **labels: str) -> float:
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


@pytest.mark.parametrize("spec, route, path", [
    ("phaseloop_app:app", "/slow/{seconds}", "/slow/0"),
    ("fastapi_app:app", "/items/{item_id}", "/items/7")])
def test_metrics_across_workers(primaries, tmp_path, spec, route, path):
    p = serve_app(primaries, spec, "--metrics", "--no-access-log", env={"TMPDIR": str(tmp_path)})
    pids = wait_workers_ready(p, 2)
    statuses = {fetch(p.port, path).status for _ in range(6)}
    assert fetch(p.port, "/nowhere").status == 404
    with socket.create_connection(("127.0.0.1", p.port)):     # one idle connection
        time.sleep(UPDATE_WAIT)
        metrics = scrape(p.port)
    (status,) = statuses
    requests = metrics["phaseloop_http_requests"]
    assert value(requests, "phaseloop_http_requests_total", route=route,
                 status=str(status)) == 6
    assert value(requests, "phaseloop_http_requests_total", route="", status="404") == 1
    utilization = [s for s in metrics["phaseloop_event_loop_utilization"]]
    assert {int(s.labels["pid"]) for s in utilization} == pids
    assert all(0 <= s.value <= 1 for s in utilization)
    assert value(metrics["phaseloop_event_loop_delay_seconds"],
                 "phaseloop_event_loop_delay_seconds_count") > 10
    phases = metrics["phaseloop_loop_phase_seconds"]
    assert value(phases, "phaseloop_loop_phase_seconds_total", phase="poll") > 0
    assert value(phases, "phaseloop_loop_phase_seconds_total", phase="timers") > 0
    assert value(metrics["phaseloop_open_connections"], "phaseloop_open_connections") >= 1
    assert value(metrics["phaseloop_worker_restarts"], "phaseloop_worker_restarts_total") == 0

    # A worker killed: counted as a restart, its gauges gone, its counts kept.
    killed = get(p.port)["worker"]
    os.kill(killed, signal.SIGKILL)
    p.wait_for(r"died unexpectedly \(signal SIGKILL\)")
    now = wait_workers_ready(p, 2)
    assert killed not in now
    metrics = scrape(p.port)
    assert value(metrics["phaseloop_worker_restarts"], "phaseloop_worker_restarts_total") == 1
    assert killed not in {int(s.labels["pid"])
                          for s in metrics["phaseloop_event_loop_utilization"]}
    assert value(metrics["phaseloop_http_requests"], "phaseloop_http_requests_total",
                 route=route, status=str(status)) == 6

    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert_gone(p.worker_pids())
    assert not list(tmp_path.glob("phaseloop-metrics-*")), "the primary's folder is left"


def test_given_multiproc_dir_is_cleaned_not_removed(primaries, tmp_path):
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"stale from an earlier run")
    (folder / "keep.txt").write_text("not ours")
    p = serve_app(primaries, "phaseloop_app:app", "--metrics",
                  env={"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    get_when_up(p.port)
    assert not (folder / "counter_1.db").exists()
    assert fetch(p.port, "/metrics").status == 200
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert (folder / "keep.txt").exists()


def test_no_metrics_route_without_the_flag(primaries):
    p = serve_app(primaries, "phaseloop_app:app", workers=1)
    get_when_up(p.port)
    assert fetch(p.port, "/metrics").status == 404
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
