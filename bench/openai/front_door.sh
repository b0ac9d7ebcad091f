#!/usr/bin/env bash
# The OpenAI front door's figures (issue 20): a studio and one worker on loopback, a synthetic llm
# model (no engine time) for the route's added latency over the native API, and the tiny real
# llama model through studio + worker beside the same file served by a llama-server of its own,
# for time to first token. Needs Node, built binaries and, for the second part,
# STUDIO_WORKER_LLAMA_SERVER and STUDIO_WORKER_TEST_MODELS.
#   bench/openai/front_door.sh [BIN_DIR]   (default: build/ci/apps/*)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVER="${1:+$1/studio-server}"; SERVER="${SERVER:-$ROOT/build/ci/apps/studio-server/studio-server}"
WORKER="${1:+$1/studio-worker}"; WORKER="${WORKER:-$ROOT/build/ci/apps/studio-worker/studio-worker}"
DIR="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
export STUDIO_SERVER_ADMIN_TOKEN="bench-admin-$$"
"$SERVER" serve --listen 127.0.0.1:0 --data-dir "$DIR/studio" >"$DIR/server.log" 2>&1 &
pids+=($!)
until grep -qo 'http://127.0.0.1:[0-9]*' "$DIR/server.log"; do sleep 0.1; done
URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/server.log" | head -1)"
admin=(-sf -H "Authorization: Bearer $STUDIO_SERVER_ADMIN_TOKEN" -H 'content-type: application/json')
KEY="$(curl "${admin[@]}" -d '{"name":"bench"}' "$URL/api/v1/keys" | node -p 'JSON.parse(require("fs").readFileSync(0)).key')"
# A key with a quota it never reaches: what metering and the quota check add to a job's creation.
QUOTA_KEY="$(curl "${admin[@]}" -d '{"name":"bench quota","quota":{"period":"month","jobs":1000000000,"tokens":1000000000000}}' "$URL/api/v1/keys" | node -p 'JSON.parse(require("fs").readFileSync(0)).key')"
curl "${admin[@]}" -o /dev/null -d '{"id":"synth-llm","kind":"llm","source":{"engine":"synthetic"}}' "$URL/api/v1/models"
LLAMA_MODEL=""
LLAMA_DIRECT_URL=""
GGUF="${STUDIO_WORKER_TEST_MODELS:-}/stories260K.gguf"
if [ -n "${STUDIO_WORKER_LLAMA_SERVER:-}" ] && [ -f "$GGUF" ]; then
  mkdir -p "$DIR/files" && cp "$GGUF" "$DIR/files/"
  (cd "$DIR/files" && exec python3 -m http.server 0 --bind 127.0.0.1 >"$DIR/files.log" 2>&1) &
  pids+=($!)
  until grep -qo 'port [0-9]*' "$DIR/files.log"; do sleep 0.1; done
  FILES_PORT="$(grep -o 'port [0-9]*' "$DIR/files.log" | head -1 | cut -d' ' -f2)"
  SHA="$(sha256sum "$GGUF" | cut -d' ' -f1)"
  curl "${admin[@]}" -o /dev/null -d "{\"id\":\"stories\",\"kind\":\"llm\",\"source\":{\"engine\":\"llama-cpp\",\"files\":[{\"role\":\"model\",\"url\":\"http://127.0.0.1:$FILES_PORT/stories260K.gguf\",\"filename\":\"stories260K.gguf\",\"sha256\":\"$SHA\"}],\"cliDefaults\":{\"contextSize\":256}}}" "$URL/api/v1/models"
  "$STUDIO_WORKER_LLAMA_SERVER" -m "$GGUF" -c 256 --host 127.0.0.1 --port 0 >"$DIR/llama.log" 2>&1 &
  pids+=($!)
  LLAMA_MODEL=stories
fi
mkdir -p "$DIR/worker"
"$WORKER" --config "$DIR/worker/config.toml" register --api-base-url "$URL" >/dev/null 2>&1
sed -i "s|^models_root = .*|models_root = '$DIR/worker/models'|" "$DIR/worker/config.toml"
"$WORKER" --config "$DIR/worker/config.toml" run --local-api-port 0 --registration-poll-ms 100 >"$DIR/worker.log" 2>&1 &
pids+=($!)
until REQ="$(curl "${admin[@]}" "$URL/api/v1/workers/pending" | node -p 'JSON.parse(require("fs").readFileSync(0)).pending[0]?.requestId ?? ""')" && [ -n "$REQ" ]; do sleep 0.1; done
curl "${admin[@]}" -o /dev/null -d '{}' "$URL/api/v1/workers/pending/$REQ/approve"
if [ -n "$LLAMA_MODEL" ]; then
  until grep -qo 'listening on http://127.0.0.1:[0-9]*' "$DIR/llama.log"; do sleep 0.1; done
  LLAMA_DIRECT_URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/llama.log" | head -1)"
fi
STUDIO_URL="$URL" STUDIO_KEY="$KEY" STUDIO_QUOTA_KEY="$QUOTA_KEY" STUDIO_ADMIN="$STUDIO_SERVER_ADMIN_TOKEN" SYNTH_MODEL=synth-llm LLAMA_MODEL="$LLAMA_MODEL" \
  LLAMA_DIRECT_URL="$LLAMA_DIRECT_URL" node "$ROOT/bench/openai/front_door.mjs"
