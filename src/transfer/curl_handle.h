#pragma once
// RAII for libcurl handles (private to transfer/).

#include <curl/curl.h>

#include <memory>

namespace sw::transfer {

struct EasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using SlistHandle = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init exactly once per process, before the first handle (thread-safe).
void ensure_curl_initialised();
EasyHandle make_easy();

}  // namespace sw::transfer
