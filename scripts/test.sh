#!/usr/bin/env bash
# The README's second command (and CI's): install, build and run the whole test suite twice, in
# the normal build (warnings are errors) and under AddressSanitizer + UndefinedBehaviorSanitizer.
# Set SW_TEST_PRESETS to run a subset, e.g. SW_TEST_PRESETS=ci.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

# ccache keyed independently of the checkout's path, so a fresh clone reuses earlier builds.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
JOBS="$(nproc)"

status=0
for preset in ${SW_TEST_PRESETS:-ci asan}; do
  echo "=== $preset: configure, build, test"
  start=$(date +%s)
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  if ! ctest --preset "$preset" -j "$JOBS"; then
    status=1
  fi
  echo "=== $preset: $(( $(date +%s) - start )) s"
done
exit $status
