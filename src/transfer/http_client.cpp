#include "transfer/http_client.h"

#include "transfer/curl_handle.h"
#include "transfer/url_policy.h"

namespace sw::transfer {
namespace {

struct MimeDeleter {
  void operator()(curl_mime* mime) const { curl().curl_mime_free(mime); }
};
using MimeHandle = std::unique_ptr<curl_mime, MimeDeleter>;

struct Sink {
  CURL* easy = nullptr;
  std::string body;
  std::uint64_t limit = 0;
  bool overflow = false;
  bool cancelled = false;
  const std::function<bool(std::string_view)>* on_body = nullptr;
};

size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t bytes = size * count;
  if (sink->on_body != nullptr && *sink->on_body) {
    long status = 0;
    curl().curl_easy_getinfo(sink->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      if (!(*sink->on_body)(std::string_view(data, bytes))) {
        sink->cancelled = true;
        return 0;
      }
      return bytes;
    }
  }
  if (sink->body.size() + bytes > sink->limit) {
    sink->overflow = true;
    return 0;  // aborts the transfer
  }
  sink->body.append(data, bytes);
  return bytes;
}

int check_cancelled(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancelled = static_cast<const std::function<bool()>*>(user);
  return (*cancelled)() ? 1 : 0;  // non-zero: CURLE_ABORTED_BY_CALLBACK
}

}  // namespace

Result<HttpCallResult> http_call(const HttpCall& call) {
  auto made = make_easy();
  if (!made) return fail(std::move(made).error());
  EasyHandle easy = std::move(*made);
  CURL* h = easy.get();
  Sink sink;
  sink.easy = h;
  sink.limit = call.max_response_bytes;
  sink.on_body = &call.on_body;
  curl().curl_easy_setopt(h, CURLOPT_URL, call.url.c_str());
  curl().curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl().curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(call.timeout.count()));
  curl().curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                          static_cast<long>(std::min<std::int64_t>(call.timeout.count(), 15000)));
  curl().curl_easy_setopt(h, CURLOPT_USERAGENT, call.user_agent.c_str());
  curl().curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
  curl().curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl().curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl().curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (call.ca_file) curl().curl_easy_setopt(h, CURLOPT_CAINFO, call.ca_file->c_str());
  if (call.cancelled) {
    if (call.cancelled()) {
      return fail(
          Error::make(Code::Cancelled, "{} {}: cancelled", call.method, redact_url(call.url)));
    }
    curl().curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl().curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, check_cancelled);
    curl().curl_easy_setopt(h, CURLOPT_XFERINFODATA, &call.cancelled);
  }

  SlistHandle headers;
  auto add_header = [&](const std::string& line) {
    headers.reset(curl().curl_slist_append(headers.release(), line.c_str()));
  };
  if (call.bearer) add_header("Authorization: Bearer " + *call.bearer);
  add_header("Expect:");  // no 100-continue round trip for the small bodies we send

  MimeHandle mime;
  if (!call.form.empty()) {
    mime.reset(curl().curl_mime_init(h));
    for (const auto& field : call.form) {
      curl_mimepart* part = curl().curl_mime_addpart(mime.get());
      curl().curl_mime_name(part, field.name.c_str());
      curl().curl_mime_data(part, field.data.data(), field.data.size());
      if (field.filename) curl().curl_mime_filename(part, field.filename->c_str());
      if (field.content_type) curl().curl_mime_type(part, field.content_type->c_str());
    }
    curl().curl_easy_setopt(h, CURLOPT_MIMEPOST, mime.get());
  } else if (call.method == "GET") {
    curl().curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    add_header("Content-Type: " + call.content_type);
    curl().curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    curl().curl_easy_setopt(h, CURLOPT_POSTFIELDS, call.body.data());
    curl().curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                            static_cast<curl_off_t>(call.body.size()));
  }
  curl().curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode rc = curl().curl_easy_perform(h);
  if (sink.overflow) {
    return fail(Error::invalid_argument("answer from {} exceeds {} bytes", redact_url(call.url),
                                        call.max_response_bytes));
  }
  if (sink.cancelled) {
    return fail(Error::make(Code::Cancelled, "{} {}: the reader stopped", call.method,
                            redact_url(call.url)));
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return fail(
        Error::make(Code::Cancelled, "{} {}: cancelled", call.method, redact_url(call.url)));
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return fail(Error::make(Code::Timeout, "{} {} timed out after {} ms", call.method,
                            redact_url(call.url), call.timeout.count()));
  }
  if (rc != CURLE_OK) {
    return fail(Error::unavailable("{} {} failed: {}", call.method, redact_url(call.url),
                                   curl().curl_easy_strerror(rc)));
  }
  HttpCallResult result;
  curl().curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &result.status);
  result.body = std::move(sink.body);
  return result;
}

}  // namespace sw::transfer
