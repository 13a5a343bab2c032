#!/usr/bin/env python3
"""Run widely used asyncio libraries' own test suites on phaseloop and on asyncio.

Usage::

    python tests/compat/run_libraries.py anyio [aiohttp uvicorn] [--check]
        [--python PATH] [--workdir build/compat] [--list]

For each library this script

1. downloads the library's sdist (the version pinned in LIBRARIES) from PyPI
   and unpacks it under ``--workdir``;
2. makes a virtual environment there with the given Python, installs the
   library (the same version, from its wheel where PyPI has one) and what its
   test suite needs, and (each run) phaseloop as this repository has it;
3. runs the suite twice with pytest, from the sdist's own directory (so its
   own pytest configuration applies): once with phaseloop as the loop and
   once with asyncio's default loop, the reference;
4. compares the outcomes test by test.  A test that passes on asyncio and
   fails on phaseloop is run once more by itself on phaseloop (a suite's
   leaked sockets raise ResourceWarnings in whatever test runs when the
   garbage collector does); if it fails again it is a *regression*:
   phaseloop's bug, or a difference
   that ``libraries/<name>-expected.txt`` lists with its reason (and
   docs/compat.md explains).  With ``--check`` an unlisted regression makes
   the exit status 1, and a listed test that now passes is reported.

How phaseloop becomes the loop
------------------------------
``shim``: the suite already runs its asyncio tests a second time on uvloop
when ``import uvloop`` works (anyio's ``asyncio+uvloop`` backend, aiohttp's
``--aiohttp-loop=uvloop``).  A module named ``uvloop`` whose loop factory is
``phaseloop.new_event_loop`` (libraries/shim/uvloop.py) is put first on the
path, and the uvloop variant is selected; the reference run selects the
plain asyncio variant.  Test ids are compared with the variant's name
replaced by the reference's.

``policy``: ``phaseloop.Policy()`` is made the event loop policy when pytest
starts (libraries/phaseloop_policy.py), so every ``asyncio.run()``,
``asyncio.Runner`` and ``IsolatedAsyncioTestCase`` of the suite gets a
phaseloop loop; the reference run is the same suite without it.

The suites' own tests are run unchanged.  What the harness adds besides the
loop is listed per library (``extra_plugins``), with the reason.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUPPORT = HERE / "libraries"
FAILED = frozenset({"failed", "error"})


@dataclasses.dataclass(frozen=True)
class Library:
    name: str
    version: str                      # the expected lists are for this version
    test_requires: tuple[str, ...]
    mode: str                         # "shim" or "policy"
    paths: tuple[str, ...] = ("tests",)
    # pytest arguments for every run, then for the phaseloop and for the
    # reference run ("shim" mode selects the variants with them).
    pytest_args: tuple[str, ...] = ()
    phaseloop_args: tuple[str, ...] = ()
    asyncio_args: tuple[str, ...] = ()
    # The phaseloop variant's name in test ids, and the reference's.
    variant: tuple[str, str] = ("", "")
    # Modules put on the path and loaded with -p, with why.
    extra_plugins: tuple[str, ...] = ()
    timeout: int = 60                 # seconds per test


# blockbuster (the suites' blocking-call detector) allows a few blocking
# calls inside named functions of asyncio's own loop; phaseloop makes the
# same calls from compiled code (libraries/blockbuster_allow_loop_io.py).
BLOCKBUSTER_LOOP_IO = "blockbuster_allow_loop_io"

LIBRARIES: dict[str, Library] = {
    "anyio": Library(
        name="anyio",
        version="4.16.0",
        test_requires=("blockbuster>=1.5.29", "hypothesis>=4.18.2", "psutil>=5.9",
                       "pytest>=9.0", "pytest-mock>=3.14", "pytest-timeout>=2.4.0",
                       "trustme>=1.0.0", "truststore>=0.9.1"),
        mode="shim",
        phaseloop_args=("-k", "uvloop"),
        asyncio_args=("-k", "asyncio and not uvloop and not eager"),
        variant=("asyncio+uvloop", "asyncio"),
        extra_plugins=(BLOCKBUSTER_LOOP_IO,),
    ),
    "aiohttp": Library(
        name="aiohttp",
        version="3.14.5",
        test_requires=("blockbuster", "coverage", "freezegun", "gunicorn", "isal", "pkgconfig",
                       "proxy.py>=2.4.4rc5", "pytest", "pytest-mock", "pytest-timeout",
                       "re-assert", "trustme", "zlib_ng"),
        mode="shim",
        # aiohttp's pytest.ini adds xdist, coverage and doctests of the
        # installed package: replaced by the selection its CI makes.
        pytest_args=("-o", "addopts=", "-m", "not dev_mode and not autobahn and not internal",
                     "--ignore=tests/autobahn", "--ignore-glob=tests/test_benchmarks_*.py"),
        phaseloop_args=("--aiohttp-loop=uvloop",),
        asyncio_args=("--aiohttp-loop=pyloop",),
        variant=("uvloop", "pyloop"),
        extra_plugins=(BLOCKBUSTER_LOOP_IO,),
    ),
    "uvicorn": Library(
        name="uvicorn",
        version="0.55.0",
        test_requires=("uvicorn[standard]==0.55.0", "a2wsgi", "cryptography", "httpx2",
                       "pytest", "pytest-mock", "pytest-timeout", "trustme", "wsproto"),
        mode="policy",
        # uvicorn's addopts run 8 xdist workers; its benchmarks need codspeed.
        pytest_args=("-o", "addopts=-rxXs --strict-markers", "--ignore=tests/benchmarks"),
    ),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kwargs)


def prepare(lib: Library, python: str, workdir: Path) -> tuple[Path, Path]:
    """Unpack the sdist and build the venv; return (source dir, venv python)."""
    home = workdir / f"{lib.name}-{lib.version}-py{python_version(python)}"
    source = home / f"{lib.name}-{lib.version}"
    venv_python = home / "venv" / "bin" / "python"
    if not source.exists():
        home.mkdir(parents=True, exist_ok=True)
        run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", str(home), f"{lib.name}=={lib.version}"])
        sdist = next(p for p in home.iterdir() if p.name.endswith(".tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(home, filter="data")
        # Older sdists name the folder with an underscore.
        if not source.exists():
            source = next(p for p in home.iterdir() if p.is_dir() and p.name != "venv")
    pip = [str(venv_python), "-m", "pip", "install", "-q"]
    if not venv_python.exists():
        run([python, "-m", "venv", str(home / "venv")])
    run(pip + [f"{lib.name}=={lib.version}", *lib.test_requires])
    # phaseloop as this tree has it now (the build directory is reused).
    run(pip + ["--no-deps", "--force-reinstall", str(REPO)])
    return source, venv_python


def python_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def pytest_command(lib: Library, venv_python: Path, loop: str) -> tuple[list[str], dict[str, str]]:
    """The pytest command line (without what to run) and environment that run
    the suite on `loop` ("phaseloop" or "asyncio").  The venv's pytest
    script, not `python -m pytest`, so that the sdist's folder is not on the
    path: the tests import the library installed from its wheel."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    paths = [str(SUPPORT)]
    args = [str(venv_python.parent / "pytest"), "-q", "-p", "no:cacheprovider",
            f"--timeout={lib.timeout}", *lib.pytest_args]
    if loop == "phaseloop":
        if lib.mode == "shim":
            paths.insert(0, str(SUPPORT / "shim"))
        else:
            args += ["-p", "phaseloop_policy"]
    for plugin in lib.extra_plugins:
        args += ["-p", plugin]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return args, env


def run_suite(lib: Library, source: Path, venv_python: Path, loop: str,
              report: Path, node_ids: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Run the suite (or only node_ids) on `loop`: {test id: (outcome, node id)}."""
    args, env = pytest_command(lib, venv_python, loop)
    args.append(f"--junitxml={report}")
    args += lib.phaseloop_args if loop == "phaseloop" else lib.asyncio_args
    args += node_ids or list(lib.paths)
    started = time.monotonic()
    log(f"--- {lib.name} on {loop}" + (f" ({len(node_ids)} tests again, alone)" if node_ids else ""))
    report.unlink(missing_ok=True)
    output = report.with_suffix(".log")
    with open(output, "w") as out:
        proc = subprocess.run(args, cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT)
    lines = output.read_text(errors="replace").strip().splitlines()
    log(f"    {lines[-1] if lines else ''}  ({time.monotonic() - started:.0f} s, "
        f"exit {proc.returncode}; output in {output})")
    # pytest exits 0 or 1 after a run; anything else (a usage error, no
    # tests, a crash, pytest's own failure) means the comparison is void.
    if proc.returncode not in (0, 1) or not report.exists():
        raise SystemExit(f"{lib.name} on {loop}: pytest did not run the suite "
                         f"(exit {proc.returncode}); see {output}")
    return read_junit(report, source, lib.variant if loop == "phaseloop" else ("", ""))


def read_junit(path: Path, source: Path, variant: tuple[str, str]
               ) -> dict[str, tuple[str, str]]:
    """{test id, the phaseloop variant named as the reference: (outcome, node id)}."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{classname}::{name}"
        if variant[0]:
            test_id = test_id.replace(*variant)
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            outcome = "failed"
        elif "error" in kinds:
            outcome = "error"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test id seen twice (a setup error and a teardown error) keeps the worst.
        if outcomes.get(test_id, ("",))[0] not in FAILED:
            outcomes[test_id] = (outcome, node_id(source, classname, name))
    return outcomes


def node_id(source: Path, classname: str, name: str) -> str:
    """'tests.test_x.TestY' + 'test_z[a]' -> 'tests/test_x.py::TestY::test_z[a]'."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (source / path).exists():
            return "::".join([path, *parts[cut:], name])
    return f"{classname}::{name}"


def read_expected(lib: Library) -> dict[str, str]:
    """libraries/<name>-expected.txt: 'test id  # reason' per line."""
    path = SUPPORT / f"{lib.name}-expected.txt"
    expected: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            test_id, _, reason = line.partition("#")
            if test_id.strip():
                expected[test_id.strip()] = reason.strip()
    return expected


def compare(lib: Library, ours: dict[str, str], reference: dict[str, str],
            alone: dict[str, str], check: bool) -> bool:
    """Report the outcomes; False if --check finds an unlisted regression.
    `alone` holds the outcomes on phaseloop of the tests that failed there
    only, run again by themselves: a suite's leaked objects can make
    ResourceWarnings land in whatever test runs when the collector does."""
    common = sorted(set(ours) & set(reference))
    first = [t for t in common if ours[t] in FAILED and reference[t] == "passed"]
    regressions = [t for t in first if alone.get(t) in FAILED]
    flaky = [t for t in first if alone.get(t) not in FAILED]
    fixed = [t for t in common if ours[t] == "passed" and reference[t] in FAILED]
    both = [t for t in common if ours[t] in FAILED and reference[t] in FAILED]
    log(f"=== {lib.name} {lib.version}: {len(common)} tests compared")
    for loop, res in (("phaseloop", ours), ("asyncio", reference)):
        counts = ", ".join(f"{o} {sum(1 for v in res.values() if v == o)}"
                           for o in ("passed", "failed", "error", "skipped"))
        log(f"    {loop:9} {counts}")
    log(f"    fail on both loops (not phaseloop's doing): {len(both)}")
    log(f"    pass on phaseloop only: {len(fixed)}")
    log(f"    failed on phaseloop only in the whole run, passed alone: {len(flaky)}")
    for test_id in flaky:
        log(f"      {test_id}")
    expected = read_expected(lib)
    unlisted = [t for t in regressions if t not in expected]
    log(f"    fail on phaseloop only: {len(regressions)} ({len(regressions) - len(unlisted)} "
        f"listed in libraries/{lib.name}-expected.txt)")
    for test_id in regressions:
        log(f"      {'listed ' if test_id in expected else 'NEW    '} {test_id}")
    for test_id in sorted(set(expected) - set(regressions)):
        log(f"      listed but not failing now: {test_id}")
    return not (check and unlisted)


def outcome_of(results: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {test_id: outcome for test_id, (outcome, _) in results.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("libraries", nargs="*", help=f"any of: {', '.join(LIBRARIES)}")
    p.add_argument("--python", default=sys.executable, help="the Python to test with")
    p.add_argument("--workdir", default=str(REPO / "build" / "compat"))
    p.add_argument("--check", action="store_true",
                   help="exit 1 on a test that fails on phaseloop only and is not listed")
    p.add_argument("--list", action="store_true", help="print the libraries and exit")
    args = p.parse_args(argv)
    if args.list or not args.libraries:
        for lib in LIBRARIES.values():
            log(f"{lib.name} {lib.version} ({lib.mode})")
        return 0
    unknown = [name for name in args.libraries if name not in LIBRARIES]
    if unknown:
        p.error(f"unknown libraries: {', '.join(unknown)}")
    ok = True
    for name in args.libraries:
        lib = LIBRARIES[name]
        source, venv_python = prepare(lib, args.python, Path(args.workdir))
        reports = source.parent
        ours = run_suite(lib, source, venv_python, "phaseloop", reports / "phaseloop.xml")
        reference = run_suite(lib, source, venv_python, "asyncio", reports / "asyncio.xml")
        suspects = [ours[t][1] for t in ours
                    if ours[t][0] in FAILED and reference.get(t, ("",))[0] == "passed"]
        alone = {}
        if suspects:
            alone = run_suite(lib, source, venv_python, "phaseloop",
                              reports / "phaseloop-alone.xml", suspects)
        ok = compare(lib, outcome_of(ours), outcome_of(reference), outcome_of(alone),
                     args.check) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
