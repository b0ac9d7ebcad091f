// Frame codec throughput: encode + decode of a heartbeat (the most frequent frame) and of large
// offers (the biggest frames the worker parses), in frames/s and MiB/s.

#include <cstdio>
#include <cstdlib>

#include "bench_reporter.h"
#include "proto/codec.h"

namespace {

using namespace sw::proto;

WorkerCapabilities capabilities() {
  WorkerCapabilities c;
  c.machine_name = "rig-01";
  c.username = "webber";
  c.agent_version = "0.1.0";
  c.vram_total_gb = 24;
  c.vram_threshold_gb = 12;
  c.auto_start = true;
  c.user_presence = UserPresence::Active;
  for (TaskKind kind : kAllTaskKinds) {
    c.task_kinds.push_back(kind);
    c.supported_models_per_kind[kind] = {"synthetic", "synthetic-" + std::string(to_string(kind))};
  }
  c.supported_models_per_kind[TaskKind::Llm].push_back("llama-cpp:*");
  c.supported_models_per_kind[TaskKind::Image].push_back("sd-cpp:*");
  for (const auto& [kind, models] : c.supported_models_per_kind) {
    c.supported_models.insert(c.supported_models.end(), models.begin(), models.end());
  }
  return c;
}

ModelSource sd_source() {
  ModelSource s;
  s.engine = "sd-cpp";
  const char* roles[] = {"diffusion-model", "text-encoder", "vae"};
  for (int i = 0; i < 3; ++i) {
    ModelFile f;
    f.role = roles[i];
    f.url = "https://huggingface.co/org/repo/resolve/main/file-" + std::to_string(i) + ".gguf";
    f.filename = "file-" + std::to_string(i) + ".gguf";
    f.approx_bytes = 3864250304ull;
    f.sha256 = std::string(64, 'a');
    s.files.push_back(f);
  }
  s.cli_defaults = {1.0,          8,
                    1024,         1024,
                    "euler",      std::nullopt,
                    std::nullopt, std::nullopt,
                    std::nullopt, std::nullopt,
                    std::nullopt, std::nullopt};
  return s;
}

StudioFrame image_offer() {
  JobOfferClaim claim;
  claim.job_id = "job-1";
  claim.game_id = "game-of-elements";
  claim.asset_name = "game-of-elements/creatures/aurora-fox";
  claim.model = "z-image-turbo-q4_k_m.gguf";
  claim.vram_gb_estimate = 12;
  ImageParams image;
  image.prompt = "an aurora fox at dusk, volumetric light, intricate fur, cinematic";
  image.width = 1024;
  image.height = 1024;
  claim.task = Task{image};
  claim.model_source = sd_source();
  return Offer{claim};
}

// An LLM offer carrying about 64 KiB of conversation.
StudioFrame llm_offer_64k() {
  JobOfferClaim claim;
  claim.job_id = "job-2";
  claim.game_id = "g";
  claim.asset_name = "a";
  claim.model = "qwen3.5-2b";
  claim.vram_gb_estimate = 3;
  LlmParams llm;
  std::string paragraph;
  while (paragraph.size() < 1000)
    paragraph += "The quick brown fox jumps over the lazy dog. \\\"q\\\" ";
  for (int i = 0; i < 64; ++i) llm.messages.push_back({i % 2 ? "assistant" : "user", paragraph});
  llm.chat_template_kwargs = *RawJson::parse(R"({"enable_thinking":false})");
  claim.task = Task{llm};
  claim.model_source = sd_source();
  claim.model_source.engine = "llama-cpp";
  return Offer{claim};
}

template <class Frame, class Decode>
void round_trip(benchmark::State& state, const Frame& frame, Decode decode) {
  const std::string encoded = encode(frame);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = encode(frame);
    auto back = decode(text);
    if (!back) {
      std::fprintf(stderr, "decode failed: %s\n", back.error().message.c_str());
      std::abort();
    }
    bytes += text.size();
    benchmark::DoNotOptimize(back);
  }
  state.counters["frames"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsRate);
  state.counters["frame_bytes"] = static_cast<double>(encoded.size());
}

void BM_Heartbeat(benchmark::State& state) {
  round_trip(state, WorkerFrame{Heartbeat{capabilities(), "job-9"}}, &decode_worker_frame);
}
void BM_ImageOffer(benchmark::State& state) {
  round_trip(state, image_offer(), &decode_studio_frame);
}
void BM_LlmOffer64k(benchmark::State& state) {
  round_trip(state, llm_offer_64k(), &decode_studio_frame);
}

void BM_HeartbeatEncode(benchmark::State& state) {
  WorkerFrame frame{Heartbeat{capabilities(), "job-9"}};
  for (auto _ : state) benchmark::DoNotOptimize(encode(frame));
  state.counters["frames"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_HeartbeatDecode(benchmark::State& state) {
  const std::string text = encode(WorkerFrame{Heartbeat{capabilities(), "job-9"}});
  for (auto _ : state) benchmark::DoNotOptimize(decode_worker_frame(text));
  state.counters["frames"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

constexpr int kRepetitions = 5;
BENCHMARK(BM_Heartbeat)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);
BENCHMARK(BM_HeartbeatEncode)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);
BENCHMARK(BM_HeartbeatDecode)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);
BENCHMARK(BM_ImageOffer)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);
BENCHMARK(BM_LlmOffer64k)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);

}  // namespace

int main(int argc, char** argv) {
  constexpr double kMiB = 1024.0 * 1024.0;
  using sw::bench::add_figure;
  add_figure("BM_Heartbeat", "frame_bytes", "proto.heartbeat.frame_size", "bytes");
  add_figure("BM_Heartbeat", "frames", "proto.heartbeat.encode_decode", "frames/s");
  add_figure("BM_Heartbeat", "bytes", "proto.heartbeat.encode_decode", "MiB/s", kMiB);
  add_figure("BM_HeartbeatEncode", "frames", "proto.heartbeat.encode", "frames/s");
  add_figure("BM_HeartbeatDecode", "frames", "proto.heartbeat.decode", "frames/s");
  add_figure("BM_ImageOffer", "frame_bytes", "proto.offer_image.frame_size", "bytes");
  add_figure("BM_ImageOffer", "frames", "proto.offer_image.encode_decode", "frames/s");
  add_figure("BM_ImageOffer", "bytes", "proto.offer_image.encode_decode", "MiB/s", kMiB);
  add_figure("BM_LlmOffer64k", "frame_bytes", "proto.offer_llm_64k.frame_size", "bytes");
  add_figure("BM_LlmOffer64k", "frames", "proto.offer_llm_64k.encode_decode", "frames/s");
  add_figure("BM_LlmOffer64k", "bytes", "proto.offer_llm_64k.encode_decode", "MiB/s", kMiB);
  return sw::bench::run_benchmarks(argc, argv);
}
