#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each one.
#   scripts/fuzz.sh                 short run: 20 s per target (what CI runs)
#   scripts/fuzz.sh --runs 10000000 the documented long run: N executions per target
#   scripts/fuzz.sh --seconds 600   or a time budget per target
# Seeds come from fuzz/corpus/<target>/ (and the tiny test models for the GGUF reader when
# STUDIO_WORKER_TEST_MODELS is set); new inputs go to build/fuzz/corpus/<target>/, never into the
# repository. A crash leaves its input in build/fuzz/findings/ and fails the run: turn it into a
# regression test, then fix it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIMIT=(-max_total_time=20)
case "${1:-}" in
  --runs) LIMIT=(-runs="$2") ;;
  --seconds) LIMIT=(-max_total_time="$2") ;;
  "") ;;
  *) echo "usage: $0 [--runs N | --seconds S]" >&2; exit 2 ;;
esac

export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)"

mkdir -p build/fuzz/findings
# Every target the build defines (fuzz/CMakeLists.txt writes the list at configure time).
mapfile -t targets < build/fuzz/fuzz/targets.txt
if [ ${#targets[@]} -eq 0 ]; then
  echo "=== fuzz: the build defines no fuzz target" >&2
  exit 1
fi
status=0
for target in "${targets[@]}"; do
  if [ ! -d "fuzz/corpus/$target" ]; then
    echo "=== $target: no seed corpus in fuzz/corpus/$target" >&2
    status=1
    continue
  fi
  work="build/fuzz/corpus/$target"
  mkdir -p "$work"
  seeds=("fuzz/corpus/$target")
  if [ "$target" = fuzz_gguf ] && [ -n "${STUDIO_WORKER_TEST_MODELS:-}" ]; then
    seeds+=("$STUDIO_WORKER_TEST_MODELS")
  fi
  echo "=== $target ${LIMIT[*]}"
  log="build/fuzz/$target.log"
  rc=0
  "build/fuzz/fuzz/$target" "${LIMIT[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="build/fuzz/findings/$target-" -print_final_stats=1 \
    "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log"
    echo "=== $target: FAILED (exit $rc; input in build/fuzz/findings/)"
    status=1
  fi
done
exit $status
