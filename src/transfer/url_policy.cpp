#include "transfer/url_policy.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>

#include "common/strings.h"
#include "transfer/curl_handle.h"

namespace sw::transfer {
namespace {

struct ParsedUrl {
  bool has_userinfo = false;  // parse_plain only
  std::string scheme;
  std::string host;
  std::string port;
  std::string path;
};

struct CurlString {
  char* text = nullptr;
  ~CurlString() { curl().curl_free(text); }
};

// A download URL is parsed by libcurl, the parser of the client that will fetch it, so the policy
// and the fetch agree on the host (curl normalises numeric forms such as 127.1 or 0x7f.0.0.1).
Result<ParsedUrl> parse_for_download(std::string_view url) {
  SW_TRY(curl_api());
  UrlHandle handle(curl().curl_url());
  if (!handle) return fail(Error::internal("curl_url failed"));
  std::string text(url);
  if (curl().curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return fail(Error::invalid_argument("not a valid absolute URL"));
  }
  ParsedUrl parsed;
  auto get = [&](CURLUPart part, std::string& out) {
    CurlString value;
    if (curl().curl_url_get(handle.get(), part, &value.text, 0) == CURLUE_OK && value.text)
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

// The studio's URL and a URL named in a log line are parsed by Boost.URL (RFC 3986), as the
// session's WebSocket client parses them: a worker starts and connects without loading libcurl.
Result<ParsedUrl> parse_plain(std::string_view url) {
  auto view = boost::urls::parse_uri(url);
  if (!view) return fail(Error::invalid_argument("not a valid absolute URL"));
  if (view->has_port()) {
    // RFC 3986 allows any digits; a TCP port is 1–65535 (curl refused the rest too).
    const auto port = view->port();
    if (!port.empty() && (port.size() > 5 || std::stoul(std::string(port)) == 0 ||
                          std::stoul(std::string(port)) > 65535)) {
      return fail(Error::invalid_argument("port {} is not a TCP port (1 to 65535)", port));
    }
  }
  ParsedUrl parsed;
  parsed.has_userinfo = view->has_userinfo();
  parsed.scheme = ascii_lower(std::string(view->scheme()));
  parsed.host = ascii_lower(std::string(view->encoded_host()));
  parsed.port = std::string(view->port());
  parsed.path = std::string(view->encoded_path());
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

std::string strip_trailing_slashes(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

std::string authority(const ParsedUrl& url) {
  std::string out = url.host;
  if (!url.port.empty()) out += ":" + url.port;
  return out;
}

constexpr std::string_view kApiSuffix = "/graphics/api";

// The studio's URL as an operator wrote it: the errors quote it (it is the operator's own
// setting), at most 200 bytes of it.
Result<ParsedUrl> parse_studio(std::string_view url) {
  // A password before an `@` is cut out even when the rest does not parse.
  std::string shown(url.substr(0, 200));
  if (const auto start = shown.find("://"); start != std::string::npos) {
    const auto end = shown.find_first_of("/?#", start + 3);
    const auto at = shown.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at > start) shown.replace(start + 3, at - start - 3, "…");
  }
  const std::string quoted = fmt::format("\"{}{}\"", shown, url.size() > 200 ? "…" : "");
  auto parsed = parse_plain(url);
  if (!parsed) {
    return fail(Error::invalid_argument("{} is not a valid absolute URL: {}", quoted,
                                        parsed.error().message));
  }
  if (parsed->host.empty()) return fail(Error::invalid_argument("{} has no host", quoted));
  if (parsed->has_userinfo) {
    return fail(Error::invalid_argument(
        "{} carries a user name or password: the worker signs in with its own token; leave "
        "them out",
        redact_url(url)));
  }
  return parsed;
}

}  // namespace

Result<std::string> studio_base_url(std::string_view api_base_url) {
  auto parsed = parse_studio(api_base_url);
  if (!parsed) return fail(std::move(parsed).error());
  if (parsed->scheme != "http" && parsed->scheme != "https") {
    return fail(Error::invalid_argument("must be http or https, not \"{}\"", parsed->scheme));
  }
  std::string path = strip_trailing_slashes(parsed->path);
  if (path.ends_with(kApiSuffix)) path.resize(path.size() - kApiSuffix.size());
  path = strip_trailing_slashes(std::move(path));
  return parsed->scheme + "://" + authority(*parsed) + path;
}

Result<std::string> studio_websocket_url(std::string_view api_base_url,
                                         std::string_view worker_id) {
  auto parsed = parse_studio(api_base_url);
  if (!parsed) return fail(std::move(parsed).error());
  std::string scheme;
  if (parsed->scheme == "http" || parsed->scheme == "ws") {
    scheme = "ws";
  } else if (parsed->scheme == "https" || parsed->scheme == "wss") {
    scheme = "wss";
  } else {
    return fail(Error::invalid_argument(
        "scheme \"{}\" cannot carry a session (use http, https, ws or wss)", parsed->scheme));
  }
  if (worker_id.empty() || worker_id.find_first_of("/?#% ") != std::string_view::npos) {
    return fail(Error::invalid_argument("worker id \"{}\" cannot be used in a URL", worker_id));
  }
  std::string path = strip_trailing_slashes(parsed->path);
  if (!path.ends_with(kApiSuffix)) path += kApiSuffix;
  return fmt::format("{}://{}{}/workers/{}/connect", scheme, authority(*parsed), path, worker_id);
}

std::string redact_url(std::string_view url) {
  auto parsed = parse_plain(url);
  if (!parsed) return "<invalid URL>";
  std::string out = parsed->scheme + "://" + parsed->host;
  if (!parsed->port.empty()) out += ":" + parsed->port;
  out += parsed->path;
  return out;
}

Status check_download_url(std::string_view url) {
  auto parsed = parse_for_download(url);
  if (!parsed && parsed.error().code != Code::InvalidArgument) return fail(parsed.error());
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
