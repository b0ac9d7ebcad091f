# Installation and Debian packages (issue: install from packages and run under systemd).
#
# `cmake --install build/ci [--prefix P]` (DESTDIR honoured) installs, per component:
#   studio-server  bin/studio-server, share/man/man1/studio-server.1.gz,
#                  <sysconfdir>/default/studio-server, <system unit dir>/studio-server.service
#   studio-worker  bin/studio-worker, share/man/man1/studio-worker.1.gz,
#                  share/doc/studio-worker/examples/config.toml,
#                  <system unit dir>/studio-worker.service, <user unit dir>/studio-worker.service
# The units are configured when they are installed, from the prefix of that install (ExecStart
# names the binary where this install put it; <sysconfdir> is /etc for the prefix /usr, else
# <prefix>/etc, as GNUInstallDirs has it). The unit directories are systemd.pc's (Debian 12:
# /lib/systemd/system and /usr/lib/systemd/user), else lib/systemd/{system,user} under the prefix.
#
# `cpack --config build/ci/CPackConfig.cmake` (or the `package` target) makes one .deb per
# component from the binaries already built, prefix /usr, plus a -dbgsym .ddeb with each one's
# debug symbols; the .debs hold stripped binaries.
include(GNUInstallDirs)

# The man pages: help2man runs each program's --help and --version at build time, and every
# subcommand's --help goes into a COMMANDS section (cmake/man_page_script.cmake). Part of `all`,
# so that packaging builds nothing.
find_program(SW_HELP2MAN help2man REQUIRED)
find_program(SW_GZIP gzip REQUIRED)
set(SW_MAN_DIR "${CMAKE_BINARY_DIR}/man")
set(SW_MAN_PAGES "")
foreach(program studio-server studio-worker)
  set(page "${SW_MAN_DIR}/${program}.1.gz")
  add_custom_command(
    OUTPUT "${page}"
    COMMAND ${CMAKE_COMMAND} "-DPROGRAM=$<TARGET_FILE:${program}>" "-DNAME=${program}"
            "-DHELP2MAN=${SW_HELP2MAN}" "-DGZIP=${SW_GZIP}" "-DOUT_DIR=${SW_MAN_DIR}"
            "-DSECTIONS=${PROJECT_SOURCE_DIR}/packaging/man/${program}.h2m"
            -P "${PROJECT_SOURCE_DIR}/cmake/man_page_script.cmake"
    DEPENDS ${program} "${PROJECT_SOURCE_DIR}/cmake/man_page_script.cmake"
            "${PROJECT_SOURCE_DIR}/packaging/man/${program}.h2m"
    COMMENT "Generating the man page of ${program} (help2man)"
    VERBATIM)
  list(APPEND SW_MAN_PAGES "${page}")
endforeach()
add_custom_target(man_pages ALL DEPENDS ${SW_MAN_PAGES})

# systemd's unit directories, from systemd.pc (the `systemd` package) when it is there.
set(_sw_system_unit_dir "lib/systemd/system")
set(_sw_user_unit_dir "lib/systemd/user")
pkg_check_modules(SW_SYSTEMD_PC QUIET systemd)
if(SW_SYSTEMD_PC_FOUND)
  pkg_get_variable(_sw_pc_system systemd systemdsystemunitdir)
  pkg_get_variable(_sw_pc_user systemd systemduserunitdir)
  if(_sw_pc_system)
    set(_sw_system_unit_dir "${_sw_pc_system}")
  endif()
  if(_sw_pc_user)
    set(_sw_user_unit_dir "${_sw_pc_user}")
  endif()
endif()
set(SW_SYSTEMD_SYSTEM_UNIT_DIR "${_sw_system_unit_dir}" CACHE STRING
    "Where system units go (absolute, or relative to the install prefix)")
set(SW_SYSTEMD_USER_UNIT_DIR "${_sw_user_unit_dir}" CACHE STRING
    "Where user units go (absolute, or relative to the install prefix)")

# sw_install_configured(<template> <destination> <name> <component>): installs <template> with
# @SW_BINDIR@ and @SW_SYSCONFDIR@ replaced by the directories of the install being made, as
# <destination>/<name>. <destination> may be relative to the prefix, or start with
# <SYSCONFDIR> (not @…@: cmake_install.cmake runs without this project's policies, CMP0053).
# A fifth argument PRIVATE installs it 0600 (a file meant to hold secrets, e.g. PGPASSWORD).
function(sw_install_configured template destination name component)
  set(sw_permissions "OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ")
  if(ARGV4 STREQUAL "PRIVATE")
    set(sw_permissions "OWNER_READ OWNER_WRITE")
  endif()
  get_filename_component(template_name "${template}" NAME)
  set(staged "${CMAKE_BINARY_DIR}/packaging/${template_name}")
  install(CODE "
    set(SW_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    if(SW_PREFIX STREQUAL \"/usr\" OR SW_PREFIX STREQUAL \"/\")
      set(SW_SYSCONFDIR \"/etc\")
    else()
      set(SW_SYSCONFDIR \"\${SW_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}\")
    endif()
    cmake_path(APPEND SW_PREFIX \"${CMAKE_INSTALL_BINDIR}\" OUTPUT_VARIABLE SW_BINDIR)
    configure_file(\"${template}\" \"${staged}\" @ONLY)
    string(REPLACE \"<SYSCONFDIR>\" \"\${SW_SYSCONFDIR}\" sw_destination \"${destination}\")
    if(NOT IS_ABSOLUTE \"\${sw_destination}\")
      set(sw_destination \"\${CMAKE_INSTALL_PREFIX}/\${sw_destination}\")
    endif()
    file(INSTALL DESTINATION \"\${sw_destination}\" TYPE FILE RENAME \"${name}\"
         PERMISSIONS ${sw_permissions} FILES \"${staged}\")
  " COMPONENT ${component})
endfunction()

set(_sw_packaging "${PROJECT_SOURCE_DIR}/packaging")
foreach(program studio-server studio-worker)
  install(TARGETS ${program} RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT ${program})
  install(FILES "${SW_MAN_DIR}/${program}.1.gz" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1"
          COMPONENT ${program})
endforeach()
sw_install_configured("${_sw_packaging}/systemd/studio-server.service.in"
                      "${SW_SYSTEMD_SYSTEM_UNIT_DIR}" studio-server.service studio-server)
# 0600: it may hold STUDIO_SERVER_DATABASE's password (systemd reads it as root).
sw_install_configured("${_sw_packaging}/examples/studio-server.default" "<SYSCONFDIR>/default"
                      studio-server studio-server PRIVATE)
sw_install_configured("${_sw_packaging}/systemd/studio-worker.service.in"
                      "${SW_SYSTEMD_SYSTEM_UNIT_DIR}" studio-worker.service studio-worker)
sw_install_configured("${_sw_packaging}/systemd/studio-worker.user.service.in"
                      "${SW_SYSTEMD_USER_UNIT_DIR}" studio-worker.service studio-worker)
install(FILES "${_sw_packaging}/examples/config.toml"
        DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/studio-worker/examples"
        COMPONENT studio-worker)

# ---- Debian packages (CPack DEB), one per program.
set(SW_PACKAGE_MAINTAINER "Seed f91f0313 maintainers <maintainers@users.noreply.b-seed-f91f0313.example>"
    CACHE STRING "The Maintainer: field of the Debian packages")
set(SW_PACKAGE_HOMEPAGE "" CACHE STRING
    "The Homepage: field of the Debian packages (none while the project has no public page)")
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "studio-worker")
set(CPACK_PACKAGE_VENDOR "studio-worker")
set(CPACK_PACKAGE_CONTACT "${SW_PACKAGE_MAINTAINER}")
if(SW_PACKAGE_HOMEPAGE)
  set(CPACK_PACKAGE_HOMEPAGE_URL "${SW_PACKAGE_HOMEPAGE}")
endif()
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
# Each package's Description: is its own (below). CPackDeb puts any summary but CPack's default
# above it, which would give both packages a second, shared synopsis line: keep the default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_PACKAGE_DIRECTORY "${CMAKE_BINARY_DIR}/packages")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL studio-server studio-worker)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The Debian revision: 1 for each upstream version (PROJECT_VERSION); packages are 0.1.0-1.
set(SW_DEBIAN_REVISION 1)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${SW_DEBIAN_REVISION})
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Depends by Debian package name: dpkg-shlibdeps reads the ELF files' NEEDED libraries (libc6,
# libstdc++6, libssl3, libsqlite3-0, libpq5, libsystemd0, ...) and adds them to what is set here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Stripped binaries in the .debs, their debug symbols in -dbgsym .ddebs (/usr/lib/debug/.build-id).
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# gzip: every dpkg reads it, and it is quick. Measured on the 2-core CI machine class, both
# packages with their dbgsym: xz 5 min (the debug symbols are ~550 MB), gzip 40 s, zstd 25 s
# (dpkg >= 1.21.18 only; the .debs were 10 % smaller than gzip's).
set(CPACK_DEBIAN_COMPRESSION_TYPE "gzip")

set(CPACK_DEBIAN_STUDIO-SERVER_PACKAGE_NAME "studio-server")
set(CPACK_DEBIAN_STUDIO-WORKER_PACKAGE_NAME "studio-worker")
# adduser: the maintainer scripts make the system user. The libraries the programs open with
# dlopen on first use, which dpkg-shlibdeps cannot see: libcurl (studio-server's admin commands
# ask a running studio through its API; the worker's every REST call to the studio, registration
# included), and the worker's image and audio codecs, which results of every task kind need.
# espeak-ng (text to speech) is one engine among several: recommended.
set(CPACK_DEBIAN_STUDIO-SERVER_PACKAGE_DEPENDS "adduser, libcurl4")
set(CPACK_DEBIAN_STUDIO-WORKER_PACKAGE_DEPENDS
    "adduser, libcurl4, libpng16-16, libgif7, libwebp7, libwebpmux3, libsndfile1, libsoxr0")
set(CPACK_DEBIAN_STUDIO-WORKER_PACKAGE_RECOMMENDS "libespeak-ng1, espeak-ng-data")
# Descriptions: the synopsis, then the long text; CPackDeb indents each line and turns an empty
# line into the " ." paragraph separator.
set(CPACK_DEBIAN_STUDIO-SERVER_DESCRIPTION "self-hostable studio for studio-worker farms
studio-server queues generative-AI jobs (images, chat, speech, transcription,
video) from clients, approves studio-worker machines, offers each job to a
worker that can run it, requeues what fails and stores the results, in SQLite
or PostgreSQL. It serves a client API, an OpenAI-compatible API, an admin API
with a web dashboard, and Prometheus metrics.

This package runs it as the systemd service studio-server.service.")
set(CPACK_DEBIAN_STUDIO-WORKER_DESCRIPTION "pull-based generative-AI worker for a studio
studio-worker runs on a GPU box or a desktop PC. It holds one outbound
WebSocket session to a studio, takes the jobs it is offered, downloads model
files on demand (sha256-verified), runs them through llama.cpp,
stable-diffusion.cpp, whisper.cpp or espeak-ng and returns the results.

This package has a system service (studio-worker.service, as the user
studio-worker) and a user service for a desktop session
(systemctl --user enable --now studio-worker).")
set(CPACK_DEBIAN_STUDIO-SERVER_PACKAGE_CONTROL_EXTRA
    "${_sw_packaging}/debian/studio-server/postinst;${_sw_packaging}/debian/studio-server/prerm;${_sw_packaging}/debian/studio-server/postrm;${_sw_packaging}/debian/studio-server/conffiles")
set(CPACK_DEBIAN_STUDIO-WORKER_PACKAGE_CONTROL_EXTRA
    "${_sw_packaging}/debian/studio-worker/postinst;${_sw_packaging}/debian/studio-worker/prerm;${_sw_packaging}/debian/studio-worker/postrm")

include(CPack)
