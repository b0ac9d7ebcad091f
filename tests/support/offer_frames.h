#pragma once
// Offer frames as a studio sends them (reference-worker.md §1.4), for tests that play the studio
// on a loopback socket or a fake link. Header-only.

#include <nlohmann/json.hpp>

#include <string>

namespace sw::testing {

// A chat task of one user message.
inline nlohmann::json chat_task(const std::string& content) {
  return {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", content}}}}};
}

// cliDefaults with nothing set (the reference's required fields, all 0).
inline nlohmann::json no_cli_defaults() {
  return {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}};
}

// The model source of the synthetic engine: no files.
inline nlohmann::json synthetic_source() {
  return {{"engine", "synthetic"},
          {"files", nlohmann::json::array()},
          {"cliDefaults", no_cli_defaults()}};
}

// An `offer` frame for `job_id`: `task` on `model` from `source`, estimated at `vram_gb` GiB.
inline std::string offer_frame(const std::string& job_id, const std::string& model,
                               const nlohmann::json& task,
                               const nlohmann::json& source = synthetic_source(),
                               double vram_gb = 1) {
  return nlohmann::json{{"type", "offer"},
                        {"claim",
                         {{"jobId", job_id},
                          {"gameId", "g"},
                          {"assetName", "a"},
                          {"model", model},
                          {"vramGbEstimate", vram_gb},
                          {"task", task},
                          {"modelSource", source}}}}
      .dump();
}

// A chat job on the synthetic engine's llm model.
inline std::string synthetic_llm_offer(const std::string& job_id,
                                       const std::string& prompt = "the prompt",
                                       double vram_gb = 1) {
  return offer_frame(job_id, "synthetic-llm", chat_task(prompt), synthetic_source(), vram_gb);
}

}  // namespace sw::testing
