"""Smoke test of benchmarks/realservers.py (uvicorn+Starlette and aiohttp under wrk).

``python -m benchmarks.realservers --quick --loops phaseloop`` must start both
servers on phaseloop, get numbers from wrk for each and exit 0.  No assertion is
about speed.  Skipped where wrk or the frameworks are not installed.
"""
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from support.paths import REPO_ROOT
PACKAGES = ("uvicorn", "starlette", "aiohttp")

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)"),
    pytest.mark.skipif(any(importlib.util.find_spec(p) is None for p in PACKAGES),
                       reason="needs uvicorn, starlette and aiohttp "
                              "(pip install -e .[integration])"),
]


def scheduling_args() -> list[str]:
    """Pin and batch as the benchmark does by default, where the tools for it exist."""
    args = [] if shutil.which("taskset") else ["--cpu", "none"]
    return args + ([] if shutil.which("chrt") else ["--client-policy", "normal"])


def test_quick_run_on_phaseloop(tmp_path):
    json_path = tmp_path / "realservers.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.realservers", "--quick", "--loops", "phaseloop",
         "--json", str(json_path), *scheduling_args()],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=45, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("uvicorn+starlette", "aiohttp"):
        rows = [line for line in done.stdout.splitlines() if line.split()[:2] == [label,
                                                                                   "phaseloop"]]
        assert len(rows) == 1 and "error" not in rows[0], done.stdout
    results = json.loads(json_path.read_text())["results"]
    assert {(r["app"], r["loop"]) for r in results} == {("starlette", "phaseloop"),
                                                        ("aiohttp", "phaseloop")}
    for result in results:
        assert result["status"] == "ok", result
        assert len(result["samples"]) == 1
        assert result["median"]["rps"] > 0 and result["median"]["server_us"] > 0, result
        assert result["median"]["p99_us"] >= result["median"]["p50_us"] > 0, result
