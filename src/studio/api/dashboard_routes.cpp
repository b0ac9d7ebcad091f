#include "studio/api/dashboard_routes.h"

#include "studio/api/responses.h"

#include <string>

namespace sw::studio::dashboard {
namespace {

std::string_view content_type_of(std::string_view name) {
  const auto dot = name.rfind('.');
  const auto ext = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "json" || ext == "webmanifest") return "application/json";
  return "application/octet-stream";
}

void add_common_headers(net::HttpResponse& response) {
  response.headers.push_back({"content-security-policy", std::string(kContentSecurityPolicy)});
  response.headers.push_back({"x-content-type-options", "nosniff"});
  response.headers.push_back({"referrer-policy", "no-referrer"});
  response.headers.push_back({"x-frame-options", "DENY"});
  response.headers.push_back({"cross-origin-opener-policy", "same-origin"});
}

// Weak comparison (RFC 9110 §13.1.2): a W/ prefix on the sent tag does not matter.
bool etag_listed(const std::string* if_none_match, const std::string& etag) {
  if (if_none_match == nullptr) {
    return false;
  }
  return *if_none_match == "*" || if_none_match->find(etag) != std::string::npos;
}

}  // namespace

net::HttpResponse serve_file(const net::HttpRequest& request, std::string_view name) {
  const sw::EmbeddedFile* file = nullptr;
  for (const auto& candidate : embedded_files()) {
    if (candidate.path == name) {
      file = &candidate;
      break;
    }
  }
  if (file == nullptr) {
    auto missing = api::refuse(api::Refusal::NotFound, "no dashboard file " + std::string(name));
    add_common_headers(missing);
    return missing;
  }
  const bool gzip = request.accepts_encoding("gzip");
  const std::string etag = "\"" + std::string(file->sha256.substr(0, 32)) + (gzip ? "-gz\"" : "\"");
  net::HttpResponse response;
  response.content_type = std::string(content_type_of(file->path));
  add_common_headers(response);
  response.headers.push_back({"cache-control", "no-cache"});
  response.headers.push_back({"vary", "Accept-Encoding"});
  response.headers.push_back({"etag", etag});
  if (etag_listed(request.header("if-none-match"), etag)) {
    response.status = 304;
    return response;
  }
  if (gzip) {
    response.headers.push_back({"content-encoding", "gzip"});
    response.body = std::string(file->gzip);
  } else {
    response.body = std::string(file->bytes);
  }
  return response;
}

}  // namespace sw::studio::dashboard
