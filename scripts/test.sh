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
# setup-engines.sh sets these to the reason a program could not be provided (the skip allow-list
# reads them); never inherit them from the caller.
unset SW_LLAMA_SERVER_UNAVAILABLE SW_WHISPER_SERVER_UNAVAILABLE SW_TEST_MODELS_UNAVAILABLE
"$ROOT/scripts/setup-engines.sh" --env-file "$ROOT/build/engines.env"
# shellcheck source=/dev/null
. "$ROOT/build/engines.env"
echo "=== engines: $(( $(date +%s) - start )) s"

# The official OpenAI client (npm `openai`, run by Node) for the OpenAI front door's end-to-end
# test: installed into tests/openai/node_modules, or one SKIPPED line and
# SW_OPENAI_CLIENT_UNAVAILABLE (then that test's skip is allowed).
unset SW_OPENAI_CLIENT_UNAVAILABLE
"$ROOT/scripts/setup-openai-client.sh" --env-file "$ROOT/build/engines.env"
# shellcheck source=/dev/null
. "$ROOT/build/engines.env"

# A real browser (Debian's chromium, driven by the pinned npm playwright-core) for the dashboard's
# end-to-end test, or one SKIPPED line and SW_BROWSER_UNAVAILABLE (then that test's skip is
# allowed).
unset SW_BROWSER_UNAVAILABLE
"$ROOT/scripts/setup-browser.sh" --env-file "$ROOT/build/engines.env"
# shellcheck source=/dev/null
. "$ROOT/build/engines.env"

# ccache keyed independently of the checkout's path, so a fresh clone reuses earlier builds.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
JOBS="$(nproc)"

# The tiny real models are part of the suite: CI always has them (.ci/run points at them). Only a
# developer's run without them may skip the tests that need them (tests/skip-allowlist.txt).
if [ -z "${STUDIO_WORKER_TEST_MODELS:-}" ] || [ ! -d "$STUDIO_WORKER_TEST_MODELS" ]; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: STUDIO_WORKER_TEST_MODELS does not name the test models folder; CI needs it" >&2
    exit 1
  fi
  export SW_TEST_MODELS_UNAVAILABLE="STUDIO_WORKER_TEST_MODELS is not set"
fi

# PostgreSQL's server binaries (installed above): the PostgreSQL tests start a throwaway cluster
# with them. CI must have them (the tests fail there without them); elsewhere their skip is allowed.
unset SW_POSTGRES_UNAVAILABLE
if [ ! -x "${SW_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}/postgres" ]; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: PostgreSQL 15's server binaries are missing; CI needs them" >&2
    exit 1
  fi
  export SW_POSTGRES_UNAVAILABLE="no PostgreSQL 15 server binaries"
fi

# The packaging test (label `packaging`, ci preset) builds the Debian packages with cpack and
# checks them with dpkg-deb and systemd-analyze: CI must have those tools (installed above); a
# developer's machine without them may skip it.
unset SW_PACKAGING_TOOLS_UNAVAILABLE
missing_tools=""
for tool in dpkg-deb dpkg-shlibdeps readelf objcopy file systemd-analyze curl; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=" $tool"
done
if [ -n "$missing_tools" ]; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: the packaging test needs$missing_tools; CI needs them" >&2
    exit 1
  fi
  export SW_PACKAGING_TOOLS_UNAVAILABLE="missing:$missing_tools"
fi

status=0
reports=()
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
  # --no-tests=error: a step that selects no test fails (a label that matches nothing once made
  # the TSan step pass while running nothing). The JUnit file feeds the skip report below.
  rm -f "build/$preset/junit.xml"
  if ! "${runner[@]}" ctest --preset "$preset" -j "$JOBS" --no-tests=error \
      --output-junit junit.xml; then
    status=1
  fi
  # CI's disk is small: a preset's tree (up to 7 GB under the sanitizers) goes once its tests ran,
  # or the next preset's link runs out of space (it did: "No space left on device"). Its JUnit
  # report is kept for the skip report. A developer's run keeps its trees for incremental builds.
  if [ "${CI:-}" = true ]; then
    mkdir -p "build/reports/$preset"
    cp "build/$preset/junit.xml" "build/reports/$preset/junit.xml" 2>/dev/null || true
    rm -rf "build/$preset"
    reports+=("build/reports/$preset/junit.xml")
  else
    reports+=("build/$preset/junit.xml")
  fi
  echo "=== $preset: $(( $(date +%s) - start )) s; disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
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
echo "=== skipped tests and why"
if ! python3 "$ROOT/scripts/ctest_report.py" "$ROOT/tests/skip-allowlist.txt" "${reports[@]}"; then
  status=1
fi
exit $status
