#include "transfer/curl_handle.h"

#include <mutex>
#include <optional>

#include "common/log.h"

namespace sw::transfer {
namespace {

const log::Logger kLog("studio_worker::transfer");

// The SONAME libcurl4-openssl-dev links against.
constexpr const char* kLibrary = "libcurl.so.4";

CurlApi& process_table() {
  static CurlApi api;
  return api;
}

Status bind_all(const SharedLibrary& library, CurlApi& table) {
  Status bound;
  SW_CURL_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
  return bound;
}

Result<const CurlApi*> load() {
  auto library = SharedLibrary::open(kLibrary);
  if (!library) {
    return fail(
        Error::not_found("downloads and uploads are not available here: {} (install libcurl4)",
                         library.error().message));
  }
  CurlApi& api = process_table();
  if (auto bound = bind_all(*library, api); !bound) {
    return fail(
        Error::not_found("downloads and uploads are not available here: {} (install libcurl4, "
                         "7.83 or newer)",
                         bound.error().message));
  }
  if (const CURLcode rc = api.curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
    return fail(Error::unavailable("curl_global_init failed: {}", api.curl_easy_strerror(rc)));
  }
  library->keep_open();  // global state, and process_table() holds its functions for the process's
                         // life
  kLog.info("curl.loaded", {{"library", kLibrary}});
  return &api;
}

}  // namespace

Result<const CurlApi*> curl_api() {
  static std::mutex mutex;
  static std::optional<Result<const CurlApi*>> outcome;
  std::lock_guard lock(mutex);
  if (!outcome) outcome = load();
  return *outcome;
}

const CurlApi& curl() {
  return process_table();
}

Result<EasyHandle> make_easy() {
  SW_TRY(curl_api());
  EasyHandle easy(curl().curl_easy_init());
  if (!easy) return fail(Error::internal("curl_easy_init failed"));
  return easy;
}

}  // namespace sw::transfer
