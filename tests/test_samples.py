"""Run the asyncio programs in tests/samples/ unchanged, on asyncio and on phaseloop.

Each sample is a standalone program that imports only the standard library
and uses asyncio.run() (or asyncio.new_event_loop()).  It runs twice in a
child interpreter: once plainly, once after installing phaseloop's policy;
both runs must exit 0 and print the same thing.  The phaseloop run counts
the loops its policy made and checks their type, so a run that silently
fell back to asyncio's loop fails.
"""
import pathlib
import subprocess
import sys

import pytest


SAMPLES_DIR = pathlib.Path(__file__).parent / "samples"
SAMPLES = sorted(SAMPLES_DIR.glob("*.py"))
REPORT_PREFIX = "phaseloop-samples: loops made:"

# Runs the sample at sys.argv[1] as __main__ with phaseloop's policy in place.
# The report goes to stderr so that stdout is the sample's alone.
PHASELOOP_WRAPPER = f"""
import asyncio, runpy, sys
import phaseloop

made = []

class CountingPolicy(phaseloop.Policy):
    def new_event_loop(self):
        loop = super().new_event_loop()
        made.append(type(loop) is phaseloop.Loop)
        return loop

asyncio.set_event_loop_policy(CountingPolicy())
path = sys.argv[1]
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
sys.stdout.flush()
print({REPORT_PREFIX!r}, len(made), "all phaseloop.Loop:", all(made), file=sys.stderr)
"""


def run_python(args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=60, cwd=SAMPLES_DIR)


def test_there_are_samples():
    assert len(SAMPLES) >= 8


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_prints_the_same_on_both_loops(sample):
    plain = run_python([str(sample)])
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout, "the sample printed nothing"

    wrapped = run_python(["-c", PHASELOOP_WRAPPER, str(sample)])
    assert wrapped.returncode == 0, wrapped.stderr
    reports = [line for line in wrapped.stderr.splitlines() if line.startswith(REPORT_PREFIX)]
    assert len(reports) == 1, wrapped.stderr
    made, all_phaseloop = reports[0][len(REPORT_PREFIX):].split("all phaseloop.Loop:")
    assert int(made) >= 1, "the sample did not use a loop from phaseloop's policy"
    assert all_phaseloop.strip() == "True"

    assert wrapped.stdout == plain.stdout
