#!/usr/bin/env bash
# The README's first command: a whole farm on this machine. Installs packages, builds, starts a
# local studio-server and a studio-worker against it on loopback, approves the worker, submits one
# job of every kind through the client API, waits, fetches every result and prints where it is and
# which engine made it.
#
# Every real engine the machine has does real work: espeak-ng (linked into the worker) speaks the
# TTS job; llama-server makes the llm job a real generation and whisper-server transcribes the STT
# job, each on a tiny real model from the folder STUDIO_WORKER_TEST_MODELS names, that the worker
# downloads from a loopback file
# server, as it would from a model host. The servers are found like the worker finds them
# (STUDIO_WORKER_LLAMA_SERVER / STUDIO_WORKER_WHISPER_SERVER, PATH) or in the cache that
# scripts/setup-engines.sh fills; `--real-engines` runs that script first, which downloads
# Debian unstable's builds once (about 80 MB, two or three minutes). A kind without its engine (or
# without a model for it) runs on the synthetic engine, and the output says so.
#
# Usage: scripts/demo.sh [--real-engines] [DIR]     (everything under DIR, default ./farm-out)
# SW_DEMO_PRESET=ci reuses the ci build instead of building the release preset.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROVISION=0
OUT_ARG=""
for arg in "$@"; do
  case "$arg" in
    --real-engines) PROVISION=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "demo: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) OUT_ARG="$arg" ;;
  esac
done
OUT="$(mkdir -p "${OUT_ARG:-$ROOT/farm-out}" && cd "${OUT_ARG:-$ROOT/farm-out}" && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
PRESET="${SW_DEMO_PRESET:-release}"
cmake --preset "$PRESET" >/dev/null
cmake --build "build/$PRESET" --target studio-worker studio-server -j "$(nproc)"
SERVER="$ROOT/build/$PRESET/apps/studio-server/studio-server"
WORKER="$ROOT/build/$PRESET/apps/studio-worker/studio-worker"

rm -rf "$OUT/studio" "$OUT/worker" "$OUT/results" "$OUT/files"
mkdir -p "$OUT/studio" "$OUT/worker" "$OUT/results" "$OUT/files"
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

echo "== real engines on this machine"
# The tiny real models come only from STUDIO_WORKER_TEST_MODELS (as for the tests); without it
# the llm and stt jobs run on the synthetic engine and their lines say so.
MODELS="${STUDIO_WORKER_TEST_MODELS:-}"
setup_args=(--env-file "$OUT/engines.env")
[ "$PROVISION" = 1 ] || setup_args+=(--offline)
"$ROOT/scripts/setup-engines.sh" "${setup_args[@]}" | grep -v '^export ' | sed 's/^/   /' || true
# shellcheck source=/dev/null
. "$OUT/engines.env"
have_engine() { grep -q "^export $1=" "$OUT/engines.env"; }
echo "   espeak-ng: linked into studio-worker"

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

# The tiny real models (and the STT job's recording) are served from a loopback file server:
# a model's URL must be https, or plain http on loopback.
FILES=""
if [ -n "$MODELS" ] && { have_engine STUDIO_WORKER_LLAMA_SERVER || have_engine STUDIO_WORKER_WHISPER_SERVER; }; then
  if python3 -c 'import http.server' 2>/dev/null; then
    for file in stories260K.gguf whisper/for-tests-ggml-tiny.bin audio/jfk.wav; do
      [ -f "$MODELS/$file" ] && ln -sf "$MODELS/$file" "$OUT/files/$(basename "$file")"
    done
    python3 -u -m http.server --bind 127.0.0.1 --directory "$OUT/files" 0 > "$OUT/files.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 grep -q "Serving HTTP on" "$OUT/files.log"
    FILES="http://127.0.0.1:$(sed -n 's/.*Serving HTTP on [^ ]* port \([0-9]*\).*/\1/p' "$OUT/files.log")"
    echo "== serving the tiny real models from $FILES (files in $OUT/files)"
  else
    echo "== python3's http.server is missing: the real models cannot be served, llm and audio_stt run synthetic"
  fi
fi
# model_file <role> <file in $OUT/files>: a ModelSource file entry for the loopback server.
model_file() {
  local path="$OUT/files/$2"
  printf '{"role":"%s","filename":"%s","url":"%s/%s","approxBytes":%s,"sha256":"%s"}' "$1" "$2" \
    "$FILES" "$2" "$(stat -L -c %s "$path")" "$(sha256sum "$path" | cut -d' ' -f1)"
}

echo "== starting studio-worker (config in $OUT/worker)"
CONFIG="$OUT/worker/config.toml"
STUDIO_WORKER_LOG=warn "$WORKER" --config "$CONFIG" register --api-base-url "$STUDIO" >/dev/null
# Model files go under the demo's folder, not the user's ~/models.
sed -i '/^models_root = /d' "$CONFIG"
echo "models_root = '$OUT/worker/models'" >> "$CONFIG"
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

# One model per kind: the real engine's where the machine has it, else the synthetic engine's.
# The worker routes a job strictly to the engine its model's source names (never a fallback), so
# the engine printed below is the one that made the result.
NO_DEFAULTS='"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}'
declare -A MODEL ENGINE NOTE SOURCE
for kind in image llm audio_tts audio_stt video; do
  MODEL[$kind]="synthetic-$kind"; ENGINE[$kind]=synthetic; NOTE[$kind]=""
  SOURCE[$kind]="{\"engine\":\"synthetic\",\"files\":[],$NO_DEFAULTS}"
done
NOTE[image]="(sd-cpp needs a diffusion model of several GB; none in the demo)"
NOTE[video]="(no real video engine yet)"
MODEL[audio_tts]="espeak-ng:en"; ENGINE[audio_tts]=espeak-ng
SOURCE[audio_tts]="{\"engine\":\"espeak-ng\",\"files\":[],$NO_DEFAULTS}"
if ! have_engine STUDIO_WORKER_LLAMA_SERVER; then
  NOTE[llm]="(no llama-server: scripts/demo.sh --real-engines provisions one)"
elif [ -z "$FILES" ] || [ ! -e "$OUT/files/stories260K.gguf" ]; then
  NOTE[llm]="(llama-server found, but no tiny GGUF: set STUDIO_WORKER_TEST_MODELS)"
else
  MODEL[llm]="stories260K"; ENGINE[llm]=llama-cpp
  SOURCE[llm]="{\"engine\":\"llama-cpp\",\"files\":[$(model_file model stories260K.gguf)],
    \"cliDefaults\":{\"cfgScale\":0,\"steps\":0,\"width\":0,\"height\":0,\"contextSize\":512}}"
fi
STT_INPUT="https://example.com/lighthouse.wav"  # the synthetic engine never fetches it
if ! have_engine STUDIO_WORKER_WHISPER_SERVER; then
  NOTE[audio_stt]="(no whisper-server: scripts/demo.sh --real-engines provisions one)"
elif [ -z "$FILES" ] || [ ! -e "$OUT/files/for-tests-ggml-tiny.bin" ] || [ ! -e "$OUT/files/jfk.wav" ]; then
  NOTE[audio_stt]="(whisper-server found, but no whisper model: set STUDIO_WORKER_TEST_MODELS)"
else
  MODEL[audio_stt]="whisper-tiny-test"; ENGINE[audio_stt]=whisper-cpp
  NOTE[audio_stt]="(whisper.cpp's test model has no weights: the transcript is empty)"
  SOURCE[audio_stt]="{\"engine\":\"whisper-cpp\",\"files\":[$(model_file model for-tests-ggml-tiny.bin)],$NO_DEFAULTS}"
  STT_INPUT="$FILES/jfk.wav"
fi
declare -A TASKS=(
  [image]='{"kind":"image","prompt":"a lighthouse on a cliff at dawn","width":512,"height":512}'
  [llm]='{"kind":"llm","messages":[{"role":"user","content":"Once upon a time, a lighthouse keeper"}],"maxTokens":48,"temperature":0}'
  [audio_tts]='{"kind":"audio_tts","text":"A lighthouse on a cliff at dawn."}'
  [audio_stt]="{\"kind\":\"audio_stt\",\"inputUrl\":\"$STT_INPUT\",\"language\":\"en\"}"
  [video]='{"kind":"video","prompt":"waves around a lighthouse","seconds":2,"width":256,"height":256}'
)

echo "== registering one model per kind and submitting one job of each"
declare -A JOBS
for kind in image llm audio_tts audio_stt video; do
  api -X POST "$STUDIO/api/v1/models" -d "{\"id\":\"${MODEL[$kind]}\",\"kind\":\"$kind\",
    \"vramGbEstimate\":0,\"source\":${SOURCE[$kind]}}" >/dev/null
  JOBS[$kind]="$(api -X POST "$STUDIO/api/v1/jobs" -d "{\"model\":\"${MODEL[$kind]}\",\"task\":${TASKS[$kind]}}" | json_get id)"
done

echo "== waiting for the results (kind, job, engine that made it → file)"
status_of() { api "$STUDIO/api/v1/jobs/$1" | json_get status; }
failures=0
for kind in image llm audio_tts audio_stt video; do
  job="${JOBS[$kind]}"
  done_or_failed() { s="$(status_of "$job")"; [ "$s" = "done" ] || [ "$s" = failed ]; }
  wait_for 120 done_or_failed
  if [ "$(status_of "$job")" != "done" ]; then
    echo "   $kind: $job (${ENGINE[$kind]}) FAILED: $(api "$STUDIO/api/v1/jobs/$job")"
    failures=$((failures + 1)); continue
  fi
  type="$(curl -sS -o /dev/null -w '%{content_type}' -H "Authorization: Bearer $ADMIN" "$STUDIO/api/v1/jobs/$job/result")"
  case "$type" in
    image/webp) ext=webp ;; image/png) ext=png ;; image/gif) ext=gif ;; audio/wav) ext=wav ;;
    video/mp4) ext=mp4 ;; application/json*) ext=json ;; *) ext=bin ;;
  esac
  file="$OUT/results/$kind.$ext"
  api "$STUDIO/api/v1/jobs/$job/result" -o "$file"
  printf '   %-9s %s  %-11s →  %s (%s, %s bytes) %s\n' "$kind" "$job" "${ENGINE[$kind]}" "$file" \
    "$type" "$(stat -c %s "$file")" "${NOTE[$kind]}"
  if [ "${ENGINE[$kind]}" = llama-cpp ] && command -v python3 >/dev/null; then
    python3 -c 'import json, sys
text = json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
print("             text:", " ".join(text.split())[:100] + "…")' "$file" || true
  fi
done
echo "== done. Studio log: $OUT/studio/server.log, worker log: $OUT/worker/worker.log"
if [ "$failures" -gt 0 ]; then
  echo "demo: $failures job(s) did not finish" >&2
  exit 1
fi
