"""Smoke test of benchmarks/asgi.py (FastAPI on phaseloop serve, gunicorn with
uvicorn's worker, uvicorn --workers, under wrk).

``python -m benchmarks.asgi --quick`` must start each server, get numbers from
wrk for both endpoints (the POST with its JSON body included) with no error
and exit 0. No assertion is about speed. Skipped where wrk is not installed,
as the other benchmark smoke tests are.
"""
import json
import shutil
import subprocess
import sys

import pytest

from support.paths import REPO_ROOT

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)"),
]


def test_quick_run(tmp_path):
    json_path = tmp_path / "asgi.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.asgi", "--quick", "--json",
                           str(json_path)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=100, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(json_path.read_text())["rows"]
    assert {(r["endpoint"], r["server"]) for r in rows} == {
        (e, s) for e in ("hello", "echo") for s in ("phaseloop", "gunicorn", "uvicorn")}
    for row in rows:
        assert row["rps"] > 0 and row["errors"] == 0, row
        assert (row["ratio_to_best"] is not None) == (row["server"] == "phaseloop"), row
    assert "phaseloop ÷ best other" in done.stdout
