#pragma once
// Plain HTTP request/response values shared by the server and its handlers, so that no module but
// net/ includes Beast. Header names are stored lowercase.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace sw::net {

struct Header {
  std::string name;  // lowercase
  std::string value;
};

class BodySink;

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string target;  // as sent: path plus query
  std::string path;    // target without the query
  std::string query;   // after '?', raw
  std::vector<Header> headers;
  std::string body;
  // Set instead of `body` when the handler's admission streamed the body into this sink.
  std::shared_ptr<BodySink> body_sink;
  std::string remote_address;  // the peer's IP, for rate limits
  std::uint16_t remote_port = 0;  // the peer's TCP port (0: unknown)

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // The percent-decoded value of query parameter `name`, if present.
  std::optional<std::string> query_param(std::string_view name) const;
  // The token of an `Authorization: Bearer <token>` header, if present.
  std::optional<std::string_view> bearer_token() const;
  // Whether Accept-Encoding lists `coding` (or "*") with a q-value above 0 (RFC 9110 §12.5.3);
  // false without the header. Every Accept-Encoding header counts.
  bool accepts_encoding(std::string_view coding) const;
};

// The percent-decoding of one URL path segment (RFC 3986 §2.1: "%3A" is ":"), or nullopt when
// it holds a malformed escape. Route parameters are compared and used decoded.
std::optional<std::string> decode_path_segment(std::string_view segment);

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;
  // When set, the body is this file's contents (streamed from disk), not `body`.
  std::optional<std::filesystem::path> file;

  static HttpResponse json(int status, std::string body);
  static HttpResponse text(int status, std::string body, std::string content_type = "text/plain");
  // {"error":"<code>","message":"<message>"}
  static HttpResponse error(int status, std::string_view code, std::string_view message);
};

// Takes a request body as it arrives, for routes whose bodies are too large to buffer (result
// uploads): the server hands over each run of bytes as it reads them and holds none itself.
// Loop-thread only, like the server.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // The next bytes of the body, in order; `bytes` is valid only during the call. A response
  // stops the read: the server sends it and closes the connection (the sink is then dropped).
  virtual std::optional<HttpResponse> write(std::string_view bytes) = 0;
};

// One part of a multipart/form-data body. `data` views into the request body.
struct FormPart {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;  // empty when the part has none
  std::string_view data;
};

// The headers of one multipart part, as FormDataReader reports them.
struct FormPartHead {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;  // empty when the part has none
};

// An incremental multipart/form-data parser (RFC 7578 over RFC 2046 §5.1): bytes go in as they
// arrive, in pieces of any size, and each part comes out as begin, data (in one or more runs),
// end. Memory is bounded whatever the body: a part's headers are held until they end (at most
// kMaxPartHeaderBytes) and at most one delimiter's length of data is held back. Errors are
// InvalidArgument and name the problem; after one, feed() only repeats it.
// Not thread-safe; one per body.
class FormDataReader {
 public:
  static constexpr std::size_t kMaxPartHeaderBytes = 16 * 1024;

  class Events {
   public:
    virtual ~Events() = default;
    // An error from any of these stops the parse and is what feed() returns.
    virtual Status on_part_begin(const FormPartHead& head) = 0;
    // `bytes` views into what was fed (or, across feeds, into the reader): use it before returning.
    virtual Status on_part_data(std::string_view bytes) = 0;
    virtual Status on_part_end() = 0;
  };

  // Reads the boundary from the request's Content-Type.
  static Result<FormDataReader> create(std::string_view content_type);

  Status feed(std::string_view bytes, Events& events);
  // At the end of the body: an error unless the closing delimiter was seen.
  Status finish() const;
  // The closing delimiter was seen; whatever follows (an epilogue) is ignored.
  bool done() const { return state_ == State::Done; }

 private:
  enum class State { Preamble, DelimiterLine, Headers, Data, Done, Failed };
  explicit FormDataReader(std::string boundary);
  // Scans `bytes` for the separator (CRLF "--" boundary); data before it goes to `events` when in
  // a part. Returns how many bytes were used; sets `found` when the separator ended in them.
  Result<std::size_t> scan(std::string_view bytes, Events* events, bool& found);
  Status fail_with(Error error);

  std::string separator_;  // "\r\n--" + boundary
  State state_ = State::Preamble;
  std::string held_;  // a possible start of the separator, or the delimiter line, or headers
  std::string part_name_;
  std::optional<Error> error_;
};

// Splits a whole multipart/form-data body (FormDataReader in one feed). The parts' data views
// into `body`.
Result<std::vector<FormPart>> parse_form_data(std::string_view content_type, std::string_view body);

}  // namespace sw::net
