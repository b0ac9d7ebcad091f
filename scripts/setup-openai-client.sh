#!/usr/bin/env bash
# The official OpenAI client for tests/e2e/openai_api_test.cpp: Node (Debian's nodejs and npm when
# the machine has no node) and the `openai` npm package pinned by tests/openai/package-lock.json,
# installed into tests/openai/node_modules (npm's cache under build/, so reruns ask no server).
# Prints the client's version, or one `SKIPPED: <why>` line and writes
# SW_OPENAI_CLIENT_UNAVAILABLE=<why> to the env file given with --env-file; never fails the run.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE=""
if [ "${1:-}" = "--env-file" ]; then ENV_FILE="$2"; fi

unavailable() {
  echo "SKIPPED: openai client: $1"
  if [ -n "$ENV_FILE" ]; then
    printf 'export SW_OPENAI_CLIENT_UNAVAILABLE=%q\n' "$1" >>"$ENV_FILE"
  fi
  exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup-openai-client: installing Debian's nodejs and npm"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends nodejs npm; } >/dev/null 2>&1; then
    unavailable "Node.js and npm could not be installed"
  fi
fi
cd "$ROOT/tests/openai" || unavailable "tests/openai is missing"
pinned="$(node -p 'require("./package.json").dependencies.openai' 2>/dev/null)"
installed="$(node -p 'require("./node_modules/openai/package.json").version' 2>/dev/null)"
if [ "$pinned" != "$installed" ]; then
  if ! npm ci --no-audit --no-fund --loglevel=error --cache "$ROOT/build/npm-cache" >/dev/null 2>&1; then
    unavailable "npm ci of the pinned openai package failed (no npm registry?)"
  fi
fi
echo "openai client: node $(node --version), openai $(node -p 'require("./node_modules/openai/package.json").version')"
