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

}  // namespace sw::transfer
