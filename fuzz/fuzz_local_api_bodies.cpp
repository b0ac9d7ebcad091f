// The worker's local API bodies as its routes read them: the generation routes (/image,
// /v1/chat/completions, /tts, /stt, /video; src/worker/local_bodies.h), PUT /daemon/config
// (apply_editable_config) and the models.json catalogue the API serves from. Any text must give
// a value or an error, never a crash (issue 16: deep nesting overflowed the stack); an accepted
// task must round-trip through the protocol codec.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/codec.h"
#include "worker/config.h"
#include "worker/local_bodies.h"
#include "worker/local_catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto kind :
       {sw::proto::TaskKind::Image, sw::proto::TaskKind::Llm, sw::proto::TaskKind::AudioStt,
        sw::proto::TaskKind::AudioTts, sw::proto::TaskKind::Video}) {
    if (auto body = sw::worker::read_generation_body(text, kind, 1 << 20)) {
      if (body->task.kind() != kind) std::abort();
      auto again = sw::proto::decode_task(sw::proto::encode(body->task));
      if (!again || !(*again == body->task)) std::abort();
    }
  }
  (void)sw::worker::apply_editable_config(sw::worker::WorkerConfig{}, text);
  (void)sw::worker::parse_local_catalog(text, "models.json");
  return 0;
}
