# Warning set shared by every first-party target (house style C.2 §14).
add_library(sw_warnings INTERFACE)
target_compile_options(sw_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  $<$<BOOL:${SW_WERROR}>:-Werror>)
