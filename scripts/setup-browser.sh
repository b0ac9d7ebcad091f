#!/usr/bin/env bash
# A real browser for the dashboard's end-to-end test (tests/e2e/dashboard_test.cpp): Debian's
# `chromium` (installed with apt-get when missing) driven by the `playwright-core` npm package
# pinned by tests/dashboard/package-lock.json, installed into tests/dashboard/node_modules (npm's
# cache under build/, so reruns ask no server). playwright-core is only the driver: it downloads
# no browser of its own.
# Prints both versions, or one `SKIPPED: <why>` line and writes SW_BROWSER_UNAVAILABLE=<why> to
# the env file given with --env-file; never fails the run.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE=""
if [ "${1:-}" = "--env-file" ]; then ENV_FILE="$2"; fi

unavailable() {
  echo "SKIPPED: browser: $1"
  if [ -n "$ENV_FILE" ]; then
    printf 'export SW_BROWSER_UNAVAILABLE=%q\n' "$1" >>"$ENV_FILE"
  fi
  exit 0
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  echo "setup-browser: installing Debian's $*"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends "$@"; } >/dev/null 2>&1
}

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium || unavailable "Debian's chromium could not be installed"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm || unavailable "Node.js and npm could not be installed"
fi
cd "$ROOT/tests/dashboard" || unavailable "tests/dashboard is missing"
pinned="$(node -p 'require("./package.json").dependencies["playwright-core"]' 2>/dev/null)"
installed="$(node -p 'require("./node_modules/playwright-core/package.json").version' 2>/dev/null)"
if [ "$pinned" != "$installed" ]; then
  if ! npm ci --no-audit --no-fund --loglevel=error --cache "$ROOT/build/npm-cache" >/dev/null 2>&1; then
    unavailable "npm ci of the pinned playwright-core failed (no npm registry?)"
  fi
fi
echo "browser: $(chromium --version 2>/dev/null | head -1 | cut -d' ' -f1-2), node $(node --version)," \
  "playwright-core $(node -p 'require("./node_modules/playwright-core/package.json").version')"
