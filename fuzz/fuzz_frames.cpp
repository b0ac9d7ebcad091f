// The frame decoders take whatever a peer sends: they must answer with a value or an error, never
// crash, and whatever they accept must encode back to something they accept as the same frame.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto frame = sw::proto::decode_worker_frame(text)) {
    auto again = sw::proto::decode_worker_frame(sw::proto::encode(*frame));
    if (!again || !(*again == *frame)) std::abort();
  }
  if (auto frame = sw::proto::decode_studio_frame(text)) {
    auto again = sw::proto::decode_studio_frame(sw::proto::encode(*frame));
    if (!again || !(*again == *frame)) std::abort();
  }
  return 0;
}
