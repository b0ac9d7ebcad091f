#include "engines/llama/sse_splitter.h"

namespace sw::engines::llama {

bool SseSplitter::feed(std::string_view bytes,
                       const std::function<bool(std::string_view)>& on_data) {
  for (const char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // the second half of a CRLF whose CR ended the line
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      const std::string text = std::move(pending_);
      pending_.clear();
      if (!line(text, on_data)) return false;
    } else {
      pending_.push_back(c);
    }
  }
  return true;
}

bool SseSplitter::line(std::string_view text,
                       const std::function<bool(std::string_view)>& on_data) {
  if (text.empty()) {  // dispatch
    if (!has_data_) return true;
    has_data_ = false;
    std::string data = std::move(data_);
    data_.clear();
    if (!data.empty() && data.back() == '\n') data.pop_back();
    return on_data(data);
  }
  if (text.front() == ':') return true;  // a comment: servers send these as keepalives
  const std::size_t colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  std::string_view value =
      colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
    has_data_ = true;
  }
  return true;
}

}  // namespace sw::engines::llama
