#pragma once
// Whitespace word splitting shared by the synthetic LLM (token counts) and TTS (one tone per word).

#include <string_view>
#include <vector>

namespace sw::engines::synthetic {

// Views into `text`, in order; `word.data() - text.data()` is a word's byte offset.
inline std::vector<std::string_view> split_words(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t start = text.find_first_not_of(kSpace, pos);
    if (start == std::string_view::npos) break;
    std::size_t end = text.find_first_of(kSpace, start);
    if (end == std::string_view::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

}  // namespace sw::engines::synthetic
