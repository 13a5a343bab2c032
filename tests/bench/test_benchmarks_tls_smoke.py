"""Smoke test of benchmarks/tls.py: a quick run must report every point, and
the memory per idle TLS connection.

No assertion is about speed. The echo clients compare every byte that comes
back, so a TLS path that corrupts or loses data fails the run.
"""
import re
import shutil
import subprocess
import sys

import pytest

from support.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command")


def test_quick_tls_run_reports_every_point():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.tls", "--quick", "--loops", "phaseloop,asyncio",
         "--cpu", "none"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for point in ("echo 1 KiB", "echo 64 KiB", "handshake"):
        for loop_name in ("phaseloop", "asyncio"):
            row = re.compile(rf"^\s*{point}\s+{loop_name}\s+\S+k?\s+[0-9.]+\s")
            assert any(row.match(line) for line in done.stdout.splitlines()), \
                f"no row for {point} on {loop_name}:\n{done.stdout}"
    memory = done.stdout.partition("memory per idle TLS connection")[2]
    for loop_name in ("phaseloop", "asyncio"):
        row = re.compile(rf"^\s*{loop_name}\s+[0-9.]+\s")
        assert any(row.match(line) for line in memory.splitlines()), \
            f"no idle memory row for {loop_name}:\n{done.stdout}"
