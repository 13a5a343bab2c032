"""How evenly each scheduling mode spreads connections over 2 workers.

As a test: 200 connections per mode; round_robin must be even (to within one per
client thread), reuse_port must use both workers. As a measurement (the numbers in
docs/cluster.md)::

    PYTHONPATH=tests python tests/cluster/test_cluster_spread.py [connections] [concurrency]
"""
from __future__ import annotations

import collections
import signal
import sys
import threading
from pathlib import Path

import pytest

from support.cluster import STANDIN_APP, Primary, assert_gone, get, wait_workers_ready

pytestmark = pytest.mark.timeout(30)


def spread(app_dir: Path, scheduling: str, connections: int,
           concurrency: int) -> collections.Counter:
    """Start 2 workers in ``scheduling`` mode, make ``connections`` new connections
    (one request each) from ``concurrency`` client threads, and count them per worker."""
    p = Primary(["-m", "phaseloop", "serve", "standin_app:app", "--workers", "2", "--port",
                 "0", "--scheduling", scheduling], app_dir)
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    try:
        wait_workers_ready(p, 2)

        def client(n: int) -> None:
            for _ in range(n):
                pid = get(p.port)["worker"]
                with lock:
                    counts[pid] += 1

        share = [connections // concurrency + (i < connections % concurrency)
                 for i in range(concurrency)]
        threads = [threading.Thread(target=client, args=(n,)) for n in share]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        p.signal(signal.SIGTERM)
        assert p.wait() == 0, p.log
    finally:
        p.close()
    assert_gone(p.worker_pids())
    assert sum(counts.values()) == connections
    return counts


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "standin_app.py").write_text(STANDIN_APP)
    return tmp_path


def test_round_robin_is_even(app_dir):
    counts = spread(app_dir, "round_robin", 200, 1)
    assert sorted(counts.values()) == [100, 100]
    counts = spread(app_dir, "round_robin", 200, 4)
    a, b = sorted(counts.values())
    assert b - a <= 8, counts      # strictly alternating; clients finish unevenly


def test_reuse_port_uses_both(app_dir):
    counts = spread(app_dir, "reuse_port", 200, 2)
    assert len(counts) == 2 and min(counts.values()) >= 40, counts


def test_shared_serves_all(app_dir):
    counts = spread(app_dir, "shared", 200, 2)
    assert 1 <= len(counts) <= 2     # the kernel decides: no promise of evenness


def main(argv: list[str]) -> None:
    import tempfile
    connections = int(argv[0]) if argv else 1000
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "standin_app.py").write_text(STANDIN_APP)
        print("%d connections over 2 workers" % connections)
        for concurrency in ([int(argv[1])] if len(argv) > 1 else [1, 16]):
            for mode in ("shared", "reuse_port", "round_robin"):
                counts = spread(app_dir, mode, connections, concurrency)
                split = sorted(counts.values(), reverse=True) + [0]
                print("  %-11s concurrency %2d: %4d / %4d  (busiest %.1f%%)"
                      % (mode, concurrency, split[0], split[1],
                         100.0 * split[0] / connections))


if __name__ == "__main__":
    main(sys.argv[1:])
