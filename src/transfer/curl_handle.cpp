#include "transfer/curl_handle.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace sw::transfer {

void ensure_curl_initialised() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      std::fprintf(stderr, "fatal: curl_global_init failed\n");
      std::abort();
    }
  });
}

EasyHandle make_easy() {
  ensure_curl_initialised();
  return EasyHandle(curl_easy_init());
}

}  // namespace sw::transfer
