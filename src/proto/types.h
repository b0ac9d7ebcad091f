#pragma once
// The reference wire types (reference-worker.md §1.5–§1.8) as plain C++ values.
//
// These are data only; JSON lives in codec.h. Field names mirror the wire keys in snake_case.
// Optional wire fields are std::optional and are omitted on output when empty; fields with a
// protocol default carry that default here.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/error.h"

namespace sw::proto {

// A JSON value carried verbatim (completeJson.result, jsonSchema, chatTemplateKwargs). Always
// valid, compact JSON: the only ways to make one are parse() (validates) and the codec.
class RawJson {
 public:
  RawJson() = default;  // JSON null
  static Result<RawJson> parse(std::string_view text);
  const std::string& text() const { return text_; }
  bool operator==(const RawJson&) const = default;

 private:
  friend struct RawJsonAccess;
  explicit RawJson(std::string compact) : text_(std::move(compact)) {}
  std::string text_ = "null";
};

enum class TaskKind { Image, Llm, AudioStt, AudioTts, Video };
inline constexpr TaskKind kAllTaskKinds[] = {TaskKind::Image, TaskKind::Llm, TaskKind::AudioStt,
                                             TaskKind::AudioTts, TaskKind::Video};
std::string_view to_string(TaskKind kind);  // "image", "llm", "audio_stt", "audio_tts", "video"
std::optional<TaskKind> parse_task_kind(std::string_view text);

enum class UserPresence { Idle, Active };
std::string_view to_string(UserPresence presence);
std::optional<UserPresence> parse_user_presence(std::string_view text);

// `reject.code`: why an offer was refused without counting an attempt.
enum class RejectCode { Busy, Paused };
std::string_view to_string(RejectCode code);
std::optional<RejectCode> parse_reject_code(std::string_view text);

// `error.code` from the studio; each maps to one WebSocket close code.
enum class WorkerErrorCode {
  AuthFailed,
  ProtocolViolation,
  DuplicateWorker,
  WorkerDeleted,
  InternalError
};
std::string_view to_string(WorkerErrorCode code);
std::optional<WorkerErrorCode> parse_worker_error_code(std::string_view text);
// 4001, 4002, 4003, 4004 and 1000 (internal_error), 1:1 with the studio's closeCodeForError.
std::uint16_t close_code_for(WorkerErrorCode code);

// `modelSource.engine`. The wire value is kept as a string (ModelSource::engine) so that an engine
// name this build does not know fails the one job with a clear message instead of dropping the
// whole session; this enum names the engines we know. whisper-cpp and espeak-ng are ours (the
// reference has no studio-routable STT/TTS engine).
enum class ModelEngine { SdCpp, LlamaCpp, Onnx, Parakeet, Synthetic, WhisperCpp, EspeakNg };
std::string_view to_string(ModelEngine engine);
std::optional<ModelEngine> parse_model_engine(std::string_view text);
// Whether `engine` can run `kind` tasks at all (reference-worker.md §4: sd-cpp and onnx image,
// llama-cpp llm, synthetic every kind; ours: whisper-cpp audio_stt, espeak-ng audio_tts; parakeet
// serves local streaming speech only, never a studio job).
bool engine_serves(ModelEngine engine, TaskKind kind);

// `modelSource.files[].role`, kebab-case. `vad` is ours (whisper's voice-activity model). Kept as a
// string on the wire for the same reason as the engine.
enum class ModelFileRole { DiffusionModel, TextEncoder, TextEncoderVision, Vae, Lora, Model, Vad };
std::string_view to_string(ModelFileRole role);
std::optional<ModelFileRole> parse_model_file_role(std::string_view text);

struct ChatMessage {
  std::string role;
  std::string content;
  bool operator==(const ChatMessage&) const = default;
};

struct ImageParams {
  std::string prompt;
  std::optional<std::string> negative_prompt;
  std::optional<std::string> init_image_url;
  std::optional<std::string> mask_url;
  std::optional<std::string> ref_image_url;
  std::optional<double> denoise;
  std::optional<double> cfg_scale;
  std::optional<std::string> sampling_method;
  std::uint32_t width = 512;
  std::uint32_t height = 512;
  std::uint32_t steps = 20;
  std::optional<std::uint64_t> seed;
  std::string ext = "webp";
  bool operator==(const ImageParams&) const = default;
};

struct LlmParams {
  std::vector<ChatMessage> messages;
  std::optional<std::string> system;
  std::uint32_t max_tokens = 512;
  double temperature = 0.7;
  std::optional<double> top_p;
  // Ours (issue 20): the sampler's seed, for repeatable answers. The reference's workers ignore
  // the key (their decoder drops unknown keys); ours passes it to llama-server as `seed`.
  std::optional<std::uint64_t> seed;
  std::optional<std::vector<std::string>> stop;
  std::optional<RawJson> json_schema;
  std::optional<std::string> reasoning;
  std::optional<RawJson> chat_template_kwargs;  // always a JSON object
  bool operator==(const LlmParams&) const = default;
};

enum class SttTimestamps { Segment, Word };
std::string_view to_string(SttTimestamps timestamps);

struct AudioSttParams {
  std::string input_url;
  std::optional<std::string> language;
  std::optional<bool> translate;
  std::optional<std::string> prompt;
  std::optional<bool> vad;
  std::optional<SttTimestamps> timestamps;
  bool operator==(const AudioSttParams&) const = default;
};

struct AudioTtsParams {
  std::string text;
  std::string voice = "default";
  std::optional<double> speed;
  std::optional<std::string> language;
  std::string ext = "wav";
  bool operator==(const AudioTtsParams&) const = default;
};

struct VideoParams {
  std::string prompt;
  std::optional<std::string> negative_prompt;
  std::optional<std::string> init_image_url;
  double seconds = 2.0;
  std::optional<std::uint32_t> fps;
  std::uint32_t width = 512;
  std::uint32_t height = 512;
  std::string ext = "mp4";
  bool operator==(const VideoParams&) const = default;
};

// `Task`: internally tagged by `kind` on the wire, params flattened beside it.
struct Task {
  std::variant<ImageParams, LlmParams, AudioSttParams, AudioTtsParams, VideoParams> params;
  TaskKind kind() const { return static_cast<TaskKind>(params.index()); }
  bool operator==(const Task&) const = default;
};

struct ModelFile {
  std::string role;  // see ModelFileRole
  std::string url;
  std::string filename;  // a plain file name; the models layer enforces it before any I/O
  std::optional<std::uint64_t> approx_bytes;
  std::optional<std::string> sha256;  // 64 hex characters (checked on decode), any case
  bool operator==(const ModelFile&) const = default;
};

struct ModelCliDefaults {
  double cfg_scale = 0;  // the four numeric keys are required on the wire
  std::uint32_t steps = 0;
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::optional<std::string> sampling_method;
  std::optional<double> flow_shift;
  std::optional<bool> zero_cond_t;
  std::optional<bool> offload_to_cpu;
  std::optional<std::uint32_t> context_size;
  std::optional<RawJson> chat_template_kwargs;  // always a JSON object
  std::optional<bool> mmap;
  std::optional<double> max_vram_gib;
  bool operator==(const ModelCliDefaults&) const = default;
};

struct ModelSource {
  std::string engine;  // see ModelEngine
  std::vector<ModelFile> files;
  ModelCliDefaults cli_defaults;
  bool operator==(const ModelSource&) const = default;
};

struct JobOfferClaim {
  std::string job_id;
  std::string game_id;
  std::string asset_name;
  std::string model;
  double vram_gb_estimate = 0;
  Task task;
  ModelSource model_source;
  bool operator==(const JobOfferClaim&) const = default;
};

// Per-kind model lists, in TaskKind order on the wire.
using ModelsPerKind = std::map<TaskKind, std::vector<std::string>>;

struct WorkerCapabilities {
  std::string machine_name;
  std::string username;
  std::string agent_version;
  std::string engine = "multi";
  double vram_total_gb = 0;
  double vram_threshold_gb = 0;
  bool auto_enabled = true;
  bool auto_start = false;
  bool auto_update = false;
  bool start_minimised = false;
  bool only_when_idle = false;
  std::optional<UserPresence> user_presence;
  std::vector<std::string> supported_models;
  std::vector<TaskKind> task_kinds;
  ModelsPerKind supported_models_per_kind;
  bool operator==(const WorkerCapabilities&) const = default;
};

struct LogEntry {
  std::string ts;  // RFC 3339, millisecond precision, `Z`
  std::string level;
  std::string category;
  std::string message;
  std::optional<std::string> job_id;
  bool operator==(const LogEntry&) const = default;
};

}  // namespace sw::proto
