#pragma once
// libcurl, opened with dlopen on first use, and RAII for its handles (private to transfer/).
//
// An idle worker neither downloads nor uploads; linking libcurl put it and its dependency tree
// (GnuTLS, Kerberos, LDAP, SSH, RTMP, nghttp2: 4.3 MiB of resident pages, measured with
// `worker_bench --smaps`) into every worker at start (issue 19). The entry points keep the types of
// <curl/curl.h> (libcurl4-openssl-dev): the compiler checks each pointer against the header.
//
// Thread-safety: curl_api() may be called from any thread; the first call loads and runs
// curl_global_init. Handles follow libcurl's rules: one thread at a time per easy handle.

// The checking macros of curl/typecheck-gcc.h rewrite every `curl_easy_setopt(` token sequence,
// including the table's `api.curl_easy_setopt(`; calls through the table are checked by type only.
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <memory>

#include "common/error.h"
#include "common/shared_library.h"

namespace sw::transfer {

#define SW_CURL_ENTRY_POINTS(X)                                                                  \
  X(curl_global_init)                                                                            \
  X(curl_easy_init)                                                                              \
  X(curl_easy_cleanup) X(curl_easy_reset) X(curl_easy_setopt) X(curl_easy_getinfo)               \
      X(curl_easy_perform) X(curl_easy_strerror) X(curl_easy_header) X(curl_url) X(curl_url_set) \
          X(curl_url_get) X(curl_url_cleanup) X(curl_free) X(curl_slist_append)                  \
              X(curl_slist_free_all) X(curl_mime_init) X(curl_mime_free) X(curl_mime_addpart)    \
                  X(curl_mime_name) X(curl_mime_data) X(curl_mime_filename) X(curl_mime_type)

struct CurlApi {
  SW_CURL_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};

// libcurl.so.4 (Debian's libcurl4), loaded and curl_global_init'ed once per process. NotFound
// naming the loader's error and the package when it cannot be opened or lacks an entry point;
// Unavailable when curl_global_init fails. A failure is remembered: later calls return it.
Result<const CurlApi*> curl_api();

// The table, once curl_api() has succeeded in this process (every handle below comes from it).
const CurlApi& curl();

struct EasyDeleter {
  void operator()(CURL* handle) const { curl().curl_easy_cleanup(handle); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct UrlDeleter {
  void operator()(CURLU* url) const { curl().curl_url_cleanup(url); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl().curl_slist_free_all(list); }
};
using SlistHandle = std::unique_ptr<curl_slist, SlistDeleter>;

// A new easy handle: curl_api()'s error, or Internal when curl_easy_init fails.
Result<EasyHandle> make_easy();

}  // namespace sw::transfer
