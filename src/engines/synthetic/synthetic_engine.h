#pragma once
// The synthetic engine (reference-worker.md §4.2, extended): deterministic outputs keyed by the
// sha256 of the input, produced with real codecs. It exists to prove the plumbing end to end on
// any machine. It advertises only `synthetic` and `synthetic-<kind>`, never a wildcard and never a
// real model id, so it cannot fulfil a real model's job. Stateless and thread-safe.

#include <chrono>
#include <filesystem>

#include "engines/engine.h"

namespace sw::engines {

class SyntheticEngine final : public Engine {
 public:
  // `job_duration`: simulated work time per job (0: none), so that an operator can rehearse a
  // farm (pause, kill a worker mid-job) with jobs that take as long as real ones. An llm job's
  // answer reaches the request's observer word by word, spread over it (the first word at once).
  // A cancelled request (DispatchRequest::stop) ends the wait, and the hold below, at once.
  // `hold_file` (tests only; empty: none): every job waits, after its simulated work, until this
  // file exists, so that a test keeps a job in flight for exactly as long as it needs (busy
  // rejects, shutdown grace, run limits) and releases it by creating the file: no timing window.
  explicit SyntheticEngine(std::chrono::milliseconds job_duration = std::chrono::milliseconds(0),
                           std::filesystem::path hold_file = {})
      : job_duration_(job_duration), hold_file_(std::move(hold_file)) {}

  static constexpr std::uint32_t kMinImageSide = 64;
  static constexpr std::uint32_t kMaxImageSide = 2048;
  static constexpr std::uint32_t kDefaultFps = 8;
  static constexpr std::uint32_t kMaxFps = 60;
  static constexpr double kMaxVideoSeconds = 60.0;
  // Rendered video pixels (width × height × frames) a single job may ask for (256 MiB of RGBA).
  static constexpr std::uint64_t kMaxVideoPixels = 64ull * 1024 * 1024;

  std::string_view name() const override { return "synthetic"; }
  Capabilities capabilities() const override;
  Result<TaskResult> dispatch(const DispatchRequest& request) override;

  // The model id advertised for one kind: synthetic-image, -llm, -stt, -tts, -video.
  static std::string model_for(proto::TaskKind kind);

 private:
  // Waits on the hold file, if any; false when the job was cancelled meanwhile.
  bool hold(const DispatchRequest& request) const;
  std::chrono::milliseconds job_duration_;
  std::filesystem::path hold_file_;
};

}  // namespace sw::engines
