#include "engines/doctor.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numbers>

#include "common/base64.h"
#include "common/json_text.h"
#include "common/log.h"
#include "engines/build_engine.h"
#include "engines/runner/runner_pool.h"
#include "media/audio_codec.h"
#include "media/encoders.h"
#include "proto/mime.h"

namespace sw::engines {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const log::Logger kLog("studio_worker::engine::doctor");

constexpr std::uint32_t kImageSide = 64;
constexpr std::uint32_t kLlmTokens = 8;
constexpr std::uint32_t kLlmContext = 512;  // a short prompt: no need for the model's full window
constexpr std::uint32_t kSdSteps = 4;
constexpr const char* kUtterance = "Hello from the studio worker.";

std::int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A scratch models root, removed with everything in it (links only: never the linked files).
class ScratchRoot {
 public:
  static Result<ScratchRoot> create() {
    std::string pattern = (fs::temp_directory_path() / "studio-worker-doctor-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return fail(
          Error::io("cannot create a scratch models root {}: {}", pattern, std::strerror(errno)));
    }
    return ScratchRoot(pattern);
  }
  ScratchRoot(ScratchRoot&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  ScratchRoot& operator=(ScratchRoot&&) = delete;
  ~ScratchRoot() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);  // removes links, does not follow them
  }
  const fs::path& path() const { return path_; }

 private:
  explicit ScratchRoot(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

// Links `file` at the top of the models root, where the cache reuses an operator-placed copy,
// and describes it as a ModelSource file whose URL is never fetched.
Result<proto::ModelFile> place(const fs::path& root, const fs::path& file, std::string role) {
  std::error_code ec;
  const fs::path target = fs::absolute(file, ec);
  if (ec || !fs::is_regular_file(target, ec)) {
    return fail(Error::invalid_argument("{} is not a readable file", file.string()));
  }
  const fs::path link = root / target.filename();
  if (fs::exists(fs::symlink_status(link, ec))) {
    if (!fs::equivalent(link, target, ec)) {
      return fail(Error::invalid_argument("two model files are both named {}; rename one",
                                          target.filename().string()));
    }
  } else {
    fs::create_symlink(target, link, ec);
    if (ec) {
      return fail(
          Error::io("cannot link {} into {}: {}", target.string(), root.string(), ec.message()));
    }
  }
  proto::ModelFile entry;
  entry.role = std::move(role);
  entry.filename = target.filename().string();
  entry.url = "https://doctor.invalid/" + entry.filename;
  return entry;
}

DispatchRequest request_for(std::string engine, std::string model, proto::Task task,
                            std::vector<proto::ModelFile> files = {}) {
  proto::ModelSource source;
  source.engine = std::move(engine);
  source.files = std::move(files);
  DispatchRequest request{std::move(model), std::move(task), std::move(source), "doctor", true};
  return request;
}

DoctorCheck failed(std::string engine, const Error& error) {
  return {std::move(engine), CheckOutcome::Failed, error.message, {}};
}

DoctorCheck skipped(std::string engine, std::string why) {
  return {std::move(engine), CheckOutcome::Skipped, std::move(why), {}};
}

std::string program_name(const EngineReport& report) {
  for (const auto& program : report.programs) {
    if (program.location) return program.location->path.filename().string();
  }
  return report.engine;
}

DoctorCheck check_llama(Engine& engine, const EngineReport& report, const fs::path& root,
                        const std::optional<fs::path>& model) {
  if (!model) return skipped(report.engine, "needs --model FILE (a GGUF model)");
  auto file = place(root, *model, "model");
  if (!file) return failed(report.engine, file.error());
  proto::LlmParams params;
  params.messages = {{"user", "Say hello."}};
  params.max_tokens = kLlmTokens;
  params.temperature = 0.0;
  auto request =
      request_for(report.engine, "doctor/" + model->stem().string(), proto::Task{params}, {*file});
  request.source->cli_defaults.context_size = kLlmContext;

  const auto cold_start = Clock::now();
  auto cold = engine.dispatch(request);
  const auto cold_ms = ms_since(cold_start);
  if (!cold) return failed(report.engine, cold.error());
  const auto warm_start = Clock::now();
  auto warm = engine.dispatch(request);
  const auto warm_ms = ms_since(warm_start);
  if (!warm) return failed(report.engine, warm.error());
  const auto* llm = std::get_if<LlmResult>(&*warm);
  if (llm == nullptr) return failed(report.engine, Error::internal("not an llm result"));
  const auto parsed = parse_json(llm->json.text(), "chat completion");
  const auto json = parsed ? *parsed : nlohmann::json();
  const std::int64_t tokens =
      json.is_object() ? json.value("/usage/completion_tokens"_json_pointer, std::int64_t{0}) : 0;
  return {report.engine,
          CheckOutcome::Ok,
          fmt::format("first reply in {} ms ({} started, {} loaded), then {} tokens in {} ms",
                      cold_ms, program_name(report), file->filename, tokens, warm_ms),
          {{"first_reply_ms", cold_ms}, {"reply_ms", warm_ms}, {"tokens", tokens}}};
}

// A short spoken WAV for whisper: espeak-ng's when this build has it, else one second of tone.
Result<media::Bytes> speech_sample(CompositeEngine& engines) {
  if (const Engine* espeak = engines.find("espeak-ng");
      espeak != nullptr && !espeak->unavailable()) {
    proto::AudioTtsParams tts;
    tts.text = kUtterance;
    tts.ext = "wav";
    auto spoken = engines.dispatch(request_for("espeak-ng", "espeak-ng", proto::Task{tts}));
    if (!spoken) return fail(spoken.error());
    return std::move(std::get<AudioTtsResult>(*spoken).bytes);
  }
  constexpr std::uint32_t kRate = 16000;
  std::vector<std::int16_t> tone(kRate);
  for (std::size_t i = 0; i < tone.size(); ++i) {
    tone[i] = static_cast<std::int16_t>(
        8000 * std::sin(2 * std::numbers::pi * 440.0 * static_cast<double>(i) / kRate));
  }
  return media::encode_wav_pcm16(tone, kRate, 1);
}

DoctorCheck check_whisper(CompositeEngine& engines, const EngineReport& report,
                          const fs::path& root, const std::optional<fs::path>& model) {
  if (!model) return skipped(report.engine, "needs --whisper-model FILE (a whisper ggml model)");
  auto file = place(root, *model, "model");
  if (!file) return failed(report.engine, file.error());
  auto wav = speech_sample(engines);
  if (!wav) return failed(report.engine, wav.error());
  const double seconds = [&] {
    auto decoded = media::decode_audio(*wav);
    return decoded ? decoded->seconds() : 0.0;
  }();
  proto::AudioSttParams stt;
  stt.input_url = "data:" + proto::mime_for_ext("wav") + ";base64," + base64_encode(*wav);
  auto request =
      request_for(report.engine, "doctor/" + model->stem().string(), proto::Task{stt}, {*file});

  const auto cold_start = Clock::now();
  auto cold = engines.dispatch(request);
  const auto cold_ms = ms_since(cold_start);
  if (!cold) return failed(report.engine, cold.error());
  const auto warm_start = Clock::now();
  auto warm = engines.dispatch(request);
  const auto warm_ms = ms_since(warm_start);
  if (!warm) return failed(report.engine, warm.error());
  const auto* stt_result = std::get_if<AudioSttResult>(&*warm);
  if (stt_result == nullptr) return failed(report.engine, Error::internal("not a transcript"));
  const auto parsed = parse_json(stt_result->json.text(), "transcript");
  const auto json = parsed ? *parsed : nlohmann::json();
  std::string text = json.is_object() ? json.value("text", std::string()) : std::string();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  text = text.empty() ? std::string("(empty transcript)") : "\"" + text + "\"";
  return {report.engine,
          CheckOutcome::Ok,
          fmt::format("first transcript in {} ms ({} started, {} loaded), then {:.1f} s of "
                      "speech in {} ms: {}",
                      cold_ms, program_name(report), file->filename, seconds, warm_ms, text),
          {{"first_transcript_ms", cold_ms},
           {"transcript_ms", warm_ms},
           {"audio_ms", std::llround(seconds * 1000)}}};
}

DoctorCheck check_sd(CompositeEngine& engines, const EngineReport& report, const fs::path& root,
                     const std::optional<fs::path>& model) {
  if (!model) return skipped(report.engine, "needs --sd-model FILE (a stable-diffusion model)");
  auto file = place(root, *model, "model");
  if (!file) return failed(report.engine, file.error());
  proto::ImageParams image;
  image.prompt = "a red apple on a wooden table";
  image.width = kImageSide;
  image.height = kImageSide;
  image.steps = kSdSteps;
  image.seed = 42;
  image.ext = "png";
  auto request =
      request_for(report.engine, "doctor/" + model->stem().string(), proto::Task{image}, {*file});
  const auto start = Clock::now();
  auto made = engines.dispatch(request);
  const auto elapsed = ms_since(start);
  if (!made) return failed(report.engine, made.error());
  return {report.engine,
          CheckOutcome::Ok,
          fmt::format("{}x{} image, {} steps, in {} ms (loading {} included)", kImageSide,
                      kImageSide, kSdSteps, elapsed, file->filename),
          {{"image_ms", elapsed}}};
}

DoctorCheck check_espeak(CompositeEngine& engines, const EngineReport& report) {
  proto::AudioTtsParams tts;
  tts.text = kUtterance;
  tts.ext = "wav";
  const auto start = Clock::now();
  auto spoken = engines.dispatch(request_for(report.engine, "espeak-ng", proto::Task{tts}));
  const auto elapsed = ms_since(start);
  if (!spoken) return failed(report.engine, spoken.error());
  const auto& bytes = std::get<AudioTtsResult>(*spoken).bytes;
  auto decoded = media::decode_audio(bytes);
  if (!decoded) return failed(report.engine, decoded.error());
  return {report.engine,
          CheckOutcome::Ok,
          fmt::format("{:.1f} s of speech in {} ms", decoded->seconds(), elapsed),
          {{"speech_ms", elapsed}, {"audio_ms", std::llround(decoded->seconds() * 1000)}}};
}

DoctorCheck check_synthetic(CompositeEngine& engines, const EngineReport& report) {
  proto::ImageParams image;
  image.prompt = "a lighthouse on a cliff at dawn";
  image.width = kImageSide;
  image.height = kImageSide;
  const auto start = Clock::now();
  auto made = engines.dispatch(request_for(report.engine, "synthetic-image", proto::Task{image}));
  const auto elapsed = ms_since(start);
  if (!made) return failed(report.engine, made.error());
  return {report.engine,
          CheckOutcome::Ok,
          fmt::format("{}x{} {} image in {} ms", kImageSide, kImageSide,
                      std::get<ImageResult>(*made).ext, elapsed),
          {{"image_ms", elapsed}}};
}

std::string why_missing(const EngineReport& report) {
  if (!report.problem.empty()) return report.problem;
  std::string problems;
  for (const auto& program : report.programs) {
    if (program.location) continue;
    problems += (problems.empty() ? "" : "; ") + program.problem;
  }
  return problems.empty() ? "not found" : problems;
}

}  // namespace

std::string_view to_string(CheckOutcome outcome) {
  switch (outcome) {
    case CheckOutcome::Ok: return "ok";
    case CheckOutcome::Failed: return "failed";
    case CheckOutcome::Skipped: return "skipped";
    case CheckOutcome::Missing: return "missing";
    case CheckOutcome::Disabled: return "disabled";
  }
  return "unknown";
}

bool DoctorReport::ok() const {
  return std::none_of(checks.begin(), checks.end(),
                      [](const DoctorCheck& c) { return c.outcome == CheckOutcome::Failed; });
}

DoctorReport run_doctor(const DoctorOptions& options, const std::vector<EngineReport>& inventory) {
  DoctorReport report;
  auto root = ScratchRoot::create();
  if (!root) {
    for (const EngineReport& engine : inventory) {
      report.checks.push_back(failed(engine.engine, root.error()));
    }
    return report;
  }
  // The engines exactly as the daemon assembles them, over the scratch models root.
  EngineOptions engine_options;
  engine_options.models_root = root->path();
  engine_options.llama_server_path = options.programs.llama_server_path;
  engine_options.whisper_server_path = options.programs.whisper_server_path;
  engine_options.sd_cli_path = options.programs.sd_cli_path;
  engine_options.sd_server_path = options.programs.sd_server_path;
  engine_options.synthetic = options.programs.synthetic;
  engine_options.free_memory_gib = options.free_memory_gib;
  BuiltEngine built = build_engines(engine_options);
  CompositeEngine& engines = *built.engine;

  for (const EngineReport& engine : inventory) {
    DoctorCheck check;
    const bool misconfigured =
        std::any_of(engine.programs.begin(), engine.programs.end(),
                    [](const ProgramReport& program) { return program.misconfigured; });
    if (!engine.found && misconfigured) {
      check = failed(engine.engine, Error::invalid_argument("{}", why_missing(engine)));
    } else if (!engine.found) {
      check = {engine.engine, CheckOutcome::Missing, why_missing(engine), {}};
    } else if (!engine.enabled) {
      check = {engine.engine,
               CheckOutcome::Disabled,
               "switched off in config ([engines] synthetic = false)",
               {}};
    } else if (engines.find(engine.engine) == nullptr) {
      // The inventory and build_engines disagree: say so rather than pass silently.
      check = failed(engine.engine, Error::internal("found on this machine, but the worker's "
                                                    "engines do not include it"));
    } else if (engine.engine == "llama-cpp") {
      check = check_llama(engines, engine, root->path(), options.llm_model);
    } else if (engine.engine == "whisper-cpp") {
      check = check_whisper(engines, engine, root->path(), options.whisper_model);
    } else if (engine.engine == "sd-cpp") {
      check = check_sd(engines, engine, root->path(), options.sd_model);
    } else if (engine.engine == "espeak-ng") {
      check = check_espeak(engines, engine);
    } else if (engine.engine == "synthetic") {
      check = check_synthetic(engines, engine);
    } else {
      check = skipped(engine.engine, "no check for this engine");
    }
    kLog.info("doctor.check", {{"engine", check.engine},
                               {"outcome", to_string(check.outcome)},
                               {"detail", check.detail}});
    report.checks.push_back(std::move(check));
  }
  if (built.runners) built.runners->stop_all();
  return report;
}

std::string format_doctor(const DoctorReport& report) {
  std::string out;
  int failures = 0;
  for (const DoctorCheck& check : report.checks) {
    // A failure stands out in a column of lower-case words.
    const std::string_view outcome =
        check.outcome == CheckOutcome::Failed ? "FAILED" : to_string(check.outcome);
    out += fmt::format("{:<13}{:<9}{}\n", check.engine, outcome, check.detail);
    if (check.outcome == CheckOutcome::Failed) ++failures;
  }
  out += failures == 0 ? "every engine found passed its check\n"
                       : fmt::format("{} engine(s) failed\n", failures);
  return out;
}

std::string doctor_json(const DoctorReport& report) {
  nlohmann::json checks = nlohmann::json::array();
  for (const DoctorCheck& check : report.checks) {
    nlohmann::json figures = nlohmann::json::object();
    for (const auto& [name, value] : check.figures) figures[name] = value;
    checks.push_back({{"engine", check.engine},
                      {"outcome", std::string(to_string(check.outcome))},
                      {"detail", check.detail},
                      {"figures", std::move(figures)}});
  }
  return nlohmann::json{{"ok", report.ok()}, {"checks", std::move(checks)}}.dump(2) + "\n";
}

}  // namespace sw::engines
