#pragma once
// Where the worker may download from (reference-worker.md §2.4): https anywhere, plain http only
// to loopback hosts (localhost, 127.0.0.0/8, ::1).

#include <string>
#include <string_view>

#include "common/error.h"

namespace sw::transfer {

// OK, or InvalidArgument naming the problem and the (redacted) URL.
Status check_download_url(std::string_view url);

// scheme://host[:port]/path without the query, fragment or user info, for logs and messages
// (presigned URLs carry credentials in the query). An unparsable URL becomes "<invalid URL>".
std::string redact_url(std::string_view url);

// The studio's base URL from config `api_base_url` (reference-worker.md §2): query and fragment
// dropped, a trailing `/graphics/api` and trailing slashes stripped; http or https (any case)
// only, a port 1–65535, no user name or password. Every studio route is then
// `<base>/graphics/api<path>`. Errors quote the URL and name the problem, not the setting (the
// caller knows which it is). Parsed with Boost.URL: no libcurl is loaded.
Result<std::string> studio_base_url(std::string_view api_base_url);

// The session URL (§1.1): http→ws, https→wss (ws/wss kept), trailing `/` trimmed, `/graphics/api`
// appended unless the path already ends with it, then `/workers/<worker_id>/connect`.
Result<std::string> studio_websocket_url(std::string_view api_base_url,
                                         std::string_view worker_id);

}  // namespace sw::transfer
