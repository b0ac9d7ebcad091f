#include "engines/synthetic/synthetic_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <thread>

#include "common/job_phase.h"
#include "common/log.h"
#include "common/sha256.h"
#include "engines/synthetic/picture.h"
#include "engines/synthetic/tone.h"
#include "engines/synthetic/words.h"
#include "media/encoders.h"
#include "proto/codec.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::synthetic");

std::uint32_t clamp_side(std::uint32_t requested, std::uint32_t max_side) {
  return std::clamp(requested, SyntheticEngine::kMinImageSide, max_side);
}

// The hash input: the model and the canonical encoding of the whole task.
Sha256Digest seed_for(const DispatchRequest& request) {
  Sha256 hasher;
  hasher.update(request.model);
  hasher.update(std::string_view("\n"));
  hasher.update(proto::encode(request.task));
  return hasher.finish();
}

std::string hex16(const Sha256Digest& digest) {
  return to_hex(digest).substr(0, 16);
}

Result<TaskResult> run_image(const DispatchRequest& request, const proto::ImageParams& params) {
  if (params.ext != "webp" && params.ext != "png") {
    return fail(Error::invalid_argument(
        "ext: the synthetic engine writes png or webp images, not \"{}\"", params.ext));
  }
  const std::uint32_t width = clamp_side(params.width, SyntheticEngine::kMaxImageSide);
  const std::uint32_t height = clamp_side(params.height, SyntheticEngine::kMaxImageSide);
  if (width != params.width || height != params.height) {
    kLog.info("synthetic.size_clamped",
              {{"job_id", request.job_id},
               {"requested", fmt::format("{}x{}", params.width, params.height)},
               {"produced", fmt::format("{}x{}", width, height)}});
  }
  auto picture = synthetic::render_picture(seed_for(request), width, height);
  PhaseTimer encode(JobPhase::Encode);
  auto bytes = params.ext == "png" ? media::encode_png(picture) : media::encode_webp(picture);
  encode.stop();
  if (!bytes) return fail(std::move(bytes).error());
  return ImageResult{std::move(*bytes), params.ext};
}

// Waits `duration`, or less when `stop` is requested first (then false). A condition wait, not a
// sleep: a cancelled job lets go of its thread at once.
bool wait_unless_stopped(const std::stop_token& stop, std::chrono::nanoseconds duration) {
  if (duration.count() <= 0) return !stop.stop_requested();
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, duration, [] { return false; });
  return !stop.stop_requested();
}

// The answer in the pieces an observer hears: one word each, with the space that follows it.
std::vector<std::string_view> answer_pieces(std::string_view content) {
  std::vector<std::string_view> pieces;
  while (!content.empty()) {
    auto space = content.find(' ');
    const std::size_t length = space == std::string_view::npos ? content.size() : space + 1;
    pieces.push_back(content.substr(0, length));
    content.remove_prefix(length);
  }
  return pieces;
}

// `answer`: the content, for the observer.
Result<TaskResult> run_llm(const DispatchRequest& request, const proto::LlmParams& params,
                           std::string& answer) {
  const auto started = std::chrono::steady_clock::now();
  if (params.messages.empty()) {
    return fail(Error::invalid_argument("messages: at least one message is required"));
  }
  // Rendered as "role: content" lines, the reference's hash input and token-count basis.
  std::string rendered;
  if (params.system) rendered += "system: " + *params.system;
  for (const proto::ChatMessage& message : params.messages) {
    if (!rendered.empty()) rendered += '\n';
    rendered += message.role + ": " + message.content;
  }
  const std::string reply = "[synthetic] reply to prompt #" + hex16(sha256(rendered));

  // A real token budget and real stop strings, counted in whitespace words.
  const std::size_t budget = std::max<std::uint32_t>(params.max_tokens, 1);
  std::vector<std::string_view> words = synthetic::split_words(reply);
  std::string finish_reason = "stop";
  if (words.size() > budget) {
    words.resize(budget);
    finish_reason = "length";
  }
  std::string content;
  for (std::string_view word : words) {
    if (!content.empty()) content += ' ';
    content += word;
  }
  if (params.stop) {
    for (const std::string& stop : *params.stop) {
      if (stop.empty()) continue;
      if (auto at = content.find(stop); at != std::string::npos) {
        content.resize(at);
        finish_reason = "stop";
      }
    }
  }

  answer = content;
  proto::ChatCompletion completion;
  completion.model = request.model;
  proto::ChatCompletionChoice choice;
  choice.message.content = content;
  choice.finish_reason = finish_reason;
  completion.choices.push_back(std::move(choice));
  completion.usage.prompt_tokens = synthetic::split_words(rendered).size();
  completion.usage.completion_tokens = synthetic::split_words(content).size();
  completion.usage.total_tokens =
      completion.usage.prompt_tokens + completion.usage.completion_tokens;
  completion.elapsed_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count());
  return LlmResult{proto::to_raw_json(completion)};
}

Result<TaskResult> run_stt(const proto::AudioSttParams& params) {
  if (params.input_url.empty()) return fail(Error::invalid_argument("inputUrl: must not be empty"));
  proto::Transcript transcript;
  transcript.text = "[synthetic] transcript of " + hex16(sha256(params.input_url));
  transcript.language = params.translate.value_or(false) ? "en" : params.language.value_or("en");
  transcript.duration = 1.0;
  transcript.segments = std::vector<proto::TranscriptSegment>{{0.0, 1.0, transcript.text}};
  return AudioSttResult{proto::to_raw_json(transcript)};
}

Result<TaskResult> run_tts(const DispatchRequest& request, const proto::AudioTtsParams& params) {
  if (params.ext != "wav") {
    return fail(Error::invalid_argument("ext: the synthetic engine writes wav audio, not \"{}\"",
                                        params.ext));
  }
  auto samples =
      synthetic::render_speech(params.text, params.speed.value_or(1.0), seed_for(request));
  if (!samples) return fail(std::move(samples).error());
  PhaseTimer encode(JobPhase::Encode);
  auto bytes = media::encode_wav_pcm16(*samples, synthetic::kSpeechSampleRate, 1);
  encode.stop();
  if (!bytes) return fail(std::move(bytes).error());
  return AudioTtsResult{std::move(*bytes), "wav"};
}

Result<TaskResult> run_video(const DispatchRequest& request, const proto::VideoParams& params) {
  const std::uint32_t fps = params.fps.value_or(SyntheticEngine::kDefaultFps);
  if (fps == 0 || fps > SyntheticEngine::kMaxFps) {
    return fail(Error::invalid_argument("fps: {} is outside 1..{}", fps, SyntheticEngine::kMaxFps));
  }
  if (!std::isfinite(params.seconds) || params.seconds <= 0 ||
      params.seconds > SyntheticEngine::kMaxVideoSeconds) {
    return fail(Error::invalid_argument("seconds: {} is outside (0, {}]", params.seconds,
                                        SyntheticEngine::kMaxVideoSeconds));
  }
  const std::uint32_t width = clamp_side(params.width, SyntheticEngine::kMaxImageSide);
  const std::uint32_t height = clamp_side(params.height, SyntheticEngine::kMaxImageSide);
  const auto frame_count =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(params.seconds * fps)));
  const std::uint64_t pixels = static_cast<std::uint64_t>(width) * height * frame_count;
  if (pixels > SyntheticEngine::kMaxVideoPixels) {
    return fail(Error::invalid_argument(
        "video: {}x{} × {} frames is {} pixels, over the synthetic engine's limit of {}", width,
        height, frame_count, pixels, SyntheticEngine::kMaxVideoPixels));
  }

  const Sha256Digest seed = seed_for(request);
  std::vector<media::RgbaImage> frames;
  frames.reserve(frame_count);
  for (std::uint64_t i = 0; i < frame_count; ++i) {
    frames.push_back(synthetic::render_picture(
        seed, width, height, static_cast<double>(i) / static_cast<double>(frame_count)));
  }
  // No video codec is linked: mp4/webm requests get an animated WebP, and the result's ext says
  // so (the reference does the same); gif is honoured.
  const bool gif = params.ext == "gif";
  if (!gif && params.ext != "webp") {
    kLog.info("synthetic.video_format",
              {{"job_id", request.job_id}, {"requested", params.ext}, {"produced", "webp"}});
  }
  PhaseTimer encode(JobPhase::Encode);
  auto bytes =
      gif ? media::encode_animated_gif(frames, fps) : media::encode_animated_webp(frames, fps);
  encode.stop();
  if (!bytes) return fail(std::move(bytes).error());
  return VideoResult{std::move(*bytes), gif ? "gif" : "webp"};
}

}  // namespace

bool SyntheticEngine::hold(const DispatchRequest& request) const {
  if (hold_file_.empty()) return !request.cancelled();
  // The test latch (see the header): a poll, because the latch is a file another process
  // creates; its interval only delays the release (or the cancel), it decides nothing.
  kLog.info("synthetic.held", {{"job_id", request.job_id}, {"until", hold_file_.string()}});
  std::error_code ec;
  while (!std::filesystem::exists(hold_file_, ec)) {
    if (!wait_unless_stopped(request.stop, std::chrono::milliseconds(10))) return false;
  }
  return !request.cancelled();
}

std::string SyntheticEngine::model_for(proto::TaskKind kind) {
  switch (kind) {
    case proto::TaskKind::Image: return "synthetic-image";
    case proto::TaskKind::Llm: return "synthetic-llm";
    case proto::TaskKind::AudioStt: return "synthetic-stt";
    case proto::TaskKind::AudioTts: return "synthetic-tts";
    case proto::TaskKind::Video: return "synthetic-video";
  }
  return "synthetic";
}

Capabilities SyntheticEngine::capabilities() const {
  Capabilities caps;
  for (proto::TaskKind kind : proto::kAllTaskKinds) caps[kind] = {"synthetic", model_for(kind)};
  return caps;
}

Result<TaskResult> SyntheticEngine::dispatch(const DispatchRequest& request) {
  const proto::TaskKind kind = request.task.kind();
  const bool routed_here = request.source && request.source->engine == "synthetic";
  if (!routed_here && request.model != "synthetic" && request.model != model_for(kind)) {
    return fail(Error::unsupported("synthetic engine does not serve model `{}` for {} tasks",
                                   request.model, proto::to_string(kind)));
  }
  kLog.debug(
      "synthetic.dispatch",
      {{"job_id", request.job_id}, {"model", request.model}, {"kind", proto::to_string(kind)}});
  const auto* llm = std::get_if<proto::LlmParams>(&request.task.params);
  if (llm != nullptr) {
    // The answer is known before the simulated work; it is told in pieces spread over it, the
    // way a real model streams tokens (the first at once).
    std::string content;
    auto result = run_llm(request, *llm, content);
    if (!result) return result;
    const auto pieces = answer_pieces(content);
    const std::chrono::nanoseconds step =
        pieces.empty() ? std::chrono::nanoseconds(0) : job_duration_ / pieces.size();
    std::chrono::nanoseconds waited{0};
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      if (i > 0) {
        if (!wait_unless_stopped(request.stop, step)) {
          return fail(cancelled_error("the synthetic llm job"));
        }
        waited += step;
      }
      if (request.observer) request.observer->text(pieces[i], {});
    }
    if (!wait_unless_stopped(request.stop, job_duration_ - waited)) {
      return fail(cancelled_error("the synthetic llm job"));
    }
    if (!hold(request)) return fail(cancelled_error("the synthetic llm job"));
    return result;
  }
  // The simulated work (a worker thread), cut short by a cancel.
  if (!wait_unless_stopped(request.stop, job_duration_) || !hold(request)) {
    return fail(cancelled_error("the synthetic job"));
  }
  return std::visit(
      [&request](const auto& params) -> Result<TaskResult> {
        using P = std::decay_t<decltype(params)>;
        if constexpr (std::is_same_v<P, proto::ImageParams>) {
          return run_image(request, params);
        } else if constexpr (std::is_same_v<P, proto::LlmParams>) {
          std::string answer;
          return run_llm(request, params, answer);
        } else if constexpr (std::is_same_v<P, proto::AudioSttParams>) {
          return run_stt(params);
        } else if constexpr (std::is_same_v<P, proto::AudioTtsParams>) {
          return run_tts(request, params);
        } else {
          return run_video(request, params);
        }
      },
      request.task.params);
}

}  // namespace sw::engines
