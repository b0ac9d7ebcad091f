#include "net/http_types.h"

#include <boost/url/decode_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
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

std::optional<std::string> decode_path_segment(std::string_view segment) {
  auto encoded = boost::urls::make_pct_string_view(segment);
  if (!encoded) {
    return std::nullopt;
  }
  const auto decoded = **encoded;
  return std::string(decoded.begin(), decoded.end());
}

bool HttpRequest::accepts_encoding(std::string_view coding) const {
  bool listed = false;
  bool refused = false;
  for (const auto& h : headers) {
    if (!iequals(h.name, "accept-encoding")) {
      continue;
    }
    // RFC 9110 §12.5.3: a comma-separated list of `coding *( OWS ";" OWS param )`, where only
    // the weight `q=<qvalue>` means anything. Read here rather than with Beast's list parsers:
    // this file is compiled on its own into the fuzz targets, without Beast's compiled part
    // (and Beast 1.81's ext_list gives an element without parameters the previous element's).
    std::string_view rest = h.value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const auto element = trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      auto params = element;
      const auto semicolon = params.find(';');
      const auto name = trim(params.substr(0, semicolon));
      if (name.empty() || (!iequals(name, coding) && name != "*")) {
        continue;
      }
      bool zero = false;
      params = semicolon == std::string_view::npos ? std::string_view() : params.substr(semicolon);
      while (!params.empty()) {
        params.remove_prefix(1);  // the ';'
        const auto next = params.find(';');
        const auto param = trim(params.substr(0, next));
        params = next == std::string_view::npos ? std::string_view() : params.substr(next);
        const auto equals = param.find('=');
        if (equals != std::string_view::npos && iequals(trim(param.substr(0, equals)), "q")) {
          const auto q = trim(param.substr(equals + 1));
          zero = q.find_first_not_of("0.") == std::string_view::npos;
        }
      }
      // An entry naming the coding wins over "*".
      if (iequals(name, coding)) {
        (zero ? refused : listed) = true;
      } else if (!zero) {
        listed = true;
      }
    }
  }
  return listed && !refused;
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

Result<FormDataReader> FormDataReader::create(std::string_view content_type) {
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
  return FormDataReader(std::move(boundary));
}

// The body is read as if it began with CRLF, so that a first delimiter at its very start and one
// after a preamble are the same separator.
FormDataReader::FormDataReader(std::string boundary)
    : separator_("\r\n--" + boundary), held_("\r\n") {}

Status FormDataReader::fail_with(Error error) {
  state_ = State::Failed;
  held_.clear();
  error_ = error;
  return fail(std::move(error));
}

Result<std::size_t> FormDataReader::scan(std::string_view bytes, Events* events, bool& found) {
  const std::string_view sep = separator_;
  found = false;
  const auto emit = [&](std::string_view data) -> Status {
    if (events != nullptr && !data.empty()) {
      return events->on_part_data(data);
    }
    return {};
  };
  if (!held_.empty()) {
    // Held bytes may start the separator, completed by the first bytes of this feed.
    const std::size_t held = held_.size();
    const std::string window = held_ + std::string(bytes.substr(0, sep.size() - 1));
    for (std::size_t i = 0; i < held; ++i) {
      const std::size_t n = std::min(window.size() - i, sep.size());
      if (std::string_view(window).substr(i, n) != sep.substr(0, n)) {
        continue;
      }
      SW_TRY(emit(std::string_view(window).substr(0, i)));
      if (n == sep.size()) {
        held_.clear();
        found = true;
        return i + sep.size() - held;
      }
      held_ = window.substr(i);  // still only a possible start; this feed is used up
      return bytes.size();
    }
    const std::string data = std::exchange(held_, std::string());
    SW_TRY(emit(data));
  }
  const std::boyer_moore_horspool_searcher searcher(sep.begin(), sep.end());
  const auto it = std::search(bytes.begin(), bytes.end(), searcher);
  if (it != bytes.end()) {
    const auto at = static_cast<std::size_t>(it - bytes.begin());
    SW_TRY(emit(bytes.substr(0, at)));
    found = true;
    return at + sep.size();
  }
  // Hold back the longest tail that could be the start of a separator.
  std::size_t keep = std::min(sep.size() - 1, bytes.size());
  while (keep > 0 && bytes.substr(bytes.size() - keep) != sep.substr(0, keep)) {
    --keep;
  }
  SW_TRY(emit(bytes.substr(0, bytes.size() - keep)));
  held_ = std::string(bytes.substr(bytes.size() - keep));
  return bytes.size();
}

namespace {

Result<FormPartHead> parse_part_head(std::string_view headers) {
  FormPartHead part;
  bool has_disposition = false;
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
        if (iequals(key, "name")) {
          part.name = std::move(param);
        } else if (iequals(key, "filename")) {
          part.filename = std::move(param);
        }
      }
    } else if (iequals(name, "content-type")) {
      part.content_type = std::string(value);
    }
  }
  if (!has_disposition || part.name.empty()) {
    return fail(Error::invalid_argument("multipart body: a part has no form-data name"));
  }
  return part;
}

}  // namespace

Status FormDataReader::feed(std::string_view bytes, Events& events) {
  while (!bytes.empty()) {
    switch (state_) {
      case State::Failed: return fail(*error_);
      case State::Done: return {};  // an epilogue is ignored
      case State::Preamble:
      case State::Data: {
        bool found = false;
        auto used = scan(bytes, state_ == State::Data ? &events : nullptr, found);
        if (!used) {
          return fail_with(std::move(used).error());
        }
        bytes.remove_prefix(*used);
        if (found) {
          if (state_ == State::Data) {
            if (auto ended = events.on_part_end(); !ended) {
              return fail_with(std::move(ended).error());
            }
          }
          state_ = State::DelimiterLine;
        }
        break;
      }
      case State::DelimiterLine: {
        // "--" closes the body; otherwise transport padding, then CRLF.
        held_.push_back(bytes.front());
        bytes.remove_prefix(1);
        if (held_.size() >= 2 && held_.starts_with("--")) {
          held_.clear();
          state_ = State::Done;
          break;
        }
        if (held_ == "-") {
          break;
        }
        const auto text = std::string_view(held_);
        const auto padding = text.find_first_not_of(" \t");
        if (padding == std::string_view::npos) {
          if (held_.size() > 1024) {
            return fail_with(Error::invalid_argument("multipart body: malformed delimiter line"));
          }
          break;
        }
        if (text[padding] != '\r' || (padding + 1 < text.size() && text[padding + 1] != '\n')) {
          return fail_with(Error::invalid_argument("multipart body: malformed delimiter line"));
        }
        if (padding + 1 < text.size()) {
          held_.clear();
          state_ = State::Headers;
        }
        break;
      }
      case State::Headers: {
        const std::size_t before = held_.size();
        const std::size_t room = kMaxPartHeaderBytes + 4 - std::min(before, kMaxPartHeaderBytes);
        held_.append(bytes.substr(0, room));
        const auto end = held_.find("\r\n\r\n", before < 3 ? 0 : before - 3);
        if (end == std::string::npos) {
          if (held_.size() >= kMaxPartHeaderBytes + 4) {
            return fail_with(Error::invalid_argument("multipart body: part headers exceed {} bytes",
                                                     kMaxPartHeaderBytes));
          }
          bytes.remove_prefix(std::min(room, bytes.size()));
          break;
        }
        bytes.remove_prefix(end + 4 - before);
        auto head = parse_part_head(std::string_view(held_).substr(0, end));
        if (!head) {
          return fail_with(std::move(head).error());
        }
        held_.clear();
        part_name_ = head->name;
        state_ = State::Data;
        if (auto begun = events.on_part_begin(*head); !begun) {
          return fail_with(std::move(begun).error());
        }
        break;
      }
    }
  }
  return state_ == State::Failed ? fail(*error_) : Status{};
}

Status FormDataReader::finish() const {
  switch (state_) {
    case State::Done: return {};
    case State::Failed: return fail(*error_);
    case State::Preamble:
      return fail(Error::invalid_argument("multipart body: no boundary delimiter found"));
    case State::DelimiterLine:
      return fail(Error::invalid_argument("multipart body: malformed delimiter line"));
    case State::Headers:
      return fail(Error::invalid_argument("multipart body: part headers are not terminated"));
    case State::Data: break;
  }
  return fail(Error::invalid_argument(
      "multipart body: part \"{}\" is not closed by a boundary (truncated upload?)", part_name_));
}

namespace {

// Collects whole parts; in one feed every part's data arrives as one run of the body.
class PartCollector : public FormDataReader::Events {
 public:
  Status on_part_begin(const FormPartHead& head) override {
    parts.push_back(FormPart{head.name, head.filename, head.content_type, {}});
    return {};
  }
  Status on_part_data(std::string_view bytes) override {
    auto& data = parts.back().data;
    if (data.empty()) {
      data = bytes;
    } else if (data.data() + data.size() == bytes.data()) {
      data = std::string_view(data.data(), data.size() + bytes.size());
    } else {
      return fail(Error::internal("multipart body: a part's data is not contiguous"));
    }
    return {};
  }
  Status on_part_end() override { return {}; }

  std::vector<FormPart> parts;
};

}  // namespace

Result<std::vector<FormPart>> parse_form_data(std::string_view content_type,
                                              std::string_view body) {
  auto reader = FormDataReader::create(content_type);
  if (!reader) {
    return fail(std::move(reader).error());
  }
  PartCollector collector;
  SW_TRY(reader->feed(body, collector));
  SW_TRY(reader->finish());
  return std::move(collector.parts);
}

}  // namespace sw::net
