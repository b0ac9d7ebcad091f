#pragma once
// The whisper-cpp engine (`modelSource.engine == "whisper-cpp"`, advertises `audio_stt:
// ["whisper-cpp:*"]`): speech to text through a resident whisper-server per model (and VAD model).
// The input is fetched from `inputUrl`, decoded and converted to 16 kHz mono PCM16 when it is not
// already. Thread-safe; dispatch() blocks.

#include <filesystem>
#include <memory>
#include <span>

#include "engines/engine.h"
#include "engines/runner/runner_pool.h"
#include "models/model_cache.h"

namespace sw::engines {

class WhisperEngine final : public Engine {
 public:
  WhisperEngine(std::filesystem::path whisper_server, std::shared_ptr<models::ModelCache> cache,
                std::shared_ptr<RunnerPool> runners);

  std::string_view name() const override { return "whisper-cpp"; }
  Capabilities capabilities() const override;
  std::optional<std::string> unavailable() const override { return program_unavailable(server_); }
  Result<TaskResult> dispatch(const DispatchRequest& request) override;

 private:
  std::filesystem::path server_;
  std::shared_ptr<models::ModelCache> cache_;
  std::shared_ptr<RunnerPool> runners_;
};

// The bytes whisper-server should get: the input itself when it is already a 16 kHz mono PCM16
// WAV, else a converted one. Errors name what is wrong with the audio.
Result<std::string> whisper_ready_wav(std::span<const std::uint8_t> input);

}  // namespace sw::engines
