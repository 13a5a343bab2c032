#!/usr/bin/env bash
# The sdist builds offline from its own files, C core included: in a venv that
# already has the build requirements, `pip install --no-index --no-build-isolation`
# of the sdist (pip unpacks it in a temporary directory and builds there, away from
# this tree), with no pip configuration (no index, no find-links) and, where
# `unshare --net` is allowed, in a network namespace with no network at all; then
# the wheel smoke test (.ci/wheel_smoke.py) on what it installed.
#
#   .ci/sdist_offline.sh PYTHON SDIST
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:?usage: .ci/sdist_offline.sh PYTHON SDIST}
sdist=$(realpath "${2:?usage: .ci/sdist_offline.sh PYTHON SDIST}")
venv=$(pwd)/build/ci/package/venv-sdist

rm -rf "$venv"
"$python" -m venv "$venv"
# The build requirements, while the index is reachable: pyproject's [build-system]
# requires, then what the backend asks for on this machine (scikit-build-core adds
# cmake and ninja when the system has none recent enough).
mapfile -t requires < <("$venv/bin/python" -c '
import tomllib
for requirement in tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]:
    print(requirement)')
"$venv/bin/pip" install -q "${requires[@]}"
mapfile -t dynamic < <("$venv/bin/python" -c '
import scikit_build_core.build as backend
for requirement in backend.get_requires_for_build_wheel():
    print(requirement)')
if [ ${#dynamic[@]} -gt 0 ]; then
    "$venv/bin/pip" install -q "${dynamic[@]}"
fi

offline=()
if unshare --net true 2>/dev/null; then
    offline=(unshare --net)
    echo "sdist offline: building in a network namespace without network"
else
    echo "sdist offline: unshare --net not allowed here; offline by --no-index and no pip config"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
    PIP_CONFIG_FILE=/dev/null "${offline[@]}" "$venv/bin/pip" install --no-index \
    --no-build-isolation --no-cache-dir "$sdist")
smoke=$(pwd)/.ci/wheel_smoke.py
# CI runs this on Linux, after .ci/package.sh: a default build's backend is epoll there.
(cd "$work" && "$venv/bin/python" "$smoke" --backend epoll)
