#!/usr/bin/env bash
# The README's second command (and CI's): install, build and run the whole test suite twice, in
# the normal build (warnings are errors) and under AddressSanitizer + UndefinedBehaviorSanitizer
# (the chaos suite's short form included), the concurrency tests under ThreadSanitizer, then a
# short run of every fuzzer. SW_TEST_PRESETS picks presets (e.g. SW_TEST_PRESETS=ci);
# SW_FUZZ_SECONDS=0 skips the fuzzers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

# Real llama-server and whisper-server for the tests that need them: Debian unstable's builds,
# downloaded once into a private cache and never installed (scripts/setup-engines.sh). It prints
# each program's version, or one `SKIPPED:` line saying why, and never fails the run; the tests
# that need a missing engine then print their own SKIPPED line. The variables it exports reach
# every preset below.
echo "=== engines"
start=$(date +%s)
mkdir -p "$ROOT/build"
"$ROOT/scripts/setup-engines.sh" --env-file "$ROOT/build/engines.env"
# shellcheck source=/dev/null
. "$ROOT/build/engines.env"
echo "=== engines: $(( $(date +%s) - start )) s"

# ccache keyed independently of the checkout's path, so a fresh clone reuses earlier builds.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
JOBS="$(nproc)"

status=0
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
for preset in ${SW_TEST_PRESETS:-ci asan tsan}; do
  echo "=== $preset: configure, build, test"
  start=$(date +%s)
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  # ThreadSanitizer's shadow memory needs a fixed layout: newer kernels' wider mmap randomisation
  # breaks it ("unexpected memory mapping"), so its tests run with ASLR off for this process where
  # the sandbox allows it (a container's seccomp profile may refuse the personality call).
  runner=()
  if [ "$preset" = tsan ] && setarch "$(uname -m)" -R true 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
  fi
  if ! "${runner[@]}" ctest --preset "$preset" -j "$JOBS"; then
    status=1
  fi
  echo "=== $preset: $(( $(date +%s) - start )) s"
done
FUZZ_SECONDS="${SW_FUZZ_SECONDS:-10}"
if [ "$FUZZ_SECONDS" != 0 ]; then
  echo "=== fuzz: ${FUZZ_SECONDS} s per target"
  start=$(date +%s)
  if ! "$ROOT/scripts/fuzz.sh" --seconds "$FUZZ_SECONDS"; then
    status=1
  fi
  echo "=== fuzz: $(( $(date +%s) - start )) s"
fi
exit $status
