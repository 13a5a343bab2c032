#!/usr/bin/env bash
# Build the C core's tests (csrc/tests) with ASan + UBSan for each backend
# this platform has, and run them with ctest. Exits non-zero on any failure.
#
#   .ci/sanitize.sh            # build dirs under build/sanitize-<backend>
#   BUILD_ROOT=/tmp/x .ci/sanitize.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_root="${BUILD_ROOT:-$root/build}"
jobs="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"

# auto is the platform's best backend (epoll on Linux, kqueue on the BSDs);
# poll is the portable fallback.
backends=(auto poll)

# Any report is fatal; leaks are reports too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
for backend in "${backends[@]}"; do
    dir="$build_root/sanitize-$backend"
    echo "=== sanitized build, backend=$backend ($dir)"
    rm -rf "$dir"
    # The environment variable would override -D (csrc/sources.cmake).
    if env -u PHASELOOP_BACKEND cmake -S "$root/csrc/tests" -B "$dir" \
            -DPHASELOOP_BACKEND="$backend" -DPL_SANITIZE=ON \
        && env -u PHASELOOP_BACKEND cmake --build "$dir" --parallel "$jobs" \
        && (cd "$dir" && ctest --output-on-failure --timeout 300); then
        echo "=== backend=$backend: ok"
    else
        echo "=== backend=$backend: FAILED"
        failed+=("$backend")
    fi
done

if ((${#failed[@]})); then
    echo "sanitized tests failed for: ${failed[*]}" >&2
    exit 1
fi
echo "sanitized tests passed for: ${backends[*]}"
