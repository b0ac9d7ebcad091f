#include "engines/espeak/espeak_engine.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <mutex>

#include "common/log.h"
#include "engines/espeak/espeak_library.h"
#include "media/audio_codec.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::espeak");
constexpr std::size_t kMaxTextBytes = 100'000;

std::mutex& library_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::vector<std::int16_t>* g_sink = nullptr;  // the synthesis in progress (under library_mutex)

int collect(short* wav, int count, espeak_EVENT*) {
  if (wav != nullptr && count > 0 && g_sink != nullptr) g_sink->insert(g_sink->end(), wav, wav + count);
  return 0;  // continue
}

}  // namespace

Result<std::string> espeak_voice_for(const std::string& voice,
                                     const std::optional<std::string>& language) {
  std::string chosen = voice;
  if (chosen.empty() || chosen == "default") chosen = language.value_or("");
  if (chosen.empty()) chosen = "en";
  if (chosen.size() > 64 || !std::all_of(chosen.begin(), chosen.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '_' || c == '-' ||
               c == '/';
      })) {
    return fail(Error::invalid_argument("voice `{}` is not an espeak-ng voice name",
                                        chosen.substr(0, 64)));
  }
  return chosen;
}

int espeak_rate_for(std::optional<double> speed) {
  const double multiplier = speed && std::isfinite(*speed) && *speed > 0 ? *speed : 1.0;
  return std::clamp(static_cast<int>(std::lround(espeakRATE_NORMAL * multiplier)),
                    espeakRATE_MINIMUM, espeakRATE_MAXIMUM);
}

Result<std::unique_ptr<EspeakEngine>> EspeakEngine::create() {
  return std::unique_ptr<EspeakEngine>(new EspeakEngine());
}

std::optional<std::string> EspeakEngine::unavailable() const {
  return espeak_absence();
}

Result<std::uint32_t> EspeakEngine::sample_rate() const {
  auto library = espeak_library();
  if (!library) return fail(library.error());
  return (*library)->sample_rate;
}

Capabilities EspeakEngine::capabilities() const {
  return {{proto::TaskKind::AudioTts, {"espeak-ng:*"}}};
}

Result<TaskResult> EspeakEngine::dispatch(const DispatchRequest& request) {
  const auto* params = std::get_if<proto::AudioTtsParams>(&request.task.params);
  if (params == nullptr) return fail(cannot_serve(name(), request.task.kind()));
  if (params->text.empty()) return fail(Error::invalid_argument("tts text is empty"));
  if (params->text.size() > kMaxTextBytes) {
    return fail(Error::invalid_argument("tts text is {} bytes; the limit is {}",
                                        params->text.size(), kMaxTextBytes));
  }
  if (!media::can_encode_audio(params->ext)) {
    return fail(Error::invalid_argument(
        "audio ext `{}` is not supported by espeak-ng (wav, flac, ogg, opus, mp3)", params->ext));
  }
  auto voice = espeak_voice_for(params->voice, params->language);
  if (!voice) return fail(voice.error());
  const int rate = espeak_rate_for(params->speed);

  // Loaded on the first synthesis (issue 19: not carried by an idle worker).
  auto loaded = espeak_library();
  if (!loaded) return fail(loaded.error());
  const EspeakLibrary& library = **loaded;
  const std::uint32_t sample_rate = library.sample_rate;

  std::vector<std::int16_t> samples;
  {
    std::lock_guard lock(library_mutex());
    library.set_synth_callback(collect);
    if (library.set_voice_by_name(voice->c_str()) != EE_OK) {
      return fail(Error::invalid_argument("espeak-ng has no voice `{}` (try `en`, `fr`, `de`, …)",
                                          *voice));
    }
    library.set_parameter(espeakRATE, rate, 0);
    g_sink = &samples;
    const std::string text = params->text;  // NUL-terminated copy for the C API
    const espeak_ERROR rc = library.synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0,
                                          espeakCHARS_UTF8, nullptr, nullptr);
    library.synchronize();
    g_sink = nullptr;
    if (rc != EE_OK) return fail(Error::internal("espeak-ng synthesis failed (code {})", static_cast<int>(rc)));
  }
  if (samples.empty()) {
    return fail(Error::invalid_argument("espeak-ng produced no audio for this text"));
  }
  auto bytes = media::encode_audio(samples, sample_rate, params->ext);
  if (!bytes) return fail(bytes.error());
  kLog.info("tts.done", {{"job_id", request.job_id},
                         {"voice", *voice},
                         {"rate_wpm", rate},
                         {"seconds", static_cast<double>(samples.size()) / sample_rate},
                         {"ext", params->ext}});
  return TaskResult{AudioTtsResult{std::move(*bytes), params->ext}};
}

}  // namespace sw::engines
