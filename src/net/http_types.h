#pragma once
// Plain HTTP request/response values shared by the server and its handlers, so that no module but
// net/ includes Beast. Header names are stored lowercase.

#include <cstdint>
#include <filesystem>
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

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string target;  // as sent: path plus query
  std::string path;    // target without the query
  std::string query;   // after '?', raw
  std::vector<Header> headers;
  std::string body;
  std::string remote_address;  // the peer's IP, for rate limits

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // The percent-decoded value of query parameter `name`, if present.
  std::optional<std::string> query_param(std::string_view name) const;
  // The token of an `Authorization: Bearer <token>` header, if present.
  std::optional<std::string_view> bearer_token() const;
};

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

// One part of a multipart/form-data body; views into the request body.
struct FormPart {
  std::string_view name;
  std::optional<std::string_view> filename;
  std::string_view content_type;  // empty when the part has none
  std::string_view data;
};

// Splits a multipart/form-data body by the boundary named in `content_type`. Errors are
// InvalidArgument and name the problem (no boundary, a part without a name, no closing
// delimiter, …). The parts view into `body`.
Result<std::vector<FormPart>> parse_form_data(std::string_view content_type, std::string_view body);

}  // namespace sw::net
