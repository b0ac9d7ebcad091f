# sw_embed_files(<target> NAMESPACE <ns> BASE_DIR <dir> FILES <file>...)
#
# Builds a static library <target> holding each file's bytes, its gzip (level 9) and its sha256,
# so that a program serves them with no file look-up at run time (house-style.md: the dashboard is
# embedded this way). The work is done at build time by cmake/embed_files_script.cmake; CMake's
# own libarchive compresses, so the build needs no gzip or xxd. The library defines, in <ns>:
#
#   std::span<const sw::EmbeddedFile> embedded_files();   // see src/common/embedded_file.h
function(sw_embed_files target)
  cmake_parse_arguments(ARG "" "NAMESPACE;BASE_DIR" "FILES" ${ARGN})
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  set(out_cpp "${out_dir}/${target}.cpp")
  set(inputs "")
  foreach(file IN LISTS ARG_FILES)
    list(APPEND inputs "${ARG_BASE_DIR}/${file}")
  endforeach()
  string(REPLACE ";" "|" files_arg "${ARG_FILES}")
  add_custom_command(
    OUTPUT "${out_cpp}"
    COMMAND ${CMAKE_COMMAND} "-DBASE_DIR=${ARG_BASE_DIR}" "-DFILES=${files_arg}"
            "-DOUT_DIR=${out_dir}" "-DOUT_CPP=${out_cpp}" "-DNAMESPACE=${ARG_NAMESPACE}"
            -P "${PROJECT_SOURCE_DIR}/cmake/embed_files_script.cmake"
    DEPENDS ${inputs} "${PROJECT_SOURCE_DIR}/cmake/embed_files_script.cmake"
    COMMENT "Embedding ${target}"
    VERBATIM)
  add_library(${target} STATIC "${out_cpp}")
  target_include_directories(${target} PRIVATE "${PROJECT_SOURCE_DIR}/src")
endfunction()
