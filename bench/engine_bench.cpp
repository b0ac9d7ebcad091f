// Engine overhead (targets.md): worker-mediated llama.cpp generation against the same llama-server
// called directly, side by side in one run on stories260K.gguf — tokens/s and time to first token —
// and the espeak-ng realtime factor. Needs STUDIO_WORKER_TEST_MODELS and llama-server
// (STUDIO_WORKER_LLAMA_SERVER or PATH); prints SKIPPED lines for what it cannot run.
//   build/ci/bench/engine_bench [rounds]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/file_io.h"
#include "common/sha256.h"
#include "engines/espeak/espeak_engine.h"
#include "engines/llama/llama_engine.h"
#include "engines/llama/llama_mapping.h"
#include "engines/runner/child_process.h"
#include "support/temp_dir.h"
#include "support/test_models.h"
#include "transfer/http_client.h"

using namespace sw;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

proto::LlmParams params_for(int round) {
  proto::LlmParams params;
  params.messages = {{"user", round % 2 == 0 ? "Once upon a time" : "The little dog"}};
  params.max_tokens = 256;
  params.temperature = 0.0;
  return params;
}

void bench_llama(int rounds) {
  auto server = engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  auto models = testing::test_models_dir();
  if (!server || !models) {
    std::printf("SKIPPED: llama engine overhead (%s)\n",
                !server ? "llama-server not found (set STUDIO_WORKER_LLAMA_SERVER)"
                        : "test models not found (set STUDIO_WORKER_TEST_MODELS)");
    return;
  }
  testing::TempDir dir;
  models::CacheConfig config;
  config.root = dir.path();
  const auto gguf = read_file(*models / "stories260K.gguf");
  std::filesystem::copy_file(*models / "stories260K.gguf", dir.path() / "stories260K.gguf");
  auto cache = std::make_shared<models::ModelCache>(config);
  engines::RunnerPoolOptions pool_options;
  pool_options.free_memory_gib = [] { return std::optional<double>(64); };
  auto pool = std::make_shared<engines::RunnerPool>(pool_options);
  engines::LlamaEngine engine(*server, cache, pool);
  proto::ModelSource source;
  source.engine = "llama-cpp";
  source.files = {{"model", "https://models.invalid/stories260K.gguf", "stories260K.gguf",
                   gguf->size(), sha256_hex(*gguf)}};
  auto request_for = [&](int round) {
    return engines::DispatchRequest{"stories", proto::Task{params_for(round)}, source, "bench"};
  };
  // Warm up: the runner starts and loads once; both paths then hit the same resident process.
  if (auto warm = engine.dispatch(request_for(0)); !warm) {
    std::printf("llama warm-up failed: %s\n", warm.error().message.c_str());
    return;
  }
  const std::string direct_url =
      "http://127.0.0.1:" + std::to_string(pool->status().at(0).port) + "/v1/chat/completions";

  std::vector<double> worker_tps, direct_tps, worker_ttft, direct_ttft;
  for (int round = 0; round < rounds; ++round) {
    // Worker-mediated: the whole dispatch (cache check, mapping, runner call, result JSON).
    auto start = Clock::now();
    auto result = engine.dispatch(request_for(round));
    const double worker_ms = ms_since(start);
    const auto json = nlohmann::json::parse(std::get<engines::LlmResult>(*result).json.text());
    worker_tps.push_back(json["usage"]["completion_tokens"].get<double>() / worker_ms * 1000.0);

    // Direct: the same body posted to the same llama-server.
    transfer::HttpCall http;
    http.method = "POST";
    http.url = direct_url;
    http.body = engines::llama::chat_request(params_for(round), std::nullopt, false).dump();
    start = Clock::now();
    auto answer = transfer::http_call(http);
    const double direct_ms = ms_since(start);
    const auto direct = nlohmann::json::parse(answer->body);
    direct_tps.push_back(direct["usage"]["completion_tokens"].get<double>() / direct_ms * 1000.0);

    // Time to first token, streaming, both ways.
    bool first = false;
    start = Clock::now();
    std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
      if (!first && chunk.find("\"content\":\"") != std::string_view::npos) {
        first = true;
        worker_ttft.push_back(ms_since(start));
      }
      return true;
    };
    (void)engine.stream_chat(request_for(round), on_chunk);
    first = false;
    http.body = engines::llama::chat_request(params_for(round), std::nullopt, true).dump();
    http.on_body = [&](std::string_view bytes) {
      if (!first && bytes.find("\"content\":\"") != std::string_view::npos) {
        first = true;
        direct_ttft.push_back(ms_since(start));
      }
      return true;
    };
    start = Clock::now();
    (void)transfer::http_call(http);
  }
  const double ratio = median(worker_tps) / median(direct_tps);
  std::printf("llama_direct_tokens_per_s: %.0f tokens/s\n", median(direct_tps));
  std::printf("llama_worker_tokens_per_s: %.0f tokens/s\n", median(worker_tps));
  std::printf("llama_worker_over_direct: %.3f ratio (target >= 0.97)\n", ratio);
  std::printf("llama_direct_ttft: %.2f ms\n", median(direct_ttft));
  std::printf("llama_worker_ttft: %.2f ms\n", median(worker_ttft));
  std::printf("llama_ttft_added: %.2f ms (target <= 10)\n", median(worker_ttft) - median(direct_ttft));
  std::printf("llama_rounds: %d x 256-token budget, temperature 0\n", rounds);
}

void bench_espeak() {
  auto engine = engines::EspeakEngine::create();
  if (!engine) {
    std::printf("SKIPPED: espeak-ng (%s)\n", engine.error().message.c_str());
    return;
  }
  proto::AudioTtsParams params;
  params.text =
      "The worker speaks this paragraph to measure how much faster than real time espeak-ng "
      "synthesises speech on this machine. It is long enough to take a few seconds to say.";
  std::vector<double> factors;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    auto result = (*engine)->dispatch({"espeak-ng:en", proto::Task{params}, std::nullopt, "bench"});
    const double ms = ms_since(start);
    const auto& bytes = std::get<engines::AudioTtsResult>(*result).bytes;
    const double audio_s = static_cast<double>(bytes.size() - 44) / 2.0 / (*engine)->sample_rate();
    factors.push_back(audio_s * 1000.0 / ms);
  }
  std::printf("espeak_realtime_factor: %.0f x realtime (seconds of audio per second of work)\n",
              median(factors));
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  bench_llama(rounds);
  bench_espeak();
  return 0;
}
