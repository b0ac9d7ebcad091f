#include "engines/whisper/whisper_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/log.h"
#include "engines/runner/input_fetch.h"
#include "engines/runner/model_files.h"
#include "engines/whisper/whisper_mapping.h"
#include "media/audio_codec.h"
#include "media/encoders.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::whisper");
constexpr double kGib = 1024.0 * 1024.0 * 1024.0;
constexpr std::uint32_t kWhisperRate = 16000;
constexpr std::uint64_t kMaxAudioBytes = 512ull << 20;

// 16 kHz mono 16-bit PCM WAV, by its header.
bool is_whisper_wav(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 44 || sniff_extension(bytes) != "wav") return false;
  auto u16 = [&](std::size_t at) { return bytes[at] | (bytes[at + 1] << 8); };
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(u16(at)) | (static_cast<std::uint32_t>(u16(at + 2)) << 16);
  };
  // The canonical layout: "fmt " first, PCM, 1 channel, 16 kHz, 16 bits.
  return std::memcmp(bytes.data() + 12, "fmt ", 4) == 0 && u16(20) == 1 && u16(22) == 1 &&
         u32(24) == kWhisperRate && u16(34) == 16;
}

}  // namespace

Result<std::string> whisper_ready_wav(std::span<const std::uint8_t> input) {
  if (is_whisper_wav(input)) return std::string(input.begin(), input.end());
  auto decoded = media::decode_audio(input);
  if (!decoded) return fail(decoded.error());
  auto mono = media::to_mono_resampled(*decoded, kWhisperRate);
  if (!mono) return fail(mono.error());
  std::vector<std::int16_t> pcm(mono->size());
  for (std::size_t i = 0; i < mono->size(); ++i) {
    pcm[i] = static_cast<std::int16_t>(std::lround(std::clamp((*mono)[i], -1.0f, 1.0f) * 32767.0f));
  }
  auto wav = media::encode_wav_pcm16(pcm, kWhisperRate, 1);
  if (!wav) return fail(wav.error());
  return std::string(wav->begin(), wav->end());
}

WhisperEngine::WhisperEngine(std::filesystem::path whisper_server,
                             std::shared_ptr<models::ModelCache> cache,
                             std::shared_ptr<RunnerPool> runners)
    : server_(std::move(whisper_server)), cache_(std::move(cache)), runners_(std::move(runners)) {}

Capabilities WhisperEngine::capabilities() const {
  return {{proto::TaskKind::AudioStt, {"whisper-cpp:*"}}};
}

Result<TaskResult> WhisperEngine::dispatch(const DispatchRequest& request) {
  const auto* params = std::get_if<proto::AudioSttParams>(&request.task.params);
  if (params == nullptr) return fail(cannot_serve(name(), request.task.kind()));
  auto source = require_source(request.source, name());
  if (!source) return fail(source.error());
  if (params->input_url.empty()) return fail(Error::invalid_argument("audio_stt has no inputUrl"));

  auto files = cache_->ensure_files(request.model, **source, request.download_progress());
  if (!files) return fail(files.error());
  const models::CachedFile* model = find_file(*files, "model");
  if (model == nullptr) {
    for (const auto& file : *files) {
      if (file.role != "vad") {
        model = &file;
        break;
      }
    }
  }
  if (model == nullptr) {
    return fail(Error::invalid_argument("model `{}` lists no whisper model file", request.model));
  }
  const models::CachedFile* vad = find_file(*files, "vad");
  if (params->vad.value_or(false) && vad == nullptr) {
    return fail(Error::invalid_argument(
        "vad was asked for but model `{}` lists no file of role `vad` (a Silero VAD model)",
        request.model));
  }

  const StudioAccess* studio = request.studio ? &*request.studio : nullptr;
  auto input =
      fetch_input(params->input_url, {request.local, kMaxAudioBytes, "audio input", studio});
  if (!input) return fail(input.error());
  auto wav = whisper_ready_wav(*input);
  if (!wav) return fail(wav.error());

  RunnerLaunch launch;
  launch.key = fmt::format("whisper-server|{}|{}|{}", request.model, model->path.string(),
                           vad != nullptr ? vad->path.string() : std::string());
  launch.model = request.model;
  launch.executable = server_;
  launch.args = whisper::server_args(
      model->path, vad != nullptr ? std::optional(vad->path) : std::nullopt);
  // Weights plus whisper's working buffers (a few hundred MiB at most for the large models).
  launch.memory_gib = static_cast<double>(model->bytes) / kGib * 1.2 + 0.25;

  std::function<Result<std::string>(const std::string&)> call =
      [&](const std::string& base_url) -> Result<std::string> {
    transfer::HttpCall http;
    http.method = "POST";
    http.url = base_url + "/inference";
    http.form = whisper::inference_form(*params, *wav);
    // The deadline that matters is the pool's inference_stall: whisper-server prints its
    // progress (--print-progress) while it works, and a wedged one stops printing.
    http.timeout = std::chrono::hours(6);
    auto answer = transfer::http_call(http);
    if (!answer) return fail(answer.error());
    if (answer->status != 200) {
      return fail(Error::make(answer->status >= 500 ? Code::Unavailable : Code::InvalidArgument,
                              "whisper-server answered {}: {}", answer->status,
                              answer->body.substr(0, 300)));
    }
    return std::move(answer->body);
  };
  auto raw = runners_->use(launch, request.job_id, call);
  if (!raw) return fail(raw.error());
  auto result = whisper::transcript_result(*raw, *params);
  if (!result) return fail(result.error());
  kLog.info("stt.done", {{"job_id", request.job_id},
                         {"model", request.model},
                         {"duration", (*result)["duration"].dump()},
                         {"segments", (*result)["segments"].size()}});
  auto json = proto::RawJson::parse(result->dump());
  if (!json) return fail(json.error());
  return TaskResult{AudioSttResult{std::move(*json)}};
}

}  // namespace sw::engines
