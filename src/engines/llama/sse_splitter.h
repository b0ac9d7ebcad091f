#pragma once
// Splits a text/event-stream (the stream llama-server answers with when `"stream": true`) into
// each event's data, as the WHATWG HTML "event stream interpretation" defines it: lines end with
// CRLF, LF or CR; a blank line ends an event; a line starting with ':' is a comment (keepalive);
// an event's `data:` lines are joined with '\n' (one leading space after the colon dropped); fields
// other than `data` (event, id, retry) are ignored; an event with no data is not dispatched; an
// unterminated event at the end of the stream is discarded (the spec's rule).
//
// Bytes may be cut anywhere between feed() calls, even inside a CRLF. Not thread-safe: one
// splitter per stream.

#include <functional>
#include <string>
#include <string_view>

namespace sw::engines::llama {

class SseSplitter {
 public:
  // Feeds the next bytes; `on_data` gets each complete event's data (valid only during the call)
  // and returns false to stop. Returns false when `on_data` did (the rest is not parsed).
  bool feed(std::string_view bytes, const std::function<bool(std::string_view data)>& on_data);

 private:
  bool line(std::string_view text, const std::function<bool(std::string_view)>& on_data);

  std::string pending_;    // the current line so far
  std::string data_;       // the current event's data lines, each followed by '\n'
  bool has_data_ = false;  // a data field was seen in the current event
  bool after_cr_ = false;  // the last byte was CR: a following LF belongs to it
};

}  // namespace sw::engines::llama
