#pragma once
// What the chaos tests share: the bytes a synthetic job's result must be identical to, and the
// studio's words for a lapse that an injected fault explains. Header-only; each chaos test
// binary links sw_engines and sw_proto.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <variant>

#include "engines/build_engine.h"
#include "proto/codec.h"

namespace sw::testing::chaos {

inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : fallback;
}

// What the engine produces for a task: the bytes a result must be identical to. A chat
// completion's `elapsed_ms` is a measurement, not output, and is left out of the comparison.
inline std::string canonical(const std::string& kind, const std::string& text) {
  if (kind != "llm") return text;
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_object()) parsed.erase("elapsed_ms");
  return parsed.dump();
}

struct Expected {
  std::string kind;
  std::string bytes;  // canonical
};

// Runs the synthetic engine in this process on `task` (a client API task object).
inline Expected expected_result(sw::engines::Engine& engine, const std::string& model,
                                const nlohmann::json& task) {
  auto decoded = sw::proto::decode_task(task.dump());
  EXPECT_TRUE(decoded) << decoded.error().message;
  if (!decoded) return {};
  sw::proto::ModelSource source;
  source.engine = "synthetic";
  const sw::engines::DispatchRequest request{model, *decoded, source, "expected", false};
  auto result = engine.dispatch(request);
  EXPECT_TRUE(result) << result.error().message;
  if (!result) return {};
  const std::string kind = task.value("kind", "");
  return std::visit(
      [&](const auto& value) -> Expected {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, sw::engines::LlmResult> ||
                      std::is_same_v<T, sw::engines::AudioSttResult>) {
          return {kind, canonical(kind, value.json.text())};
        } else {
          return {kind, std::string(value.bytes.begin(), value.bytes.end())};
        }
      },
      *result);
}

// The i-th chaos task: binary (image, speech) and JSON (chat) in turn, each with a distinct
// prompt.
inline nlohmann::json chaos_task(std::uint64_t i) {
  switch (i % 3) {
    case 0:
      return {{"kind", "image"},
              {"prompt", "chaos " + std::to_string(i)},
              {"width", 32 + static_cast<int>(i % 5) * 8},
              {"height", 32}};
    case 1:
      return {{"kind", "llm"},
              {"messages", {{{"role", "user"}, {"content", "chaos " + std::to_string(i)}}}}};
    default: return {{"kind", "audio_tts"}, {"text", "chaos number " + std::to_string(i)}};
  }
}

// The studio's words for a lapse that an injected fault explains (studio.cpp, sessions.cpp):
// the holder's connection closed, went silent or was replaced by its own reconnect, the studio
// was killed and restarted (or, in a cluster, adopted from a dead process), or an offer was lost on a broken line. Anything else (an engine
// error, a protocol violation, a run limit, a refusal) is not the chaos's doing.
inline bool names_a_fault(const std::string& reason) {
  for (const char* fault :
       {"the worker disconnected", "the worker went silent", "the studio restarted",
        "session ended: duplicate_worker", "offer not answered within"}) {
    if (reason.starts_with(fault)) return true;
  }
  return false;
}

// The results a worker's /status says its outbox holds; -1 while that status is unreadable (a
// worker's local API may be between answers while it reconnects; nlohmann's discarded value
// would throw on operator[]).
inline int outbox_entries(const nlohmann::json& status) {
  if (!status.is_object() || !status.contains("outbox") || !status["outbox"].is_object()) {
    return -1;
  }
  return status["outbox"].value("entries", -1);
}

// A reject that costs no attempt and that a worker legitimately sends while chaos reorders its
// session (an offer reaching it while its previous job still runs or awaits delivery).
inline bool is_busy_reject(const std::string& reason) {
  return reason == "worker already has an in-flight job" ||
         reason.starts_with("result outbox is full");
}

}  // namespace sw::testing::chaos
