// The studio's JSON request bodies as its routes read them (src/studio/request_bodies.h):
// POST /api/v1/models and PUT /api/v1/models/:id, POST /api/v1/jobs, POST /api/v1/keys,
// POST /api/v1/join-tokens and POST /api/v1/registration-requests/:id/reject. Any text must
// give a value or an error, never a crash (issue 16: deep nesting overflowed the stack);
// accepted values must re-encode to what the protocol codec decodes back to the same value.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/codec.h"
#include "studio/request_bodies.h"

namespace {

constexpr std::size_t kBodyLimit = 1 << 20;  // the studio's default json_body_limit

sw::Result<sw::proto::TaskKind> known_models(const std::string& id) {
  if (id == "synth-llm") return sw::proto::TaskKind::Llm;
  if (id == "synth-image") return sw::proto::TaskKind::Image;
  if (id == "synth-tts") return sw::proto::TaskKind::AudioTts;
  return sw::fail(sw::Error::invalid_argument("model: unknown model \"{}\"", id));
}

void check_model(const sw::Result<sw::studio::ModelBody>& model) {
  if (!model) return;
  auto again = sw::proto::decode_model_source(model->record.source_json);
  if (!again || !(*again == model->source)) std::abort();
  if (!sw::studio::valid_id(model->record.id)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_model(sw::studio::read_model_body(text, std::nullopt, kBodyLimit));
  check_model(sw::studio::read_model_body(text, std::string("synth-llm"), kBodyLimit));
  if (auto job = sw::studio::read_job_body(text, known_models, kBodyLimit)) {
    auto again = sw::proto::decode_task(sw::proto::encode(job->task));
    if (!again || !(*again == job->task)) std::abort();
  }
  // POST/PATCH /api/v1/keys (issue 20): an accepted quota has a limit, none negative.
  if (auto key = sw::studio::read_key_body(text, kBodyLimit)) {
    if (key->quota && *key->quota) {
      const auto& q = **key->quota;
      if (!q.jobs && !q.tokens && !q.seconds) std::abort();
      for (const auto& limit : {q.jobs, q.tokens, q.seconds}) {
        if (limit && *limit < 0) std::abort();
      }
    }
  }
  // POST /api/v1/join-tokens (issue 22): what is accepted is within the limits.
  if (auto options = sw::studio::read_join_token_body(text, kBodyLimit)) {
    if (!sw::studio::check_join_token_options(*options)) std::abort();
  }
  // The small bodies: {name} for a client key, {reason} for a rejection (empty means {}).
  if (auto body = sw::studio::parse_object(text, true, kBodyLimit)) {
    if (!body->is_object()) std::abort();
    (void)sw::studio::field<std::string>(*body, "name");
    (void)sw::studio::field<std::string>(*body, "reason");
    (void)body->dump();  // what a route does with an accepted body: must not recurse too deep
  }
  return 0;
}
