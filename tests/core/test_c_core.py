"""The C core's own unit tests (csrc/tests), built and run through ctest.

Each backend gets a fresh build directory: configure with CMake, build the
core as a static library with -Wall -Wextra -Werror plus the test programs,
then run ctest.  The sanitized variant is .ci/sanitize.sh.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO_ROOT as ROOT
CTESTS = ROOT / "csrc" / "tests"

pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None,
    reason="cmake and ctest are needed to build the C core's tests",
)


def _platform_backend() -> str:
    """The backend that PHASELOOP_BACKEND=auto picks here (see csrc/backend.h)."""
    if sys.platform.startswith("linux"):
        return "epoll"
    if sys.platform == "darwin" or "bsd" in sys.platform:
        return "kqueue"
    return "poll"


def _run(cmd: list[str], env: dict[str, str], timeout: float,
         cwd: Path | None = None) -> str:
    """Run cmd; fail the test with its whole output if it fails."""
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}"
    )
    return proc.stdout


@pytest.mark.parametrize("backend", ["auto", "poll"], ids=["default", "poll"])
def test_c_core_ctest(backend: str, tmp_path: Path) -> None:
    build = tmp_path / "build"
    env = dict(os.environ)
    # The environment variable would override -D (csrc/sources.cmake).
    env.pop("PHASELOOP_BACKEND", None)
    _run(["cmake", "-S", str(CTESTS), "-B", str(build),
          f"-DPHASELOOP_BACKEND={backend}"], env, timeout=120)
    _run(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 2)],
         env, timeout=300)
    out = _run(["ctest", "--output-on-failure", "--verbose", "--timeout", "120"],
               env, timeout=400, cwd=build)
    expected = _platform_backend() if backend == "auto" else backend
    assert f"backend={expected}" in out, out
    for name in ("test_queue", "test_heap", "test_phases", "test_run", "test_wakeup", "test_io"):
        assert f"{name}: ok" in out, out
