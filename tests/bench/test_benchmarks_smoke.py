"""Smoke test of the micro-benchmark harness (benchmarks/micro.py).

Runs ``python -m benchmarks.micro --quick`` on phaseloop and asyncio and checks that
every benchmark produced a result on both loops.  No assertion is about speed: the
workloads check their own outcome (every callback ran, every timer fired...), so a
loop that drops work makes its cell an error and the harness exit non-zero.
"""
import json
import subprocess
import sys

from support.paths import REPO_ROOT

#: The benchmarks the harness must offer, one per line of its table.
EXPECTED_BENCHMARKS = (
    "call_soon_batch",
    "call_soon_chain",
    "timers_fire",
    "timers_cancel",
    "sleep0_switch",
    "future_result",
    "call_soon_threadsafe",
    "create_task",
    "add_reader_pingpong",
)


def run_module(*args: str) -> subprocess.CompletedProcess:
    """``python -m benchmarks.micro ARGS`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "benchmarks.micro", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_quick_run_reports_every_benchmark_on_both_loops(tmp_path):
    json_path = tmp_path / "micro.json"
    done = run_module("--quick", "--loops", "phaseloop,asyncio", "--json", str(json_path))
    assert done.returncode == 0, done.stdout + done.stderr

    lines = done.stdout.splitlines()
    for name in EXPECTED_BENCHMARKS:
        rows = [line for line in lines if line.split()[:1] == [name]]
        assert len(rows) == 1, f"no single table row for {name}:\n{done.stdout}"
        assert "missing" not in rows[0] and "error" not in rows[0], rows[0]

    results = json.loads(json_path.read_text())["results"]
    assert sorted(results) == sorted(EXPECTED_BENCHMARKS)
    for name, result in results.items():
        for loop_name in ("phaseloop", "asyncio"):
            cell = result["loops"][loop_name]
            assert cell["status"] == "ok", (name, loop_name, cell)
            assert len(cell["samples_per_s"]) == 1 and cell["median_per_s"] > 0
        assert result["ratios"]["phaseloop/asyncio"] > 0


def test_unimportable_loop_is_reported_missing_not_crashed():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.micro", "--child", "no_such_loop_module",
         "call_soon_batch", "--n", "10"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "no_such_loop_module" in report["missing"]
