#include "transfer/url_policy.h"

#include <algorithm>
#include <cctype>

#include "common/strings.h"
#include "transfer/curl_handle.h"

namespace sw::transfer {
namespace {

struct ParsedUrl {
  std::string scheme;
  std::string host;
  std::string port;
  std::string path;
};

struct CurlString {
  char* text = nullptr;
  ~CurlString() { curl_free(text); }
};

Result<ParsedUrl> parse(std::string_view url) {
  ensure_curl_initialised();
  UrlHandle handle(curl_url());
  if (!handle) return fail(Error::internal("curl_url failed"));
  std::string text(url);
  if (curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return fail(Error::invalid_argument("not a valid absolute URL"));
  }
  ParsedUrl parsed;
  auto get = [&](CURLUPart part, std::string& out) {
    CurlString value;
    if (curl_url_get(handle.get(), part, &value.text, 0) == CURLUE_OK && value.text)
      out = value.text;
  };
  get(CURLUPART_SCHEME, parsed.scheme);
  get(CURLUPART_HOST, parsed.host);
  get(CURLUPART_PORT, parsed.port);
  get(CURLUPART_PATH, parsed.path);
  parsed.scheme = ascii_lower(std::move(parsed.scheme));
  parsed.host = ascii_lower(std::move(parsed.host));
  return parsed;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "[::1]" || host == "::1") return true;
  // 127.0.0.0/8 as a dotted quad; curl has already normalised numeric forms.
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace

std::string redact_url(std::string_view url) {
  auto parsed = parse(url);
  if (!parsed) return "<invalid URL>";
  std::string out = parsed->scheme + "://" + parsed->host;
  if (!parsed->port.empty()) out += ":" + parsed->port;
  out += parsed->path;
  return out;
}

Status check_download_url(std::string_view url) {
  auto parsed = parse(url);
  if (!parsed) {
    return fail(
        Error::invalid_argument("download URL is not a valid absolute URL: {}", redact_url(url)));
  }
  if (parsed->scheme == "https") return {};
  if (parsed->scheme == "http" && is_loopback_host(parsed->host)) return {};
  if (parsed->scheme == "http") {
    return fail(Error::invalid_argument(
        "download URL must be https (plain http is allowed only to loopback hosts): {}",
        redact_url(url)));
  }
  return fail(Error::invalid_argument("download URL scheme \"{}\" is not allowed (https only): {}",
                                      parsed->scheme, redact_url(url)));
}

}  // namespace sw::transfer
