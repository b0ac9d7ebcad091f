# ASan + UBSan for the whole build: every target, tests included, so that a report anywhere fails CI.
if(SW_SANITIZE)
  set(_sw_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${_sw_san})
  add_link_options(-fsanitize=address,undefined)
endif()

# ThreadSanitizer for the concurrency tests (the `tsan` preset builds and runs only those).
option(SW_TSAN "Build with ThreadSanitizer" OFF)
if(SW_TSAN)
  # -Wno-tsan: GCC warns that Asio's std::atomic_thread_fence is not modelled by TSan.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()
