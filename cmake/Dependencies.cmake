# Every external dependency is found here, from Debian 12 packages only (scripts/install-deps.sh).
# Nothing is downloaded at configure time.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(tl-expected REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PNG REQUIRED)
# zlib (zlib1g-dev, which libpng-dev depends on): the dashboard test inflates what the studio gzipped.
find_package(ZLIB REQUIRED)
find_package(GIF 5 REQUIRED)
find_package(CURL 7.88 REQUIRED)
# filesystem: Boost.Process v2 (1.81) spells paths as boost::filesystem::path.
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS url filesystem)
find_package(SQLite3 REQUIRED)
# libpq (libpq-dev 15): the studio's PostgreSQL backend, for several studio processes on one
# database (issue 18). Its C API, not libpqxx: bookworm's libpqxx is 6.4 and throws.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
find_package(tomlplusplus 3 REQUIRED)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp libwebpmux libwebpdemux)
# Audio in and out (whisper input conversion, TTS output formats): WAV/FLAC/Ogg/Opus/MP3 in one
# library instead of a decoder per format.
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
# Sample-rate conversion (whisper's 16 kHz input, Opus's and MP3's fixed rates): a real resampler
# with an anti-aliasing filter instead of hand-written interpolation.
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
# Text to speech (the espeak-ng engine).
pkg_check_modules(ESPEAK REQUIRED IMPORTED_TARGET espeak-ng)
# Where libespeak-ng lives (and, on Debian, its espeak-ng-data): checked at run time without
# loading it (engines/espeak/espeak_library.h).
pkg_get_variable(ESPEAK_LIBDIR espeak-ng libdir)
# libsystemd (libsystemd-dev 252): sd_notify for Type=notify units (readiness, watchdog), in
# src/service only; src/common reads sd-daemon.h's journal priority prefixes (macros only).
pkg_check_modules(LIBSYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# mimalloc (libmimalloc-dev 2.0.9) replaces glibc's malloc in studio-server and in studio_bench,
# which hosts the studio (issue 18): a job's life is many small short-lived allocations (frames,
# JSON, completions) on two threads, and glibc's arenas spent 15 % of the loop thread there.
# Measured side by side (farm-bench, studio_bench --only=json, each allocator preloaded): tcmalloc
# 8 %, jemalloc and mimalloc about 10 % more jobs/s than glibc; mimalloc is the smallest. Off
# under the sanitizers, which bring their own allocator.
option(SW_MIMALLOC "Link studio-server and studio_bench with mimalloc" ON)
if(SW_SANITIZE OR SW_TSAN OR SW_FUZZ)
  set(SW_MIMALLOC OFF)
endif()
if(SW_MIMALLOC)
  find_package(mimalloc 2.0 REQUIRED)
endif()

if(SW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SW_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
