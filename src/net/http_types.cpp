#include "net/http_types.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>

namespace sw::net {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// `key=value` parameters after the first `;` of a header value (RFC 7231 §3.1.1.1 and RFC 7578
// §4.2), with quoted-string values unquoted. Views into `value` except for unescaped quotes.
std::vector<std::pair<std::string_view, std::string>> header_params(std::string_view value) {
  std::vector<std::pair<std::string_view, std::string>> params;
  std::size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;  // past ';'
    const auto eq = value.find('=', i);
    if (eq == std::string_view::npos) {
      break;
    }
    const auto key = trim(value.substr(i, eq - i));
    std::size_t j = eq + 1;
    while (j < value.size() && value[j] == ' ') {
      ++j;
    }
    std::string parsed;
    if (j < value.size() && value[j] == '"') {
      ++j;
      while (j < value.size() && value[j] != '"') {
        if (value[j] == '\\' && j + 1 < value.size()) {
          ++j;
        }
        parsed.push_back(value[j]);
        ++j;
      }
      i = value.find(';', j);
    } else {
      const auto end = value.find(';', j);
      parsed = std::string(trim(value.substr(j, end == std::string_view::npos ? end : end - j)));
      i = end;
    }
    params.emplace_back(key, std::move(parsed));
  }
  return params;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) {
      return &h.value;
    }
  }
  return nullptr;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  if (query.empty()) {
    return std::nullopt;
  }
  const std::string origin = "/?" + query;  // the url_view points into it
  auto parsed = boost::urls::parse_origin_form(origin);
  if (!parsed) {
    return std::nullopt;
  }
  for (const auto& param : parsed->params()) {
    if (param.key == name) {
      return std::string(param.value);
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> HttpRequest::bearer_token() const {
  const auto* value = header("authorization");
  if (value == nullptr) {
    return std::nullopt;
  }
  std::string_view text = *value;
  constexpr std::string_view kScheme = "bearer ";
  if (text.size() <= kScheme.size() || !iequals(text.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  return trim(text.substr(kScheme.size()));
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.content_type = std::move(content_type);
  return response;
}

HttpResponse HttpResponse::error(int status, std::string_view code, std::string_view message) {
  nlohmann::json body = {{"error", code}, {"message", message}};
  return json(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<std::vector<FormPart>> parse_form_data(std::string_view content_type,
                                              std::string_view body) {
  const auto semicolon = content_type.find(';');
  if (!iequals(trim(content_type.substr(0, semicolon)), "multipart/form-data")) {
    return fail(Error::invalid_argument("content-type must be multipart/form-data"));
  }
  std::string boundary;
  for (auto& [key, value] : header_params(content_type)) {
    if (iequals(key, "boundary")) {
      boundary = std::move(value);
    }
  }
  if (boundary.empty() || boundary.size() > 200) {
    return fail(Error::invalid_argument("multipart body: missing or invalid boundary"));
  }
  const std::string delimiter = "--" + boundary;
  const std::string separator = "\r\n" + delimiter;
  const std::boyer_moore_horspool_searcher searcher(separator.begin(), separator.end());

  // The first delimiter may open the body or follow a preamble.
  std::size_t pos;
  if (body.substr(0, delimiter.size()) == delimiter) {
    pos = delimiter.size();
  } else {
    const auto it = std::search(body.begin(), body.end(), searcher);
    if (it == body.end()) {
      return fail(Error::invalid_argument("multipart body: no boundary delimiter found"));
    }
    pos = static_cast<std::size_t>(it - body.begin()) + separator.size();
  }

  std::vector<FormPart> parts;
  while (true) {
    if (body.substr(pos, 2) == "--") {
      return parts;  // closing delimiter; an epilogue is ignored
    }
    // Transport padding, then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) {
      ++pos;
    }
    if (body.substr(pos, 2) != "\r\n") {
      return fail(Error::invalid_argument("multipart body: malformed delimiter line"));
    }
    pos += 2;
    const auto headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) {
      return fail(Error::invalid_argument("multipart body: part headers are not terminated"));
    }
    FormPart part;
    bool has_disposition = false;
    std::string_view headers = body.substr(pos, headers_end - pos);
    while (!headers.empty()) {
      const auto eol = headers.find("\r\n");
      const auto line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) {
        return fail(Error::invalid_argument("multipart body: malformed part header"));
      }
      const auto name = trim(line.substr(0, colon));
      const auto value = trim(line.substr(colon + 1));
      if (iequals(name, "content-disposition")) {
        has_disposition = true;
        for (auto& [key, param] : header_params(value)) {
          // The views must outlive `param`: point back into the body where possible.
          const auto at = value.find(param);
          const std::string_view in_body =
              at == std::string_view::npos ? std::string_view() : value.substr(at, param.size());
          if (iequals(key, "name")) {
            part.name = in_body;
          } else if (iequals(key, "filename")) {
            part.filename = in_body;
          }
        }
      } else if (iequals(name, "content-type")) {
        part.content_type = value;
      }
    }
    if (!has_disposition || part.name.empty()) {
      return fail(Error::invalid_argument("multipart body: a part has no form-data name"));
    }
    const std::size_t data_begin = headers_end + 4;
    const auto it =
        std::search(body.begin() + static_cast<std::ptrdiff_t>(data_begin), body.end(), searcher);
    if (it == body.end()) {
      return fail(Error::invalid_argument(
          "multipart body: part \"{}\" is not closed by a boundary (truncated upload?)",
          part.name));
    }
    const auto data_end = static_cast<std::size_t>(it - body.begin());
    part.data = body.substr(data_begin, data_end - data_begin);
    parts.push_back(part);
    pos = data_end + separator.size();
  }
}

}  // namespace sw::net
