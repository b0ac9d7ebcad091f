#!/usr/bin/env bash
# The Debian packages as an operator gets them (ctest label `packaging`, the ci preset): builds
# them with cpack from the binaries already built, then checks with dpkg-deb what apt would
# install (names, version, Depends by Debian package name, files, conffiles, maintainer scripts,
# stripped binaries with their debug symbols in the -dbgsym packages), unpacks them into a scratch
# root and runs the programs from there (--version; `serve` until /healthz answers), verifies
# every unit with systemd-analyze, and runs the maintainer scripts against a scratch root
# (DPKG_ROOT) with the account and systemd tools replaced by recorders, twice, to show they are
# idempotent and need no running systemd. Prints one `SKIPPED: <why>` line and exits 0 when a
# tool is missing (scripts/test.sh allows that only off CI).
#
#   check_packages.sh --build-dir DIR --cpack CPACK --version DEBIAN_VERSION
#                     --system-unit-dir DIR --user-unit-dir DIR
set -uo pipefail

BUILD="" CPACK="" VERSION="" SYSTEM_UNIT_DIR="" USER_UNIT_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --cpack) CPACK="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --system-unit-dir) SYSTEM_UNIT_DIR="$2"; shift 2 ;;
    --user-unit-dir) USER_UNIT_DIR="$2"; shift 2 ;;
    *) echo "check_packages.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BUILD" ] || [ -z "$CPACK" ] || [ -z "$VERSION" ] || [ -z "$SYSTEM_UNIT_DIR" ] ||
   [ -z "$USER_UNIT_DIR" ]; then
  echo "usage: check_packages.sh --build-dir DIR --cpack CPACK --version V --system-unit-dir D --user-unit-dir D" >&2
  exit 2
fi
# Relative unit directories are under the packages' prefix.
case "$SYSTEM_UNIT_DIR" in /*) ;; *) SYSTEM_UNIT_DIR="/usr/$SYSTEM_UNIT_DIR" ;; esac
case "$USER_UNIT_DIR" in /*) ;; *) USER_UNIT_DIR="/usr/$USER_UNIT_DIR" ;; esac
UPSTREAM_VERSION="${VERSION%-*}"

for tool in dpkg-deb dpkg-shlibdeps dpkg-query readelf objcopy file systemd-analyze curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: $tool is missing (scripts/install-deps.sh installs dpkg-dev, binutils, file, systemd and curl)"
    exit 0
  fi
done

status=0
fail() {
  echo "FAILED: $*"
  status=1
}
# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  if [ "$2" != "$3" ]; then fail "$1: got '$2', expected '$3'"; fi
}

WORK="$BUILD/test-artifacts/packaging"
rm -rf "$WORK"
mkdir -p "$WORK"
ARCH="$(dpkg --print-architecture)"

# ---- cpack, from the build tree as it is: it builds nothing (the man pages are part of `all`).
for built in apps/studio-server/studio-server apps/studio-worker/studio-worker \
             man/studio-server.1.gz man/studio-worker.1.gz CPackConfig.cmake; do
  if [ ! -f "$BUILD/$built" ]; then
    echo "FAILED: $BUILD/$built is missing: build the ci preset first"
    exit 1
  fi
done
start=$(date +%s%N)
if ! "$CPACK" --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1; then
  cat "$WORK/cpack.log"
  echo "FAILED: cpack"
  exit 1
fi
echo "cpack: $(( ($(date +%s%N) - start) / 1000000 )) ms"
# Its staging trees (the unstripped binaries, ~850 MB) are not needed any more: CI's disk is small.
rm -rf "$WORK/out/_CPack_Packages"
ls -l "$WORK/out"/*.deb "$WORK/out"/*.ddeb

# ---- each package's control fields, files and maintainer scripts
# The names apt could satisfy here: installed packages and what they provide.
KNOWN_PACKAGES="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' |
  awk '$1 == "ii" { $1 = ""; print }' | sed -e 's/([^)]*)//g' -e 's/,/ /g' | tr -s ' \n' '  ')"
ROOT="$WORK/root"
DBG="$WORK/dbgsym"
mkdir -p "$ROOT" "$DBG"
for package in studio-server studio-worker; do
  deb="$WORK/out/${package}_${VERSION}_${ARCH}.deb"
  ddeb="$WORK/out/${package}-dbgsym_${VERSION}_${ARCH}.ddeb"
  if [ ! -f "$deb" ] || [ ! -f "$ddeb" ]; then
    fail "$package: expected $(basename "$deb") and $(basename "$ddeb")"
    continue
  fi
  field() { dpkg-deb --field "$1" "$2"; }
  expect_eq "$package Package" "$(field "$deb" Package)" "$package"
  expect_eq "$package Version" "$(field "$deb" Version)" "$VERSION"
  expect_eq "$package Architecture" "$(field "$deb" Architecture)" "$ARCH"
  expect_eq "$package Section" "$(field "$deb" Section)" "net"
  expect_eq "$package Priority" "$(field "$deb" Priority)" "optional"
  [ -n "$(field "$deb" Maintainer)" ] || fail "$package: no Maintainer"
  synopsis="$(field "$deb" Description | head -1)"
  case "$synopsis" in
    "" | *"built using CMake"*) fail "$package: Description synopsis '$synopsis'" ;;
  esac
  [ "$(field "$deb" Description | wc -l)" -gt 2 ] || fail "$package: no long Description"

  # Depends: Debian package names (what apt resolves), each one a package installed here or a
  # name one of them provides (libspdlog1.10 provides libspdlog1.10-fmt9).
  depends="$(field "$deb" Depends)"
  echo "$package Depends: $depends"
  IFS=',' read -ra entries <<<"$depends"
  names=()
  for entry in "${entries[@]}"; do
    entry="${entry# }"
    if ! [[ $entry =~ ^[a-z0-9][a-z0-9+.-]+(\ \((\>=|\<=|=|\<\<|\>\>)\ [^\)]+\))?$ ]]; then
      fail "$package: Depends entry '$entry' is not a Debian package relation"
      continue
    fi
    name="${entry%% *}"
    names+=("$name")
    if [[ " $KNOWN_PACKAGES " != *" $name "* ]]; then
      fail "$package: Depends names '$name', which no package installed here is or provides"
    fi
  done
  required=(libc6 libstdc++6 libsystemd0 adduser libcurl4)
  if [ "$package" = studio-server ]; then
    required+=(libsqlite3-0 libpq5 libssl3 libmimalloc2.0)
  else
    required+=(libpng16-16 libwebp7 libsndfile1)
  fi
  for name in "${required[@]}"; do
    [[ " ${names[*]} " == *" $name "* ]] || fail "$package: Depends lacks $name"
  done

  # The files: exactly these (dpkg-deb lists ./path, directories end in /).
  if [ "$package" = studio-server ]; then
    expected=(./usr/bin/studio-server ./usr/share/man/man1/studio-server.1.gz
              ./etc/default/studio-server ".${SYSTEM_UNIT_DIR}/studio-server.service")
  else
    expected=(./usr/bin/studio-worker ./usr/share/man/man1/studio-worker.1.gz
              ./usr/share/doc/studio-worker/examples/config.toml
              ".${SYSTEM_UNIT_DIR}/studio-worker.service" ".${USER_UNIT_DIR}/studio-worker.service")
  fi
  actual="$(dpkg-deb --contents "$deb" | awk '$1 !~ /^d/ {print $6}' | sort)"
  expect_eq "$package files" "$actual" "$(printf '%s\n' "${expected[@]}" | sort)"
  mode="$(dpkg-deb --contents "$deb" | awk -v f="./usr/bin/$package" '$6 == f {print $1 " " $2}')"
  expect_eq "$package binary mode" "$mode" "-rwxr-xr-x root/root"

  control="$WORK/control-$package"
  dpkg-deb --control "$deb" "$control"
  for script in postinst prerm postrm; do
    if [ ! -x "$control/$script" ]; then
      fail "$package: no executable $script"
    elif ! sh -n "$control/$script"; then
      fail "$package: $script does not parse"
    fi
  done
  if [ "$package" = studio-server ]; then
    expect_eq "$package conffiles" "$(cat "$control/conffiles" 2>/dev/null)" "/etc/default/studio-server"
    # It may hold a database password: readable by root only (systemd reads it as root).
    expect_eq "/etc/default/studio-server mode" \
      "$(dpkg-deb --contents "$deb" | awk '$6 == "./etc/default/studio-server" {print $1}')" \
      "-rw-------"
  fi

  # Stripped in the .deb; the debug symbols in the .ddeb, under the binary's build id.
  dpkg-deb -x "$deb" "$ROOT"
  dpkg-deb -x "$ddeb" "$DBG"
  binary="$ROOT/usr/bin/$package"
  # (Whole outputs into variables, not `| grep -q`: under pipefail an early grep exit fails
  # the pipeline.)
  sections="$(readelf -S --wide "$binary" 2>&1)"
  [[ $sections != *.debug_info* ]] || fail "$package: /usr/bin/$package still has .debug_info"
  kind="$(file -b "$binary")"
  [[ $kind == *", stripped"* ]] || fail "$package: file(1) does not call it stripped: $kind"
  build_id="$(readelf -n "$binary" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')"
  if [ -z "$build_id" ]; then
    fail "$package: no build id"
  else
    debug_file="$DBG/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
    if [ ! -f "$debug_file" ]; then
      fail "$package: the dbgsym package lacks $debug_file"
    elif [[ $(readelf -S --wide "$debug_file" 2>/dev/null) != *.debug_info* ]]; then
      fail "$package: $debug_file has no .debug_info"
    fi
    rm -rf "$DBG/usr"  # ~300 MB each
  fi
  expect_eq "$package-dbgsym Package" "$(field "$ddeb" Package)" "$package-dbgsym"
  expect_eq "$package-dbgsym Depends" "$(field "$ddeb" Depends)" "$package (= $VERSION)"
done

# ---- the programs, run from the unpacked packages
expect_eq "studio-server --version" "$("$ROOT/usr/bin/studio-server" --version 2>&1)" \
  "studio-server $UPSTREAM_VERSION"
expect_eq "studio-worker --version" "$("$ROOT/usr/bin/studio-worker" --version 2>&1)" \
  "studio-worker $UPSTREAM_VERSION"
# The man pages: help2man's, with every subcommand's help in COMMANDS.
for package in studio-server studio-worker; do
  page="$(zcat "$ROOT/usr/share/man/man1/$package.1.gz")"
  [[ $page == *$'\n.SH COMMANDS\n'* ]] || fail "man $package: no COMMANDS section"
  [[ $page == *"$package $UPSTREAM_VERSION"* ]] || fail "man $package: no version"
  # The hand-written sections (packaging/man/*.h2m): exit codes a supervisor acts on, files.
  for section in "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO"; do
    [[ $page == *$'\n.SH "'"$section"$'"\n'* || $page == *$'\n.SH '"$section"$'\n'* ]] ||
      fail "man $package: no $section section"
  done
done
[[ $(zcat "$ROOT/usr/share/man/man1/studio-server.1.gz") == *'.SS "studio-server workers approve"'* ]] ||
  fail "man studio-server: the nested subcommand workers approve is missing"
[[ $(zcat "$ROOT/usr/share/man/man1/studio-worker.1.gz") == *'.SS "studio-worker models fetch"'* ]] ||
  fail "man studio-worker: the nested subcommand models fetch is missing"
[[ $(zcat "$ROOT/usr/share/man/man1/studio-worker.1.gz") == *$'.B 13\n'* ]] ||
  fail "man studio-worker: EXIT STATUS does not list exit code 13"

# The example config is one the worker accepts.
mkdir -p "$WORK/example" "$WORK/home"
cp "$ROOT/usr/share/doc/studio-worker/examples/config.toml" "$WORK/example/config.toml"
if ! out="$(HOME="$WORK/home" "$ROOT/usr/bin/studio-worker" --config "$WORK/example/config.toml" config 2>&1)"; then
  fail "the example config.toml is refused: $out"
fi

# `serve` until its health endpoint answers, then SIGTERM: exit 0. The banner comes through a
# FIFO, read line by line with a bound (no sleeps).
mkfifo "$WORK/banner"
STUDIO_WORKER_LOG=warn "$ROOT/usr/bin/studio-server" serve --listen 127.0.0.1:0 \
  --data-dir "$WORK/data" >"$WORK/banner" 2>"$WORK/serve.err" &
server=$!
exec 3<"$WORK/banner"
url=""
banner=""
while IFS= read -r -t 60 line <&3; do
  banner+="$line"$'\n'
  if [[ -z $url && $line =~ listening\ on\ (http://127\.0\.0\.1:[0-9]+) ]]; then
    url="${BASH_REMATCH[1]}"
  fi
  [[ $line == *"then approve it"* ]] && break
done
if [ -z "$url" ]; then
  fail "serve printed no address: $banner $(cat "$WORK/serve.err")"
else
  health="$(curl -fsS --max-time 10 "$url/healthz")" || fail "GET $url/healthz failed"
  echo "serve: $url/healthz answered: $health"
  [[ $banner == *"admin token: adm-"* ]] || fail "serve printed no admin token at its first start"
fi
kill -TERM "$server"
wait "$server"
expect_eq "serve's exit code after SIGTERM" "$?" "0"
exec 3<&-

# ---- systemd-analyze verify, with the ExecStart binaries where the units name them
verify_out="$WORK/verify.out"
# Documentation=man:… is checked against the packaged man pages (MANPATH) where man-db is here.
man_check=--man=yes
if ! command -v man >/dev/null 2>&1; then
  man_check=--man=no
  echo "systemd-analyze verify: no man(1) here: the units' Documentation= is not checked"
fi
# The system units in the unpacked root: systemd 252 resolves ExecStart, the default
# dependencies (sysinit.target, ...) and Documentation=man: there. The targets come from this
# machine's systemd; nothing of the packages is overwritten.
mkdir -p "$ROOT/usr/lib/systemd/system"
cp -an /usr/lib/systemd/system/. "$ROOT/usr/lib/systemd/system/"
for unit in studio-server.service studio-worker.service; do
  if ! MANPATH="$ROOT/usr/share/man" systemd-analyze verify "$man_check" --root="$ROOT" \
      "$SYSTEM_UNIT_DIR/$unit" >"$verify_out" 2>&1 || [ -s "$verify_out" ]; then
    fail "systemd-analyze verify $SYSTEM_UNIT_DIR/$unit: $(cat "$verify_out")"
  else
    echo "systemd-analyze verify $SYSTEM_UNIT_DIR/$unit: clean"
  fi
done
# The user unit: systemd 252 refuses --root for user units, so a copy is verified whose ExecStart
# names the unpacked binary (after checking the original path is that binary's).
user_unit="$ROOT$USER_UNIT_DIR/studio-worker.service"
exec_path="$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$user_unit")"
[ -x "$ROOT$exec_path" ] || fail "the user unit's ExecStart $exec_path is not in the package"
mkdir -p "$WORK/user-units" "$WORK/xdg"
chmod 0700 "$WORK/xdg"
sed "s|^ExecStart=$exec_path|ExecStart=$ROOT$exec_path|" "$user_unit" \
  >"$WORK/user-units/studio-worker.service"
if ! XDG_RUNTIME_DIR="$WORK/xdg" MANPATH="$ROOT/usr/share/man" systemd-analyze --user verify "$man_check" \
    "$WORK/user-units/studio-worker.service" >"$verify_out" 2>&1 || [ -s "$verify_out" ]; then
  fail "systemd-analyze --user verify studio-worker.service: $(cat "$verify_out")"
else
  echo "systemd-analyze --user verify $USER_UNIT_DIR/studio-worker.service: clean"
fi

# ---- the maintainer scripts, against a scratch root (DPKG_ROOT, which dpkg sets for --root
# installs), with adduser, addgroup, getent, chown and the systemd tools replaced by recorders
# that keep their accounts in scratch files: nothing of this machine is touched.
SHIMS="$WORK/shims"
ACCOUNTS="$WORK/accounts"
CALLS="$WORK/calls"
mkdir -p "$SHIMS" "$ACCOUNTS"
: >"$ACCOUNTS/passwd"
printf 'video:x:44:\n' >"$ACCOUNTS/group"
: >"$CALLS"
cat >"$SHIMS/getent" <<EOF
#!/bin/sh
grep -q "^\$2:" "$ACCOUNTS/\$1" && grep "^\$2:" "$ACCOUNTS/\$1"
EOF
cat >"$SHIMS/addgroup" <<EOF
#!/bin/sh
echo "addgroup \$*" >>"$CALLS"
for last; do :; done
echo "\$last:x:999:" >>"$ACCOUNTS/group"
EOF
cat >"$SHIMS/adduser" <<EOF
#!/bin/sh
echo "adduser \$*" >>"$CALLS"
case " \$* " in
  *" --system "*) for last; do :; done; echo "\$last:x:999:999::/:/usr/sbin/nologin" >>"$ACCOUNTS/passwd" ;;
esac
EOF
for recorder in chown systemctl deb-systemd-helper deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$recorder" "$CALLS" >"$SHIMS/$recorder"
done
chmod +x "$SHIMS"/*
scratch_root="$WORK/dpkg-root"
mkdir -p "$scratch_root/var/lib"
run_script() {  # PACKAGE SCRIPT ARGS...
  local package="$1" script="$2"
  shift 2
  if ! PATH="$SHIMS:$PATH" DPKG_ROOT="$scratch_root" sh -e "$WORK/control-$package/$script" "$@" \
      >>"$WORK/scripts.log" 2>&1; then
    fail "$package $script $*: exit non-zero ($(tail -3 "$WORK/scripts.log"))"
  fi
}
for shimmed in adduser addgroup getent chown systemctl; do
  [ "$(PATH="$SHIMS:$PATH" command -v "$shimmed")" = "$SHIMS/$shimmed" ] || {
    echo "FAILED: the $shimmed recorder does not come first on PATH; not running the scripts"
    exit 1
  }
done
for package in studio-server studio-worker; do
  : >"$CALLS"
  run_script "$package" postinst configure ""
  grep -q "^adduser --system .* --home /var/lib/$package .* $package\$" "$CALLS" || fail "$package postinst made no system user"
  grep -q "^$package:" "$ACCOUNTS/group" || fail "$package postinst made no group"
  state="$scratch_root/var/lib/$package"
  want_mode=750
  [ "$package" = studio-worker ] && want_mode=700
  expect_eq "$package state directory mode" "$(stat -c %a "$state" 2>/dev/null)" "$want_mode"
  grep -q "^chown $package:$package $state\$" "$CALLS" || fail "$package: state directory not given to $package"
  grep -q "^deb-systemd-helper update-state $package.service" "$CALLS" ||
    fail "$package postinst did not record the unit with deb-systemd-helper"
  if [ "$package" = studio-worker ]; then
    grep -q '^render:' "$ACCOUNTS/group" || fail "studio-worker postinst made no render group"
    grep -q '^adduser --quiet studio-worker video$' "$CALLS" || fail "studio-worker not put in video"
  fi
  # Again, as an upgrade: nothing made twice, no failure.
  : >"$CALLS"
  run_script "$package" postinst configure "$VERSION"
  if grep -q -e '^addgroup' -e '^adduser --system' "$CALLS"; then
    fail "$package postinst is not idempotent: $(cat "$CALLS")"
  fi
  touch "$state/kept"
  run_script "$package" prerm remove
  run_script "$package" postrm remove
  [ -f "$state/kept" ] || fail "$package postrm remove deleted the state directory"
  run_script "$package" postrm purge
  [ ! -e "$state" ] || fail "$package postrm purge left $state"
  grep -q "^deb-systemd-helper purge $package.service" "$CALLS" || fail "$package purge did not purge the unit state"
  run_script "$package" postrm purge
  # DPKG_ROOT is another root: the running systemd (if any) is not its to tell.
  if grep -q -e '^systemctl' -e '^deb-systemd-invoke' "$CALLS"; then
    fail "$package scripts called systemctl for another root: $(grep -e systemctl -e invoke "$CALLS")"
  fi
done

# ---- the same scripts with the real adduser, addgroup, getent and deb-systemd-helper, in a
# private mount namespace whose /etc, /var/lib and system unit directory are scratch copies
# (where the sandbox allows one: root with CAP_SYS_ADMIN; a container may refuse it).
if unshare -m true 2>/dev/null; then
  NS="$WORK/namespace"
  mkdir -p "$NS/etc" "$NS/varlib" "$NS/units"
  cp -a /etc/. "$NS/etc/"
  touch "$NS/etc/.sw-packaging-scratch"
  cp -a /usr/lib/systemd/system/. "$NS/units/"
  cp "$ROOT$SYSTEM_UNIT_DIR"/studio-*.service "$NS/units/"
  cat >"$WORK/real-tools.sh" <<'EOF_REAL'
#!/bin/bash
# Runs inside `unshare -m`: never touches this machine's /etc or /var/lib.
set -u
ns="$1" work="$2"
mount --bind "$ns/etc" /etc && mount --bind "$ns/varlib" /var/lib &&
  mount --bind "$ns/units" /usr/lib/systemd/system || exit 99
[ -f /etc/.sw-packaging-scratch ] || exit 99
status=0
fail() { echo "FAILED (real tools): $*"; status=1; }
# As dpkg runs maintainer scripts (deb-systemd-helper refuses to run otherwise).
script() {  # PACKAGE SCRIPT ARGS...
  local package="$1" name="$2"
  shift 2
  DPKG_MAINTSCRIPT_PACKAGE="$package" DPKG_MAINTSCRIPT_NAME="$name" \
    sh -e "$work/control-$package/$name" "$@" >>"$work/real-tools.log" 2>&1
}
for package in studio-server studio-worker; do
  script "$package" postinst configure "" || fail "$package postinst configure"
  getent passwd "$package" >/dev/null || fail "$package: no system user"
  getent group "$package" >/dev/null || fail "$package: no group"
  owner="$(stat -c '%U:%G %a' "/var/lib/$package" 2>&1)"
  mode=750; [ "$package" = studio-worker ] && mode=700
  [ "$owner" = "$package:$package $mode" ] || fail "$package: /var/lib/$package is $owner"
  if [ "$package" = studio-worker ]; then
    groups="$(id -nG studio-worker)"
    [[ " $groups " == *" video "* && " $groups " == *" render "* ]] || fail "studio-worker groups: $groups"
  fi
  # Again (an upgrade), then an operator's `systemctl enable`, then remove and purge twice.
  script "$package" postinst configure 0.0.9-1 || fail "$package postinst again"
  [ "$(getent passwd "$package" | wc -l)" = 1 ] || fail "$package: user made twice"
  systemctl enable "$package.service" >>"$work/real-tools.log" 2>&1 || fail "systemctl enable $package"
  link="/etc/systemd/system/multi-user.target.wants/$package.service"
  [ -L "$link" ] || fail "$package: enable made no $link"
  script "$package" prerm remove || fail "$package prerm remove"
  script "$package" postrm remove || fail "$package postrm remove"
  [ -d "/var/lib/$package" ] || fail "$package: remove deleted /var/lib/$package"
  script "$package" postrm purge || fail "$package postrm purge"
  script "$package" postrm purge || fail "$package postrm purge again"
  [ ! -e "/var/lib/$package" ] || fail "$package: purge left /var/lib/$package"
  [ ! -L "$link" ] || fail "$package: purge left $link"
done
exit $status
EOF_REAL
  unshare -m bash "$WORK/real-tools.sh" "$NS" "$WORK"
  case $? in
    0) echo "maintainer scripts with the real tools (private mount namespace): clean" ;;
    99) echo "maintainer scripts with the real tools: the scratch mounts failed; not run" ;;
    *) fail "maintainer scripts with the real tools: $(tail -5 "$WORK/real-tools.log")" ;;
  esac
else
  echo "maintainer scripts with the real tools: no private mount namespace here; recorders only"
fi

if [ "$status" -eq 0 ]; then
  # Only the packages stay, for a look (build/ci/test-artifacts/packaging/out).
  find "$WORK" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
  echo "packaging: all checks passed"
fi
exit "$status"
