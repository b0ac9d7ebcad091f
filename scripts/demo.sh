#!/usr/bin/env bash
# The README's first command: a whole farm on this machine. Installs packages, builds, starts a
# local studio-server and a studio-worker against it on loopback, approves the worker, submits one
# job of every kind through the client API, waits, fetches every result and prints where it is.
# Everything lives under one folder (default ./farm-out); both processes stop when it ends.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/farm-out}" && cd "${1:-$ROOT/farm-out}" && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
cmake --preset release >/dev/null
cmake --build build/release --target studio-worker studio-server -j "$(nproc)"
SERVER="$ROOT/build/release/apps/studio-server/studio-server"
WORKER="$ROOT/build/release/apps/studio-worker/studio-worker"

rm -rf "$OUT/studio" "$OUT/worker" "$OUT/results"
mkdir -p "$OUT/studio" "$OUT/worker" "$OUT/results"
ADMIN="adm-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# wait_for <seconds> <command…>: retries the command until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "demo: timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done
}

echo "== starting studio-server (data in $OUT/studio)"
STUDIO_SERVER_ADMIN_TOKEN="$ADMIN" "$SERVER" serve --listen 127.0.0.1:0 --data-dir "$OUT/studio" \
  > "$OUT/studio/server.log" 2>&1 &
PIDS+=($!)
wait_for 20 grep -q "listening on http://" "$OUT/studio/server.log"
STUDIO="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$OUT/studio/server.log" | sed 's/listening on //')"
echo "   $STUDIO"
api() { curl -sS --fail-with-body -H "Authorization: Bearer $ADMIN" "$@"; }
# json_get <key>: the first string or number value of "key" in the JSON on stdin.
json_get() { grep -o "\"$1\":\"\\?[^\",}]*" | head -1 | sed "s/\"$1\":\"\\?//"; }

echo "== starting studio-worker (config in $OUT/worker)"
CONFIG="$OUT/worker/config.toml"
STUDIO_WORKER_LOG=warn "$WORKER" --config "$CONFIG" register --api-base-url "$STUDIO" >/dev/null
"$WORKER" --config "$CONFIG" run --local-api-port 0 --registration-poll-ms 500 \
  > "$OUT/worker/worker.log" 2>&1 &
PIDS+=($!)

echo "== approving the worker"
pending() { api "$STUDIO/api/v1/workers/pending" | grep -q requestId; }
wait_for 20 pending
REQUEST="$(api "$STUDIO/api/v1/workers/pending" | json_get requestId)"
api -X POST "$STUDIO/api/v1/workers/pending/$REQUEST/approve" -d '{}' >/dev/null
connected() { grep -q "server welcomed" "$OUT/worker/worker.log"; }
wait_for 20 connected
echo "   worker connected: $(grep -o 'server welcomed [^ ]*' "$OUT/worker/worker.log" | head -1 | cut -d' ' -f3)"

echo "== registering one synthetic model per kind and submitting one job of each"
declare -A JOBS
declare -A TASKS=(
  [image]='{"kind":"image","prompt":"a lighthouse on a cliff at dawn","width":512,"height":512}'
  [llm]='{"kind":"llm","messages":[{"role":"user","content":"Write a haiku about lighthouses."}]}'
  [audio_tts]='{"kind":"audio_tts","text":"A lighthouse on a cliff at dawn."}'
  [audio_stt]='{"kind":"audio_stt","inputUrl":"https://example.com/lighthouse.wav"}'
  [video]='{"kind":"video","prompt":"waves around a lighthouse","seconds":2,"width":256,"height":256}'
)
for kind in image llm audio_tts audio_stt video; do
  api -X POST "$STUDIO/api/v1/models" -d "{\"id\":\"synthetic-$kind\",\"kind\":\"$kind\",\"vramGbEstimate\":0,
    \"source\":{\"engine\":\"synthetic\",\"files\":[],\"cliDefaults\":{\"cfgScale\":0,\"steps\":0,\"width\":0,\"height\":0}}}" >/dev/null
  JOBS[$kind]="$(api -X POST "$STUDIO/api/v1/jobs" -d "{\"model\":\"synthetic-$kind\",\"task\":${TASKS[$kind]}}" | json_get id)"
done

echo "== waiting for the results"
status_of() { api "$STUDIO/api/v1/jobs/$1" | json_get status; }
for kind in image llm audio_tts audio_stt video; do
  job="${JOBS[$kind]}"
  done_or_failed() { s="$(status_of "$job")"; [ "$s" = done ] || [ "$s" = failed ]; }
  wait_for 60 done_or_failed
  if [ "$(status_of "$job")" != done ]; then
    echo "   $kind: $job FAILED: $(api "$STUDIO/api/v1/jobs/$job")"; continue
  fi
  type="$(curl -sS -o /dev/null -w '%{content_type}' -H "Authorization: Bearer $ADMIN" "$STUDIO/api/v1/jobs/$job/result")"
  case "$type" in
    image/webp) ext=webp ;; image/png) ext=png ;; image/gif) ext=gif ;; audio/wav) ext=wav ;;
    video/mp4) ext=mp4 ;; application/json*) ext=json ;; *) ext=bin ;;
  esac
  file="$OUT/results/$kind.$ext"
  api "$STUDIO/api/v1/jobs/$job/result" -o "$file"
  printf '   %-9s %s  →  %s (%s, %s bytes)\n' "$kind" "$job" "$file" "$type" "$(stat -c %s "$file")"
done
echo "== done. Studio log: $OUT/studio/server.log, worker log: $OUT/worker/worker.log"
