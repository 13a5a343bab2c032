"""Check what an sdist holds, run by .ci/package.sh after ``python -m build``.

The sdist must build the C core and the Cython loop from its own files, so it must hold
every tracked file under csrc/ and src/ (the C sources and headers, sources.cmake, the
.pyx/.pxi/.pxd files, the Python package), CMakeLists.txt and pyproject.toml; and it
must hold no build output: no build/ or dist/ directory, no compiled objects, no
Cython-generated C file, no bytecode.  Exits 1 and lists what is wrong.

    python .ci/check_sdist.py dist/phaseloop-0.1.0.tar.gz
"""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tracked files under these must all be in the sdist, plus the top-level build files.
SOURCE_DIRS = ("csrc", "src")
TOP_FILES = ("CMakeLists.txt", "pyproject.toml", "README.md")
JUNK_DIRS = {"build", "dist", "_skbuild", "__pycache__", ".pytest_cache", ".git",
             ".hypothesis"}
JUNK_SUFFIXES = {".so", ".o", ".a", ".pyc", ".whl", ".dylib"}


def tracked_sources() -> set[str]:
    """The files git tracks under SOURCE_DIRS, and TOP_FILES."""
    listed = subprocess.run(["git", "ls-files", "--", *SOURCE_DIRS], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return set(listed) | set(TOP_FILES)


def junk(path: PurePosixPath) -> str | None:
    """Why ``path`` (relative to the sdist's top directory) is a build output, or None."""
    if JUNK_DIRS & set(path.parts[:-1]) or path.name in JUNK_DIRS:
        return "a build or cache directory"
    if path.suffix in JUNK_SUFFIXES:
        return "a compiled file"
    if path.suffix == ".c" and path.parts[:2] == ("src", "phaseloop"):
        return "Cython's generated C (the build makes it)"
    if any(part.endswith(".egg-info") for part in path.parts):
        return "setuptools metadata"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tarfile.open(argv[1]) as sdist:
        names = [PurePosixPath(m.name) for m in sdist.getmembers() if m.isfile()]
    tops = {n.parts[0] for n in names}
    if len(tops) != 1:
        print(f"{argv[1]}: expected one top directory, found {sorted(tops)}")
        return 1
    files = {PurePosixPath(*n.parts[1:]) for n in names}
    problems = [f"missing: {p}" for p in sorted(tracked_sources() - {str(f) for f in files})]
    problems += [f"{f}: {why}" for f in sorted(files) if (why := junk(f))]
    if "PKG-INFO" not in {str(f) for f in files}:
        problems.append("missing: PKG-INFO")
    for problem in problems:
        print(f"{argv[1]}: {problem}")
    if problems:
        return 1
    pyx = sorted(str(f) for f in files if f.suffix in {".pyx", ".pxi", ".pxd"})
    c_files = sorted(str(f) for f in files if f.parts[0] == "csrc")
    print(f"sdist ok: {len(files)} files, {len(c_files)} under csrc/, "
          f"{len(pyx)} .pyx/.pxi/.pxd, no build output")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
