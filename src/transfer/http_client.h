#pragma once
// Small blocking HTTP calls over libcurl for the worker's studio routes (register-request, poll,
// multipart result upload): one request, the whole answer in memory, a deadline. Blocking: call
// on a worker thread, never the I/O thread. Thread-safe (no shared state).

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace sw::transfer {

struct HttpCallResult {
  long status = 0;
  std::string body;
};

// One part of a multipart/form-data body.
struct FormField {
  std::string name;
  std::string data;
  std::optional<std::string> filename;      // makes it a file part
  std::optional<std::string> content_type;  // of the part
};

struct HttpCall {
  std::string method = "GET";  // GET, POST, PUT, DELETE
  std::string url;
  std::optional<std::string> bearer;  // Authorization: Bearer …
  std::string body;                   // ignored when `form` is set
  std::string content_type = "application/json";
  std::vector<FormField> form;  // non-empty: a multipart/form-data POST
  std::chrono::milliseconds timeout{60000};
  std::optional<std::string> ca_file;  // PEM, for https to a studio with a private CA
  std::uint64_t max_response_bytes = 16ull << 20;
  std::string user_agent = std::string("studio-worker/") + SW_VERSION;
  // When set, 2xx body bytes are handed over as they arrive (SSE) instead of collected; returning
  // false aborts the transfer (Cancelled). A non-2xx body is still collected for the error.
  std::function<bool(std::string_view chunk)> on_body;
  // When set, polled from the calling thread while the call waits (libcurl's progress callback:
  // at least about once a second, even while no byte moves); true aborts the call (Cancelled).
  // Lets a daemon that stops end a held or slow call at once instead of waiting out `timeout`.
  std::function<bool()> cancelled;
};

// Any HTTP answer is a value (check .status); transport failures, timeouts and oversize answers
// are errors (Unavailable / Timeout / InvalidArgument) whose message names the host and cause;
// a call ended by `cancelled` is a Cancelled error.
Result<HttpCallResult> http_call(const HttpCall& call);

}  // namespace sw::transfer
