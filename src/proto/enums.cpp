// Wire spellings of the protocol's enums. Each table is the single source of both directions.
#include <array>
#include <utility>

#include "proto/frames.h"
#include "proto/types.h"

namespace sw::proto {
namespace {

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  return "unknown";
}

template <class E, std::size_t N>
std::optional<E> value_of(const std::array<std::pair<E, std::string_view>, N>& table,
                          std::string_view text) {
  for (const auto& [e, name] : table) {
    if (name == text) return e;
  }
  return std::nullopt;
}

constexpr std::array<std::pair<TaskKind, std::string_view>, 5> kTaskKinds{{
    {TaskKind::Image, "image"},
    {TaskKind::Llm, "llm"},
    {TaskKind::AudioStt, "audio_stt"},
    {TaskKind::AudioTts, "audio_tts"},
    {TaskKind::Video, "video"},
}};
constexpr std::array<std::pair<UserPresence, std::string_view>, 2> kPresence{{
    {UserPresence::Idle, "idle"},
    {UserPresence::Active, "active"},
}};
constexpr std::array<std::pair<RejectCode, std::string_view>, 2> kRejectCodes{{
    {RejectCode::Busy, "busy"},
    {RejectCode::Paused, "paused"},
}};
constexpr std::array<std::pair<WorkerErrorCode, std::string_view>, 5> kErrorCodes{{
    {WorkerErrorCode::AuthFailed, "auth_failed"},
    {WorkerErrorCode::ProtocolViolation, "protocol_violation"},
    {WorkerErrorCode::DuplicateWorker, "duplicate_worker"},
    {WorkerErrorCode::WorkerDeleted, "worker_deleted"},
    {WorkerErrorCode::InternalError, "internal_error"},
}};
constexpr std::array<std::pair<ModelEngine, std::string_view>, 7> kEngines{{
    {ModelEngine::SdCpp, "sd-cpp"},
    {ModelEngine::LlamaCpp, "llama-cpp"},
    {ModelEngine::Onnx, "onnx"},
    {ModelEngine::Parakeet, "parakeet"},
    {ModelEngine::Synthetic, "synthetic"},
    {ModelEngine::WhisperCpp, "whisper-cpp"},
    {ModelEngine::EspeakNg, "espeak-ng"},
}};
constexpr std::array<std::pair<ModelFileRole, std::string_view>, 7> kRoles{{
    {ModelFileRole::DiffusionModel, "diffusion-model"},
    {ModelFileRole::TextEncoder, "text-encoder"},
    {ModelFileRole::TextEncoderVision, "text-encoder-vision"},
    {ModelFileRole::Vae, "vae"},
    {ModelFileRole::Lora, "lora"},
    {ModelFileRole::Model, "model"},
    {ModelFileRole::Vad, "vad"},
}};

}  // namespace

std::string_view to_string(TaskKind kind) {
  return name_of(kTaskKinds, kind);
}
std::optional<TaskKind> parse_task_kind(std::string_view text) {
  return value_of(kTaskKinds, text);
}
std::string_view to_string(UserPresence p) {
  return name_of(kPresence, p);
}
std::optional<UserPresence> parse_user_presence(std::string_view text) {
  return value_of(kPresence, text);
}
std::string_view to_string(RejectCode code) {
  return name_of(kRejectCodes, code);
}
std::optional<RejectCode> parse_reject_code(std::string_view text) {
  return value_of(kRejectCodes, text);
}
std::string_view to_string(WorkerErrorCode code) {
  return name_of(kErrorCodes, code);
}
std::optional<WorkerErrorCode> parse_worker_error_code(std::string_view text) {
  return value_of(kErrorCodes, text);
}
std::string_view to_string(ModelEngine engine) {
  return name_of(kEngines, engine);
}
std::optional<ModelEngine> parse_model_engine(std::string_view text) {
  return value_of(kEngines, text);
}
bool engine_serves(ModelEngine engine, TaskKind kind) {
  switch (engine) {
    case ModelEngine::SdCpp:
    case ModelEngine::Onnx: return kind == TaskKind::Image;
    case ModelEngine::LlamaCpp: return kind == TaskKind::Llm;
    case ModelEngine::WhisperCpp: return kind == TaskKind::AudioStt;
    case ModelEngine::EspeakNg: return kind == TaskKind::AudioTts;
    case ModelEngine::Synthetic: return true;
    case ModelEngine::Parakeet: return false;
  }
  return false;
}
std::string_view to_string(ModelFileRole role) {
  return name_of(kRoles, role);
}
std::optional<ModelFileRole> parse_model_file_role(std::string_view text) {
  return value_of(kRoles, text);
}
std::string_view to_string(SttTimestamps t) {
  return t == SttTimestamps::Word ? "word" : "segment";
}

std::uint16_t close_code_for(WorkerErrorCode code) {
  switch (code) {
    case WorkerErrorCode::AuthFailed: return 4001;
    case WorkerErrorCode::ProtocolViolation: return 4002;
    case WorkerErrorCode::DuplicateWorker: return 4003;
    case WorkerErrorCode::WorkerDeleted: return 4004;
    case WorkerErrorCode::InternalError: return 1000;
  }
  return 1000;
}

std::string_view frame_type(const WorkerFrame& frame) {
  static constexpr std::string_view kNames[] = {"hello",    "heartbeat",    "accept",
                                                "reject",   "completeJson", "fail",
                                                "logBatch", "readyForMore", "jobProgress"};
  return kNames[frame.index()];
}

std::string_view frame_type(const StudioFrame& frame) {
  static constexpr std::string_view kNames[] = {"welcome", "offer", "heartbeatAck", "completeAck",
                                                "failAck", "error", "cancel"};
  return kNames[frame.index()];
}

}  // namespace sw::proto
