"""Smoke run of benchmarks/workers.py (and its Node twin, where node is installed):
every row and every target line is there. Nothing here is about speed."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from support.paths import REPO_ROOT

pytestmark = pytest.mark.timeout(120)


def test_quick_run_prints_every_row_and_target():
    done = subprocess.run([sys.executable, "-m", "benchmarks.workers", "--quick",
                           "--cpus", "none"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for row in ("round trip (µs)", "one-way (msgs/s)", "CPU jobs/s"):
        assert row in out, out
    header = next(line for line in out.splitlines() if "thread" in line and "process" in line)
    assert "baseline" in header
    assert ("node" in header) == (shutil.which("node") is not None)
    targets = [line for line in out.splitlines() if line.startswith("- ")]
    assert len(targets) == 6, out
    if shutil.which("node") is None:
        assert all(t.endswith("n/a") for t in targets[:4])
