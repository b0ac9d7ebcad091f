#!/usr/bin/env bash
# The README's first command: install, build, and run the worker once for every task kind with the
# synthetic engine, writing the results into a folder (default ./samples-out).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/samples-out}"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
cmake --preset release >/dev/null
cmake --build build/release --target studio-worker -j "$(nproc)"
"$ROOT/build/release/apps/studio-worker/studio-worker" samples --out "$OUT"
