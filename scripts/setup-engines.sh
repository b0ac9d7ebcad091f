#!/usr/bin/env bash
# Provisions real `llama-server` and `whisper-server` programs for the tests and the demo, on a
# Debian 12 machine that has neither, without installing anything on the system.
#
# Debian's archive (unstable) ships them in `llama.cpp-tools` and `whisper.cpp-tools`, built
# against a newer glibc and libstdc++ than bookworm's. This script:
#   1. points a private APT configuration (its own sources list naming unstable, its own state
#      and cache folders, an empty dpkg status; the system's keyring verifies the archive) at the
#      archive; nothing system-wide changes and nothing is installed;
#   2. `apt-get download`s the tools package and, round by round, the dependencies of each package
#      whose ELF files still need a library the private folder lacks (so only the libraries the
#      server program really loads come down, not e.g. debconf or wget), and unpacks them (what
#      `dpkg-deb -x` does) into one private folder per engine;
#   3. writes a wrapper (`<cache>/bin/llama-server`, `<cache>/bin/whisper-server`) that starts the
#      program through the folder's own dynamic loader with the folder's libraries, and links ggml's
#      CPU backends beside that loader (ggml looks for them beside the executable, which under the
#      loader is the loader itself; without them: "no backends are loaded");
#   4. checks the wrapper: `--version` (whisper-server has none: `--help`), then a real server on
#      loopback answering `/health` and one tiny request (`/completion`, `/inference`) on the
#      shared test models (STUDIO_WORKER_TEST_MODELS) when they are there.
#
# Everything lives under ${STUDIO_WORKER_ENGINE_CACHE:-$HOME/.cache/studio-worker/engines}; a run
# that finds a working wrapper there changes nothing and downloads nothing (`--refresh` resolves
# and downloads again). A program already given in STUDIO_WORKER_LLAMA_SERVER /
# STUDIO_WORKER_WHISPER_SERVER, or found on PATH, is checked and used instead.
#
# Output: for each engine either its version line and `export STUDIO_WORKER_…=<wrapper>`, or one
# line `SKIPPED: <engine>: <why>`; the export lines also go to the env file (`--env-file FILE`,
# default <cache>/env.sh) for `. FILE`. Always exits 0 (a missing engine makes the tests that need
# it print their own SKIPPED line); 2 on a usage error.
#
# Usage: scripts/setup-engines.sh [--engines "llama whisper"] [--env-file FILE] [--refresh | --offline]
#   --refresh  resolve and download again (Debian unstable moved on), replacing the cached folders
#   --offline  never ask the archive: use what is given, on PATH or already in the cache
# Environment: STUDIO_WORKER_ENGINE_CACHE, SW_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# SW_DEBIAN_SUITE (default unstable), SW_ENGINES (same as --engines).
set -uo pipefail

CACHE="${STUDIO_WORKER_ENGINE_CACHE:-$HOME/.cache/studio-worker/engines}"
MIRROR="${SW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${SW_DEBIAN_SUITE:-unstable}"
ENGINES="${SW_ENGINES:-llama whisper}"
ENV_FILE=""
REFRESH=0
OFFLINE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --engines) ENGINES="${2:?--engines needs a list}"; shift 2 ;;
    --env-file) ENV_FILE="${2:?--env-file needs a path}"; shift 2 ;;
    --refresh) REFRESH=1; shift ;;
    --offline) OFFLINE=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-engines: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
ENV_FILE="${ENV_FILE:-$CACHE/env.sh}"

say() { echo "setup-engines: $*"; }
EXPORTS=()
# skip <engine> <why>: the one SKIPPED line, and SW_<ENGINE>_SERVER_UNAVAILABLE=<why> in the env
# file, which tests/skip-allowlist.txt requires before the tests that need the program may skip.
skip() {
  local engine="$1" why="$2" var
  echo "SKIPPED: $engine: $why"
  var="SW_${engine^^}_SERVER_UNAVAILABLE"
  EXPORTS+=("export $var=$(printf '%q' "$why")")
}

finish() {
  # The package lists (≈ 120 MB with APT's binary caches) serve one provisioning only; a later
  # one reads them afresh. After a run that provisioned everything it tried, packages no cached
  # engine uses any more (after --refresh) go too; after a failed one they stay for the retry.
  if [ "${APT_READY:-0}" = 1 ]; then
    rm -rf "$APT_DIR"
  fi
  if [ "${APT_READY:-0}" = 1 ] && [ "${PROVISION_FAILED:-0}" = 0 ]; then
    local deb name
    local -A used=()
    while read -r name; do used[$name]=1; done < <(cat "$CACHE"/*/.debs 2>/dev/null)
    for deb in "$DEBS"/*.deb; do
      [ -e "$deb" ] && [ -z "${used[${deb##*/}]:-}" ] && rm -f "$deb"
    done
  fi
  mkdir -p "$(dirname "$ENV_FILE")" 2>/dev/null
  {
    echo "# written by scripts/setup-engines.sh on $(date -u +%FT%TZ)"
    for line in "${EXPORTS[@]}"; do echo "$line"; done
  } > "$ENV_FILE" 2>/dev/null || say "cannot write $ENV_FILE"
  exit 0
}

if [ "$(uname -m)" != x86_64 ]; then
  for engine in $ENGINES; do skip "$engine" "the Debian packages are set up for x86_64 only"; done
  finish
fi
for tool in apt-get apt-cache dpkg-deb readelf curl flock; do
  if ! command -v "$tool" >/dev/null; then
    for engine in $ENGINES; do skip "$engine" "$tool is not installed"; done
    finish
  fi
done

mkdir -p "$CACHE" || { for engine in $ENGINES; do skip "$engine" "cannot create $CACHE"; done; finish; }
CACHE="$(cd "$CACHE" && pwd)"
# Two runs at once (two checkouts testing) share one cache: one provisions, the other waits.
exec 9> "$CACHE/.lock"
flock 9

# --- the private APT configuration ------------------------------------------------------------
APT_DIR="$CACHE/apt"
DEBS="$CACHE/debs"
# APT reads the file APT_CONFIG names, then /etc/apt/apt.conf.d (proxies set there still apply),
# then the main file: the private one, which includes the system's /etc/apt/apt.conf, points every
# path at the private folder and clears the system's hooks (they act on the system: appstream,
# packagekit, docker-clean, which also turns off the binary package cache that keeps each
# apt-cache call fast).
apt_get() { APT_CONFIG="$APT_DIR/apt.conf" apt-get "$@"; }
apt_cache() { APT_CONFIG="$APT_DIR/apt.conf" apt-cache "$@"; }
APT_READY=0

apt_ready() {
  [ "$APT_READY" = 1 ] && return 0
  [ "$APT_READY" = failed ] && return 1
  rm -rf "$APT_DIR"
  mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/preferences.d" "$APT_DIR/state/lists/partial" \
    "$APT_DIR/cache/archives/partial" "$DEBS" || return 1
  : > "$APT_DIR/state/status"
  : > "$APT_DIR/preferences"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
    > "$APT_DIR/sources.list"
  echo "Dir::Etc::main \"$APT_DIR/main.conf\";" > "$APT_DIR/apt.conf"
  if [ -f /etc/apt/apt.conf ]; then echo "#include /etc/apt/apt.conf" > "$APT_DIR/main.conf"; fi
  cat >> "$APT_DIR/main.conf" <<CONF
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::Etc::Preferences "$APT_DIR/preferences";
Dir::Etc::PreferencesParts "$APT_DIR/preferences.d";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/state/status";
Dir::Cache "$APT_DIR/cache";
Dir::Cache::pkgcache "pkgcache.bin";
Dir::Cache::srcpkgcache "srcpkgcache.bin";
APT::Architecture "amd64";
#clear APT::Architectures;
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Debug::NoLocking "true";
CONF
  # As root, APT downloads as the `_apt` user, which cannot write into a private folder in /root.
  if [ "$(id -u)" -eq 0 ]; then echo 'APT::Sandbox::User "root";' >> "$APT_DIR/main.conf"; fi
  local start=$SECONDS log="$APT_DIR/update.log"
  if ! apt_get -q=2 update > "$log" 2>&1 || grep -q '^[WE]:' "$log"; then
    APT_ERROR="cannot read Debian $SUITE from $MIRROR: $(grep -m1 '^[WE]:' "$log" || tail -1 "$log")"
    APT_READY=failed
    rm -rf "$APT_DIR"
    return 1
  fi
  say "package lists of Debian $SUITE read in $((SECONDS - start)) s"
  APT_READY=1
}

# debs_of <package…>: for each package "<package> <file>", the file name `apt-get download`
# gives its candidate version (one APT call for all: each call reads the whole package index).
debs_of() {
  apt_cache show --no-all-versions "$@" 2>/dev/null | awk '
    function emit() {
      if (name != "") { gsub(/:/, "%3a", version); print name, name "_" version "_" arch ".deb" }
      name = ""
    }
    /^Package: / { name = $2 } /^Version: / { version = $2 } /^Architecture: / { arch = $2 }
    /^$/ { emit() }
    END { emit() }'
}

# direct_depends <package…>: one real package per Depends group of any of them (the first
# alternative that exists; for a virtual package its first provider), each on its own line.
direct_depends() {
  apt_cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" 2>/dev/null | awk '
      function emit() { if (chosen != "") print chosen; chosen = "" }
      /^ *\|?(Pre)?Depends: / {
        if (!alternative) emit()
        alternative = ($1 ~ /^\|/); name = $2; virtual = (name ~ /^</)
        if (!virtual && chosen == "") chosen = name
        next
      }
      /^    [^ ]/ { if (virtual && chosen == "") chosen = $1 }
      END { emit() }'
}

# --- ELF closure --------------------------------------------------------------------------------
# ELF_NEEDED[file] / ELF_RUNPATH[file]: the dynamic section of each file read so far; read_elf runs
# readelf once for a whole batch of files not read yet.
declare -A ELF_NEEDED=() ELF_RUNPATH=()
read_elf() {
  local -a fresh=()
  local file kind value
  for file in "$@"; do [ -n "${ELF_NEEDED[$file]+set}" ] || fresh+=("$file"); done
  [ ${#fresh[@]} -gt 0 ] || return 0
  for file in "${fresh[@]}"; do ELF_NEEDED[$file]=""; ELF_RUNPATH[$file]=""; done
  while IFS=$'\t' read -r kind file value; do
    if [ "$kind" = N ]; then ELF_NEEDED[$file]+="$value "; else ELF_RUNPATH[$file]="$value"; fi
  done < <(readelf -d --wide "${fresh[@]}" 2>/dev/null | awk -v only="${fresh[0]}" '
      # readelf names each file ("File: …") only when it reads more than one.
      /^File: / { file = substr($0, 7); next }
      /\((NEEDED|RUNPATH|RPATH)\)/ {
        match($0, /\[.*\]/)
        print (/NEEDED/ ? "N" : "R") "\t" (file == "" ? only : file) "\t" substr($0, RSTART + 1, RLENGTH - 2)
      }')
}

# elf_walk <prefix> <root files…>: follows DT_NEEDED from the roots through each file's RUNPATH
# (mapped into the prefix) and the prefix's standard library folders. Sets RESOLVED_DIRS (the
# folders that served a library), MISSING (lines "<file> <soname>") and LOADER (the prefix's
# ld-linux, real path).
elf_walk() {
  local prefix="$1"; shift
  local -A seen=() dirs=()
  local -a frontier=("$@") next runpath search
  local -a std=("$prefix/usr/lib/x86_64-linux-gnu" "$prefix/lib/x86_64-linux-gnu" "$prefix/usr/lib" "$prefix/lib")
  local file name dir found origin
  MISSING=""
  LOADER=""
  while [ ${#frontier[@]} -gt 0 ]; do
    read_elf "${frontier[@]}"
    next=()
    for file in "${frontier[@]}"; do
      origin="${file%/*}"
      origin="${origin#"$prefix"}"
      IFS=: read -ra runpath <<<"${ELF_RUNPATH[$file]}"
      search=()
      for dir in "${runpath[@]}"; do search+=("$prefix${dir//\$ORIGIN/$origin}"); done
      search+=("${std[@]}")
      for name in ${ELF_NEEDED[$file]}; do
        [ -n "${seen[$name]:-}" ] && continue
        found=""
        for dir in "${search[@]}"; do
          if [ -e "$dir/$name" ]; then found="$dir/$name"; break; fi
        done
        if [ -z "$found" ]; then
          MISSING+="$file $name"$'\n'
          continue
        fi
        seen[$name]=1
        dirs[${found%/*}]=1
        if [ "$name" = ld-linux-x86-64.so.2 ]; then LOADER="$found"; fi
        next+=("$found")
      done
    done
    frontier=("${next[@]}")
  done
  RESOLVED_DIRS=("${!dirs[@]}")
  if [ -n "$LOADER" ]; then LOADER="$(readlink -f "$LOADER")"; fi
}

# --- provisioning -------------------------------------------------------------------------------
# provision <engine> <package> <program>: builds <cache>/<engine> and <cache>/bin/<program>.
# Returns non-zero with WHY set when it cannot.
provision() {
  local engine="$1" root_package="$2" program="$3"
  local prefix="$CACHE/$engine" building="$CACHE/$engine.new" start=$SECONDS
  apt_ready || { WHY="$APT_ERROR"; return 1; }
  if ! apt_cache show --no-all-versions "$root_package" >/dev/null 2>&1; then
    WHY="Debian $SUITE has no package $root_package"
    return 1
  fi
  rm -rf "$building"
  mkdir -p "$building" || { WHY="cannot create $building"; return 1; }
  local -A have=() expanded=() deb_name=()
  local -a want=("$root_package") packages=()
  local owners="$building.owners" downloaded=0
  : > "$owners"
  for _ in $(seq 1 40); do
    # Download what is not in the cache yet, then unpack this round's packages.
    local -a fetch=()
    local package deb
    while read -r package deb; do deb_name[$package]="$deb"; done \
      < <(debs_of "${want[@]}")
    for package in "${want[@]}"; do
      deb="${deb_name[$package]:-}"
      [ -n "$deb" ] || { WHY="Debian $SUITE has no package $package"; return 1; }
      [ -s "$DEBS/$deb" ] || fetch+=("$package")
    done
    if [ ${#fetch[@]} -gt 0 ]; then
      if ! (cd "$DEBS" && apt_get -q=2 download "${fetch[@]}") > "$CACHE/download.log" 2>&1; then
        WHY="apt-get download failed: $(grep -m1 '^E:' "$CACHE/download.log" || tail -1 "$CACHE/download.log")"
        return 1
      fi
      downloaded=$((downloaded + ${#fetch[@]}))
    fi
    for package in "${want[@]}"; do
      deb="$DEBS/${deb_name[$package]}"
      # One pass unpacks the package and lists its files (who owns what, for the next round).
      if ! dpkg-deb --fsys-tarfile "$deb" | tar -x -v --no-same-owner -C "$building" \
          | sed "s|^\./|$package /|" >> "$owners"; then
        WHY="cannot unpack $deb"
        return 1
      fi
      have[$package]=1
      packages+=("$package")
    done
    want=()

    # What does the program (and every ggml backend, which it loads by name) still miss?
    local -a roots=("$building/usr/bin/$program")
    [ -x "${roots[0]}" ] || { WHY="$root_package has no usr/bin/$program"; return 1; }
    local backend
    for backend in "$building"/usr/lib/x86_64-linux-gnu/ggml/backends*/*.so; do
      [ -e "$backend" ] && roots+=("$backend")
    done
    elf_walk "$building" "${roots[@]}"
    [ -z "$MISSING" ] && break
    # Expand the packages owning a file with an unresolved library: their direct dependencies,
    # keeping those whose names say they ship a library (debconf, wget, gcc-N-base do not).
    local owner dep
    local -a expand=()
    while read -r owner; do
      [ -z "${expanded[$owner]:-}" ] || continue
      expanded[$owner]=1
      expand+=("$owner")
    done < <(awk -v prefix="$building" '
        NR == FNR { if ($1 != "") missing[substr($1, length(prefix) + 1)] = 1; next }
        ($2 in missing) && !($1 in printed) { print $1; printed[$1] = 1 }' <(printf '%s' "$MISSING") "$owners")
    if [ ${#expand[@]} -gt 0 ]; then
      for dep in $(direct_depends "${expand[@]}"); do
        case "$dep" in *lib*) ;; *) continue ;; esac
        [ -n "${have[$dep]:-}" ] && continue
        have[$dep]=1
        want+=("$dep")
      done
    fi
    if [ ${#want[@]} -eq 0 ]; then
      WHY="$program needs $(awk '{print $2}' <<<"$MISSING" | sort -u | tr '\n' ' ')which no dependency in Debian $SUITE provides"
      return 1
    fi
  done
  [ -n "$LOADER" ] || { WHY="no ld-linux-x86-64.so.2 among the unpacked libraries"; return 1; }

  # ggml loads its CPU backends from the executable's folder: under the loader, the loader's.
  local loader_dir
  loader_dir="$(dirname "$LOADER")"
  for backend in "$building"/usr/lib/x86_64-linux-gnu/ggml/backends*/libggml-*.so; do
    [ -e "$backend" ] || continue
    ln -sfn "$(realpath --relative-to="$loader_dir" "$backend")" "$loader_dir/$(basename "$backend")"
  done
  local version
  version="$(apt_cache show --no-all-versions "$root_package" | sed -n 's/^Version: //p')"
  printf '%s\n' "${packages[@]}" > "$building/.packages"
  for package in "${packages[@]}"; do echo "${deb_name[$package]}"; done > "$building/.debs"
  # Documentation, manuals and translations are never read by a server.
  rm -rf "$building"/usr/share/{doc,man,info,locale,lintian,bug}
  echo "$root_package $version" > "$building/.source"

  rm -rf "$prefix" && mv "$building" "$prefix" && rm -f "$owners"
  # The folder moved: recompute the paths the wrapper names.
  local -a libdirs=()
  local dir
  elf_walk "$prefix" "$prefix/usr/bin/$program"
  for dir in "${RESOLVED_DIRS[@]}"; do libdirs+=("$dir"); done
  mkdir -p "$CACHE/bin"
  local wrapper="$CACHE/bin/$program"
  local libpath
  libpath="$(IFS=:; echo "${libdirs[*]}")"
  cat > "$wrapper.new" <<EOF
#!/bin/sh
# Written by scripts/setup-engines.sh: $program from Debian $SUITE ($root_package $version),
# unpacked in $prefix (never installed) and started through that folder's own loader, because
# it needs a newer glibc than this system's. --library-path replaces LD_LIBRARY_PATH.
exec '$LOADER' --argv0 '$program' --library-path '$libpath' '$prefix/usr/bin/$program' "\$@"
EOF
  chmod +x "$wrapper.new" && mv "$wrapper.new" "$wrapper"
  local size
  size="$(du -sm "$DEBS" | cut -f1)"
  say "$engine: $root_package $version and ${#packages[@]} packages in total ($downloaded downloaded now; $size MB of packages cached) unpacked in $((SECONDS - start)) s"
  return 0
}

# --- checks -------------------------------------------------------------------------------------
# serve_check <program> <log> <args…>: starts the server on a free loopback port, waits for
# /health, runs check_request <port>, stops it. Sets WHY on failure. A server that exits at start
# is tried again on another port (another program may have taken the one picked).
serve_check() {
  local attempt
  for attempt in 1 2 3; do
    serve_once "$@" && return 0
    [ "$STARTED" = 1 ] && return 1
    [ "$attempt" = 3 ] || say "$WHY; trying another port"
  done
  return 1
}

serve_once() {
  local program="$1" log="$2"; shift 2
  local pid port deadline=$((SECONDS + 60)) ok=1
  STARTED=0
  port="$(free_port)"
  "$program" --host 127.0.0.1 --port "$port" "$@" > "$log" 2>&1 9>&- &
  pid=$!
  until curl -sf --max-time 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      WHY="$(basename "$program") exited at start: $(grep -v 'failed to enumerate' "$log" | tail -1)"
      ok=0; break
    fi
    if [ $SECONDS -ge $deadline ]; then WHY="no /health answer within 60 s"; STARTED=1; ok=0; break; fi
    sleep 0.2
  done
  [ "$ok" = 1 ] && STARTED=1
  if [ "$ok" = 1 ] && ! check_request "$port"; then ok=0; fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [ "$ok" = 1 ]
}

# free_port: a loopback port nothing listens on now (the server reports a taken one at start).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo 18080
}

check_llama() {
  local program="$1" models="${STUDIO_WORKER_TEST_MODELS:-}"
  if [ -z "$models" ] || [ ! -f "$models/stories260K.gguf" ]; then
    say "llama: no request tried (STUDIO_WORKER_TEST_MODELS has no stories260K.gguf)"
    return 0
  fi
  check_request() {
    local answer
    answer="$(curl -sS --max-time 30 "http://127.0.0.1:$1/completion" \
      -d '{"prompt":"Once upon a time","n_predict":8,"temperature":0}' 2>&1)"
    if ! grep -q '"content":"[^"]' <<<"$answer"; then
      WHY="/completion gave no text: ${answer:0:200}"; return 1
    fi
    say "llama: /completion on stories260K.gguf → $(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' <<<"$answer")"
  }
  serve_check "$program" "$CACHE/check-llama.log" -m "$models/stories260K.gguf" -c 256 -np 1
}

check_whisper() {
  local program="$1" models="${STUDIO_WORKER_TEST_MODELS:-}"
  if [ -z "$models" ] || [ ! -f "$models/whisper/for-tests-ggml-tiny.bin" ]; then
    say "whisper: no request tried (STUDIO_WORKER_TEST_MODELS has no whisper/for-tests-ggml-tiny.bin)"
    return 0
  fi
  check_request() {
    local answer
    answer="$(curl -sS --max-time 60 "http://127.0.0.1:$1/inference" \
      -F "file=@$models/audio/jfk.wav" -F response_format=json 2>&1)"
    if ! grep -q '"text"' <<<"$answer"; then WHY="/inference gave no transcript: ${answer:0:200}"; return 1; fi
    say "whisper: /inference on jfk.wav → ${answer:0:80} (the test model has no weights)"
  }
  # A short audio context keeps the check to a few seconds (the weightless model retries a lot).
  serve_check "$program" "$CACHE/check-whisper.log" -m "$models/whisper/for-tests-ggml-tiny.bin" -l en -nf -ac 128
}

# version_<engine> <program>: one line naming the program's version; empty when the program does
# not start. llama-server prints `version: …` for --version; whisper-server has no --version, so
# its help proves it starts and the version is the Debian package's.
version_llama() {
  timeout 20 "$1" --version 2>&1 | sed -n 's/^version: //p' | head -1
}
version_whisper() {
  local help
  help="$(timeout 20 "$1" --help 2>&1)"
  grep -q '^usage: ' <<<"$help" || return 0
  local source="$CACHE/whisper/.source"
  if [ "$1" = "$CACHE/bin/whisper-server" ] && [ -f "$source" ]; then
    echo "$(cut -d' ' -f2 "$source") (Debian whisper.cpp-tools)"
  else
    echo "(whisper-server has no --version)"
  fi
}

# setup <engine> <package> <program> <env var>: finds, or provisions, checks and exports one engine.
setup() {
  local engine="$1" package="$2" program="$3" var="$4" path="" origin version
  if [ -n "${!var:-}" ]; then
    path="${!var}"; origin="from $var"
  elif command -v "$program" >/dev/null; then
    path="$(command -v "$program")"; origin="from PATH"
  fi
  if [ -n "$path" ]; then
    version="$("version_$engine" "$path")"
    if [ -z "$version" ]; then skip "$engine" "$path ($origin) does not start"; return; fi
  else
    origin="Debian $SUITE, unpacked in $CACHE/$engine"
    path="$CACHE/bin/$program"
    version=""
    if [ "$REFRESH" = 0 ] && [ -x "$path" ]; then version="$("version_$engine" "$path")"; fi
    if [ -z "$version" ] && [ "$OFFLINE" = 1 ]; then
      skip "$engine" "$program is not on PATH, not in $var, not provisioned in $CACHE (scripts/setup-engines.sh downloads it)"
      return
    fi
    if [ -z "$version" ]; then
      if ! provision "$engine" "$package" "$program"; then
        rm -rf "$CACHE/$engine.new" "$CACHE/$engine.new.owners"
        PROVISION_FAILED=1
        skip "$engine" "$WHY"; return
      fi
      version="$("version_$engine" "$path")"
      if [ -z "$version" ]; then
        skip "$engine" "$path does not start: $(timeout 20 "$path" --version 2>&1 | grep -v 'failed to enumerate' | tail -1)"
        return
      fi
    fi
  fi
  if ! "check_$engine" "$path"; then skip "$engine" "$path ($origin): $WHY"; return; fi
  say "$program $version ($origin)"
  echo "export $var='$path'"
  EXPORTS+=("export $var='$path'")
}

for engine in $ENGINES; do
  case "$engine" in
    llama) setup llama llama.cpp-tools llama-server STUDIO_WORKER_LLAMA_SERVER ;;
    whisper) setup whisper whisper.cpp-tools whisper-server STUDIO_WORKER_WHISPER_SERVER ;;
    *) echo "setup-engines: unknown engine $engine (llama, whisper)" >&2; exit 2 ;;
  esac
done
finish
