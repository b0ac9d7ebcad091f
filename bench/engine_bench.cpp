// Engine overhead (targets.md): worker-mediated llama.cpp generation against the same llama-server
// called directly, side by side in one run on stories260K.gguf, and the espeak-ng realtime factor.
// Needs STUDIO_WORKER_TEST_MODELS and llama-server (STUDIO_WORKER_LLAMA_SERVER or PATH); prints
// SKIPPED lines for what it cannot run.
//   build/ci/bench/engine_bench [rounds] [--check]
//
// Fairness (both paths hit the same resident llama-server, one slot):
//   - the order alternates every round (worker first on even rounds, direct first on odd ones);
//   - the slot's prompt cache is erased before every call (POST /slots/0?action=erase), so
//     neither path inherits the other's cached prompt; where the runner refuses the erase, every
//     call gets a prompt of its own instead and the line `llama_cache_policy` says so;
//   - every answer is checked: 2xx, a chat completion, tokens generated, and (with the erase)
//     the same text from both paths at temperature 0. A failed check exits 1 and prints no figure.
// Figures:
//   llama_runner_generation_tokens_per_s  the runner's own decode speed (its `timings`)
//   llama_direct_tokens_per_s / llama_worker_tokens_per_s
//                                         completion tokens ÷ the whole request's wall time
//   llama_worker_over_direct              ratio of those two medians (target ≥ 0.97)
//   llama_*_ttft                          request sent → first content token (streaming)
//   stt_input_conversion_realtime_factor  a 44.1 kHz stereo WAV made whisper-ready (16 kHz mono
//                                         PCM16 WAV): seconds of audio per second of work
// --check compares with targets.md and exits 2 on a miss.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numbers>
#include <vector>

#include "common/file_io.h"
#include "common/sha256.h"
#include "engines/espeak/espeak_engine.h"
#include "engines/llama/llama_engine.h"
#include "engines/llama/llama_mapping.h"
#include "engines/runner/child_process.h"
#include "engines/whisper/whisper_engine.h"
#include "media/encoders.h"
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

// A prompt per round (and per path when the cache cannot be erased).
proto::LlmParams params_for(int round) {
  static const char* const kOpenings[] = {"Once upon a time", "The little dog", "Lily and Ben",
                                          "One day a bird"};
  proto::LlmParams params;
  params.messages = {
      {"user", std::string(kOpenings[round % 4]) + " (" + std::to_string(round) + ")"}};
  params.max_tokens = 256;
  params.temperature = 0.0;
  return params;
}

struct Answer {
  double wall_ms = 0;
  double tokens = 0;
  double runner_tokens_per_s = 0;  // direct path only (the worker's result has no timings)
  std::string content;
};

// Checks the shape every answer must have; `what` names the path for the error.
Result<Answer> read_answer(std::string_view body, double wall_ms, const char* what) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object() || !json.contains("choices") || !json["choices"].is_array() ||
      json["choices"].empty() || !json.contains("usage")) {
    return fail(Error::protocol("{}: not a chat completion: {}", what, body.substr(0, 200)));
  }
  Answer answer;
  answer.wall_ms = wall_ms;
  answer.tokens = json["usage"].value("completion_tokens", 0.0);
  answer.content = json["choices"][0]["message"].value("content", std::string());
  if (answer.tokens <= 0 || answer.content.empty()) {
    return fail(Error::protocol("{}: no tokens generated", what));
  }
  if (json.contains("timings")) {
    answer.runner_tokens_per_s = json["timings"].value("predicted_per_second", 0.0);
  }
  return answer;
}

struct LlamaFigures {
  bool ran = false;
  double ratio = 0;
  double ttft_added_ms = 0;
};

Result<LlamaFigures> bench_llama(int rounds) {
  auto server = engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  auto models = testing::test_models_dir();
  if (!server || !models) {
    std::printf("SKIPPED: llama engine overhead (%s)\n",
                !server ? "llama-server not found (set STUDIO_WORKER_LLAMA_SERVER)"
                        : "test models not found (set STUDIO_WORKER_TEST_MODELS)");
    return LlamaFigures{};
  }
  testing::TempDir dir;
  models::CacheConfig config;
  config.root = dir.path();
  const auto gguf = read_file(*models / "stories260K.gguf");
  if (!gguf) return fail(gguf.error());
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
  auto request_for = [&](const proto::LlmParams& params) {
    return engines::DispatchRequest{"stories", proto::Task{params}, source, "bench"};
  };
  // Warm up: the runner starts and loads once; both paths then hit the same resident process.
  if (auto warm = engine.dispatch(request_for(params_for(0))); !warm) {
    return fail(Error::internal("llama warm-up failed: {}", warm.error().message));
  }
  const auto runners = pool->status();
  if (runners.size() != 1) return fail(Error::internal("expected one resident runner"));
  const std::string base = "http://127.0.0.1:" + std::to_string(runners[0].port);

  auto erase_slot = [&]() -> bool {
    transfer::HttpCall http;
    http.method = "POST";
    http.url = base + "/slots/0?action=erase";
    auto answer = transfer::http_call(http);
    return answer && answer->status >= 200 && answer->status < 300;
  };
  const bool erase = erase_slot();
  std::printf("llama_cache_policy: %s\n",
              erase ? "slot cache erased before every call"
                    : "runner refused the slot erase: a fresh prompt for every call");

  auto worker_call = [&](const proto::LlmParams& params) -> Result<Answer> {
    const auto start = Clock::now();
    auto result = engine.dispatch(request_for(params));
    const double ms = ms_since(start);
    if (!result) return fail(Error::internal("worker path: {}", result.error().message));
    return read_answer(std::get<engines::LlmResult>(*result).json.text(), ms, "worker path");
  };
  auto direct_call = [&](const proto::LlmParams& params) -> Result<Answer> {
    transfer::HttpCall http;
    http.method = "POST";
    http.url = base + "/v1/chat/completions";
    http.body = engines::llama::chat_request(params, std::nullopt, false).dump();
    const auto start = Clock::now();
    auto answer = transfer::http_call(http);
    const double ms = ms_since(start);
    if (!answer) return fail(Error::internal("direct path: {}", answer.error().message));
    if (answer->status != 200) {
      return fail(Error::internal("direct path: HTTP {}: {}", answer->status, answer->body));
    }
    return read_answer(answer->body, ms, "direct path");
  };
  // Streaming: request sent → first chunk with content.
  auto worker_ttft = [&](const proto::LlmParams& params) -> Result<double> {
    std::optional<double> first;
    const auto start = Clock::now();
    std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
      if (!first && chunk.find("\"content\":\"") != std::string_view::npos) first = ms_since(start);
      return true;
    };
    auto done = engine.stream_chat(request_for(params), on_chunk);
    if (!done) return fail(Error::internal("worker stream: {}", done.error().message));
    if (!first) return fail(Error::internal("worker stream: no content chunk"));
    return *first;
  };
  auto direct_ttft = [&](const proto::LlmParams& params) -> Result<double> {
    std::optional<double> first;
    transfer::HttpCall http;
    http.method = "POST";
    http.url = base + "/v1/chat/completions";
    http.body = engines::llama::chat_request(params, std::nullopt, true).dump();
    const auto start = Clock::now();
    http.on_body = [&](std::string_view bytes) {
      if (!first && bytes.find("\"content\":\"") != std::string_view::npos) first = ms_since(start);
      return true;
    };
    auto answer = transfer::http_call(http);
    if (!answer || answer->status != 200) return fail(Error::internal("direct stream failed"));
    if (!first) return fail(Error::internal("direct stream: no content chunk"));
    return *first;
  };

  std::vector<double> worker_tps, direct_tps, runner_tps, worker_first, direct_first;
  for (int round = 0; round < rounds; ++round) {
    const bool worker_first_in_round = round % 2 == 0;
    // With the erase both paths get the same prompt (and must give the same text); without it,
    // a prompt each, so that neither finds the other's in the cache.
    const auto worker_params = params_for(2 * round);
    const auto direct_params = erase ? worker_params : params_for(2 * round + 1);
    Result<Answer> by_worker = fail(Error::internal("not run"));
    Result<Answer> by_direct = fail(Error::internal("not run"));
    for (int leg = 0; leg < 2; ++leg) {
      if (erase && !erase_slot()) return fail(Error::internal("slot erase stopped working"));
      if ((leg == 0) == worker_first_in_round) {
        by_worker = worker_call(worker_params);
      } else {
        by_direct = direct_call(direct_params);
      }
    }
    if (!by_worker) return fail(by_worker.error());
    if (!by_direct) return fail(by_direct.error());
    if (erase && by_worker->content != by_direct->content) {
      return fail(
          Error::internal("round {}: the two paths answered differently at temperature 0", round));
    }
    worker_tps.push_back(by_worker->tokens / by_worker->wall_ms * 1000.0);
    direct_tps.push_back(by_direct->tokens / by_direct->wall_ms * 1000.0);
    runner_tps.push_back(by_direct->runner_tokens_per_s);

    Result<double> worker_t = fail(Error::internal("not run"));
    Result<double> direct_t = fail(Error::internal("not run"));
    for (int leg = 0; leg < 2; ++leg) {
      if (erase && !erase_slot()) return fail(Error::internal("slot erase stopped working"));
      if ((leg == 0) == worker_first_in_round) {
        worker_t = worker_ttft(worker_params);
      } else {
        direct_t = direct_ttft(direct_params);
      }
    }
    if (!worker_t) return fail(worker_t.error());
    if (!direct_t) return fail(direct_t.error());
    worker_first.push_back(*worker_t);
    direct_first.push_back(*direct_t);
  }
  LlamaFigures figures;
  figures.ran = true;
  figures.ratio = median(worker_tps) / median(direct_tps);
  figures.ttft_added_ms = median(worker_first) - median(direct_first);
  std::printf("llama_runner_generation_tokens_per_s: %.0f tokens/s\n", median(runner_tps));
  std::printf("llama_direct_tokens_per_s: %.0f tokens/s\n", median(direct_tps));
  std::printf("llama_worker_tokens_per_s: %.0f tokens/s\n", median(worker_tps));
  std::printf("llama_worker_over_direct: %.3f ratio (target >= 0.97)\n", figures.ratio);
  std::printf("llama_direct_ttft: %.2f ms\n", median(direct_first));
  std::printf("llama_worker_ttft: %.2f ms\n", median(worker_first));
  std::printf("llama_ttft_added: %.2f ms (target <= 10)\n", figures.ttft_added_ms);
  std::printf("llama_rounds: %d rounds x 256-token budget, temperature 0, order alternating\n",
              rounds);
  return figures;
}

Status bench_espeak() {
  auto engine = engines::EspeakEngine::create();
  if (!engine) {
    std::printf("SKIPPED: espeak-ng (%s)\n", engine.error().message.c_str());
    return {};
  }
  if (auto why = (*engine)->unavailable()) {
    std::printf("SKIPPED: espeak-ng (%s)\n", why->c_str());
    return {};
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
    if (!result) return fail(Error::internal("espeak-ng: {}", result.error().message));
    const auto& bytes = std::get<engines::AudioTtsResult>(*result).bytes;
    if (bytes.size() <= 44 + 22050)
      return fail(Error::internal("espeak-ng: under a second of audio"));
    const double audio_s =
        static_cast<double>(bytes.size() - 44) / 2.0 / (*engine)->sample_rate().value_or(22050);
    factors.push_back(audio_s * 1000.0 / ms);
  }
  std::printf("espeak_realtime_factor: %.0f x realtime (seconds of audio per second of work)\n",
              median(factors));
  return {};
}

// The STT input path (engines::whisper_ready_wav): decode, downmix, resample, encode. One
// minute of 44.1 kHz stereo (a chord plus noise, so the resampler's filter has work to do).
Status bench_stt_input() {
  constexpr std::uint32_t kRate = 44100;
  constexpr double kSeconds = 60;
  std::vector<std::int16_t> stereo;
  stereo.reserve(static_cast<std::size_t>(kRate * kSeconds) * 2);
  std::uint32_t noise = 1;
  for (std::size_t i = 0; i < static_cast<std::size_t>(kRate * kSeconds); ++i) {
    const double t = static_cast<double>(i) / kRate;
    noise = noise * 1664525u + 1013904223u;  // LCG: deterministic noise
    const double v = 0.3 * std::sin(2 * std::numbers::pi * 440 * t) +
                     0.2 * std::sin(2 * std::numbers::pi * 9000 * t) +
                     0.05 * (static_cast<double>(noise >> 8) / (1 << 24) - 0.5);
    stereo.push_back(static_cast<std::int16_t>(v * 32767));
    stereo.push_back(static_cast<std::int16_t>(v * 0.8 * 32767));
  }
  auto wav = media::encode_wav_pcm16(stereo, kRate, 2);
  if (!wav) return fail(wav.error());
  std::vector<double> factors;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    auto ready = engines::whisper_ready_wav(*wav);
    const double ms = ms_since(start);
    if (!ready) return fail(Error::internal("stt input: {}", ready.error().message));
    if (ready->size() < 44 + static_cast<std::size_t>(16000 * 2 * (kSeconds - 1))) {
      return fail(Error::internal("stt input: {} bytes is too short", ready->size()));
    }
    factors.push_back(kSeconds * 1000.0 / ms);
  }
  std::printf(
      "stt_input_conversion_realtime_factor: %.0f x realtime (44.1 kHz stereo to 16 kHz mono)\n",
      median(factors));
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else {
      rounds = std::max(1, std::atoi(argv[i]));
    }
  }
  auto llama = bench_llama(rounds);
  if (!llama) {
    std::fprintf(stderr, "engine_bench: %s\n", llama.error().message.c_str());
    return 1;
  }
  if (auto espeak = bench_espeak(); !espeak) {
    std::fprintf(stderr, "engine_bench: %s\n", espeak.error().message.c_str());
    return 1;
  }
  if (auto stt = bench_stt_input(); !stt) {
    std::fprintf(stderr, "engine_bench: %s\n", stt.error().message.c_str());
    return 1;
  }
  if (check && llama->ran) {
    bool ok = true;
    if (llama->ratio < 0.97) {
      std::printf("MISS: llama_worker_over_direct %.3f < 0.97 (targets.md)\n", llama->ratio);
      ok = false;
    }
    if (llama->ttft_added_ms > 10) {
      std::printf("MISS: llama_ttft_added %.2f ms > 10 ms (targets.md)\n", llama->ttft_added_ms);
      ok = false;
    }
    return ok ? 0 : 2;
  }
  return 0;
}
