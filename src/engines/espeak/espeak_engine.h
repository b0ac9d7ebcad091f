#pragma once
// The espeak-ng engine (`modelSource.engine == "espeak-ng"`, advertises `audio_tts:
// ["espeak-ng:*"]`): formant speech synthesis through Debian's libespeak-ng, on any machine, with
// no model files. The library is loaded on the first synthesis (espeak_library.h), not at start.
// It keeps global state and is not reentrant, so every synthesis runs under one process-wide
// lock. Thread-safe; dispatch() blocks.

#include <optional>
#include <string>

#include "engines/engine.h"

namespace sw::engines {

class EspeakEngine final : public Engine {
 public:
  // Loads nothing: the library is opened and initialised on the first dispatch(), which fails
  // with NotFound (retryable elsewhere) when it or its voice data is missing here.
  static Result<std::unique_ptr<EspeakEngine>> create();

  std::string_view name() const override { return "espeak-ng"; }
  // Why libespeak-ng or its voice data is missing here (espeak_absence(): a few stat calls
  // before the first synthesis, the load's outcome after): such a worker does not advertise
  // espeak-ng, and its offers are rejected before accept.
  std::optional<std::string> unavailable() const override;
  Capabilities capabilities() const override;
  Result<TaskResult> dispatch(const DispatchRequest& request) override;

  // Hz of the audio it makes (loads the library); NotFound as dispatch().
  Result<std::uint32_t> sample_rate() const;

 private:
  EspeakEngine() = default;
};

// The espeak voice for a request: `voice` unless it is "default"/empty, else `language`, else
// "en". Only [A-Za-z0-9+_-] and '/' are accepted (voice names are short identifiers).
Result<std::string> espeak_voice_for(const std::string& voice,
                                     const std::optional<std::string>& language);
// Words per minute for a speed multiplier (1.0 = espeak's normal 175), clamped to 80..450.
int espeak_rate_for(std::optional<double> speed);

}  // namespace sw::engines
