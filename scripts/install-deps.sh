#!/usr/bin/env bash
# Installs what the project needs to build and test, from Debian 12 packages only. Idempotent:
# when everything is present it changes nothing and asks no package server.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache git ca-certificates curl
  libssl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libexpected-dev
  libpng-dev libwebp-dev libgif-dev libcurl4-openssl-dev libsqlite3-dev
  libboost1.81-dev libboost-url1.81-dev libboost-filesystem1.81-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsndfile1-dev libsoxr-dev libespeak-ng-dev espeak-ng-data
  clang-14 libclang-rt-14-dev
  # libpq for the studio's PostgreSQL backend; the server (initdb, postgres) for the tests, which
  # start a throwaway cluster in a temporary directory (tests/support/postgres_server.cpp)
  libpq-dev postgresql
  # mimalloc: studio-server's malloc (cmake/Dependencies.cmake says why)
  libmimalloc-dev
  # libsystemd for sd_notify (Type=notify units: readiness, watchdog); help2man for the man
  # pages (built from --help); systemd for systemd.pc (unit directories) and systemd-analyze
  # (the packaging test verifies the units); dpkg-dev for dpkg-shlibdeps (the packages' Depends);
  # file, which CPack's DEB generator runs to find the ELF files it strips and scans
  libsystemd-dev help2man systemd dpkg-dev file
  # python3: demo.sh serves the tiny real models over loopback (`python3 -m http.server`) and
  # test.sh checks the test reports against tests/skip-allowlist.txt (scripts/ctest_report.py)
  python3
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
