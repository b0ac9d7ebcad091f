# Script mode, run by the man_pages target (cmake/Packaging.cmake): writes OUT_DIR/NAME.1.gz.
# help2man makes the page from PROGRAM's --help and --version; every subcommand's --help (found
# by walking the "Subcommands:" lists of CLI11's help, nested ones included) goes into a COMMANDS
# section through help2man's --include, so a new subcommand appears with no change here.
# SECTIONS names a hand-written help2man include file (packaging/man/NAME.h2m) with what --help
# does not say: EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO.
#   cmake -DPROGRAM=<built binary> -DNAME=<program name> -DHELP2MAN=<path> -DGZIP=<path>
#         -DOUT_DIR=<dir> -DSECTIONS=<file.h2m> -P man_page_script.cmake

# The program is run by its name through PATH, so that its usage lines say `studio-server ...`,
# not the build directory's path.
get_filename_component(program_dir "${PROGRAM}" DIRECTORY)
set(ENV{PATH} "${program_dir}:$ENV{PATH}")
# No log filter or format from the builder's environment in the help text.
unset(ENV{STUDIO_WORKER_LOG})

function(help_of words out)
  execute_process(COMMAND ${NAME} ${words} --help
                  OUTPUT_VARIABLE text ERROR_VARIABLE errors RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " shown "${words}")
    message(FATAL_ERROR "${NAME} ${shown} --help exited ${rc}: ${errors}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The subcommand names listed under "Subcommands:" in a help text.
function(subcommands_in text out)
  set(names "")
  set(in_list FALSE)
  string(REPLACE "\n" ";" lines "${text}")
  foreach(line IN LISTS lines)
    if(line STREQUAL "Subcommands:")
      set(in_list TRUE)
    elseif(in_list AND line MATCHES "^  ([a-z][a-z0-9-]*)( |$)")
      list(APPEND names "${CMAKE_MATCH_1}")
    elseif(in_list AND NOT line MATCHES "^ ")
      set(in_list FALSE)
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

# Text as roff inside .nf/.fi: backslashes escaped, a leading dot or quote neutralised.
function(as_roff text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

set(commands "")
function(describe words)
  help_of("${words}" text)
  if(words)
    string(REPLACE ";" " " title "${NAME} ${words}")
    as_roff("${text}" body)
    string(APPEND commands ".SS \"${title}\"\n.nf\n${body}\n.fi\n")
  endif()
  subcommands_in("${text}" children)
  foreach(child IN LISTS children)
    set(child_words ${words} ${child})
    describe("${child_words}")
  endforeach()
  set(commands "${commands}" PARENT_SCOPE)
endfunction()
describe("")
if(commands STREQUAL "")
  message(FATAL_ERROR "${NAME} --help lists no subcommands")
endif()

# The NAME line: the first line of --help after "<program>: ".
help_of("" top)
string(REGEX MATCH "^[^\n]*" first_line "${top}")
string(REGEX REPLACE "^${NAME}: *" "" summary "${first_line}")

file(MAKE_DIRECTORY "${OUT_DIR}")
set(include_file "${OUT_DIR}/${NAME}.h2m")
file(READ "${SECTIONS}" sections)
file(WRITE "${include_file}" "[COMMANDS]\n${commands}\n${sections}")
set(page "${OUT_DIR}/${NAME}.1")
execute_process(
  COMMAND "${HELP2MAN}" --locale=C.UTF-8 --no-info --section=1 "--name=${summary}" "--include=${include_file}"
          "--output=${page}" ${NAME}
  RESULT_VARIABLE rc ERROR_VARIABLE errors)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man ${NAME} exited ${rc}: ${errors}")
endif()
# The help texts hold UTF-8 (arrows, ellipses): say so, for man's preconv in any locale.
file(READ "${page}" roff)
file(WRITE "${page}" ".\\\" -*- coding: UTF-8 -*-\n${roff}")
# Debian installs man pages gzipped, without a name or time stamp in the header (-n).
execute_process(COMMAND "${GZIP}" -9nf "${page}" RESULT_VARIABLE rc ERROR_VARIABLE errors)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${page} exited ${rc}: ${errors}")
endif()
