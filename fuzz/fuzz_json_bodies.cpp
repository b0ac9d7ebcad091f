// The JSON bodies the project decodes itself: client job tasks and model sources, registration
// requests and polls, chat completions and transcripts. Accepted values must round-trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/codec.h"

namespace {

template <class Decode>
void round_trip(std::string_view text, Decode decode) {
  if (auto value = decode(text)) {
    auto again = decode(sw::proto::encode(*value));
    if (!again) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  round_trip(text, sw::proto::decode_task);
  round_trip(text, sw::proto::decode_model_source);
  round_trip(text, sw::proto::decode_capabilities);
  round_trip(text, sw::proto::decode_register_request);
  round_trip(text, sw::proto::decode_registration_poll);
  round_trip(text, sw::proto::decode_chat_completion);
  round_trip(text, sw::proto::decode_transcript);
  return 0;
}
