"""phaseloop ships its types (py.typed, and loop.pyi for the compiled module):
mypy --strict accepts a program that uses the public API and reports misuses.

Runs mypy on the installed package, as a user's type checker sees it."""
import subprocess
import sys

from support.paths import TESTS

TYPING = TESTS / "typing"


def mypy(path, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_a_program_using_the_public_api_type_checks(tmp_path):
    proc = mypy(TYPING / "public_api.py", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_misuses_are_reported(tmp_path):
    proc = mypy(TYPING / "misuse.py", tmp_path)
    assert proc.returncode == 1
    assert '"PhaseHook" has no attribute "no_such_method"' in proc.stdout
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' \
        in proc.stdout


def test_the_typed_program_runs():
    proc = subprocess.run([sys.executable, str(TYPING / "public_api.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "immediate" not in proc.stdout        # the immediate was cancelled
    assert proc.stdout.strip().splitlines()[-1].isdigit()
