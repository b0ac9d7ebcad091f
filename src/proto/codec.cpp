#include "proto/codec.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "common/json_text.h"
#include "proto/json_readers.h"

namespace sw::proto {

// The codec's privileged constructor of RawJson: text it produced itself is already compact.
struct RawJsonAccess {
  static RawJson make(std::string compact) { return RawJson(std::move(compact)); }
};

namespace {

using json = nlohmann::json;           // decoding: std::map lookups
using ojson = nlohmann::ordered_json;  // encoding: keys in protocol order, `type` first

constexpr std::size_t kMaxDepth = kJsonMaxDepth;
// Not a wire limit: the transports cap their messages first (HTTP bodies per route, WebSocket
// read_message_max); this only keeps the codec from being the weakest link.
constexpr std::size_t kMaxDocumentBytes = std::size_t{1} << 30;

// ---------------------------------------------------------------------------------------------
// Decoding support

// A location in the document, rendered only when an error is reported (keeps decoding cheap).
struct Path {
  const Path* parent = nullptr;
  std::string_view key;
  std::size_t index = std::numeric_limits<std::size_t>::max();

  Path child(std::string_view k) const { return Path{this, k}; }
  Path at(std::size_t i) const { return Path{this, {}, i}; }

  std::string render() const {
    std::string out;
    render_into(out);
    return out.empty() ? std::string("document") : out;
  }
  void render_into(std::string& out) const {
    if (parent != nullptr) parent->render_into(out);
    if (!key.empty()) {
      if (!out.empty()) out += '.';
      out += key;
    } else if (index != std::numeric_limits<std::size_t>::max()) {
      out += '[';
      out += std::to_string(index);
      out += ']';
    }
  }
};

std::string_view json_type(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number";
    default: return "value";
  }
}

tl::unexpected<Error> bad(const Path& path, std::string_view problem) {
  return fail(Error::protocol("{}: {}", path.render(), problem));
}

tl::unexpected<Error> expected(const Path& path, std::string_view what, const json& got) {
  if (got.is_number()) {
    return fail(Error::protocol("{}: expected {}, got number {}", path.render(), what, got.dump()));
  }
  return fail(Error::protocol("{}: expected {}, got {}", path.render(), what, json_type(got)));
}

// Every frame and body the codec decodes goes through the common guarded entry point: size and
// nesting are checked before the parser and the recursive dump see the text, so a hostile peer
// cannot exhaust the stack.
Result<json> parse_document(std::string_view text) {
  auto parsed = parse_json(text, "document", JsonLimits{kMaxDocumentBytes, kMaxDepth});
  if (!parsed) return fail(Error::protocol("{}", parsed.error().message));
  return std::move(*parsed);
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- scalar readers: one overload per C++ type ----
Status read(const json& j, const Path& p, std::string& out) {
  if (!j.is_string()) return expected(p, "string", j);
  out = j.get_ref<const std::string&>();
  return {};
}

Status read(const json& j, const Path& p, bool& out) {
  if (!j.is_boolean()) return expected(p, "boolean", j);
  out = j.get<bool>();
  return {};
}

Status read(const json& j, const Path& p, double& out) {
  if (!j.is_number()) return expected(p, "number", j);
  out = j.get<double>();
  return {};
}

template <class U>
requires std::is_unsigned_v<U> Status read(const json& j, const Path& p, U& out) {
  if (!j.is_number_unsigned()) return expected(p, "unsigned integer", j);
  auto value = j.get<std::uint64_t>();
  if (value > std::numeric_limits<U>::max()) {
    return bad(p, "value " + std::to_string(value) + " is out of range (max " +
                      std::to_string(std::numeric_limits<U>::max()) + ")");
  }
  out = static_cast<U>(value);
  return {};
}

Status read(const json& j, const Path&, RawJson& out) {
  out = RawJsonAccess::make(dump(j));
  return {};
}

Status read(const json& j, const Path& p, TaskKind& out) {
  if (!j.is_string()) return expected(p, "task kind string", j);
  auto kind = parse_task_kind(j.get_ref<const std::string&>());
  if (!kind) return bad(p, "unknown task kind " + dump(j));
  out = *kind;
  return {};
}

Status read(const json& j, const Path& p, UserPresence& out) {
  if (!j.is_string()) return expected(p, "\"idle\" or \"active\"", j);
  auto presence = parse_user_presence(j.get_ref<const std::string&>());
  if (!presence) return bad(p, "unknown user presence " + dump(j) + " (expected idle or active)");
  out = *presence;
  return {};
}

Status read(const json& j, const Path& p, RejectCode& out) {
  if (!j.is_string()) return expected(p, "\"busy\" or \"paused\"", j);
  auto code = parse_reject_code(j.get_ref<const std::string&>());
  if (!code) return bad(p, "unknown reject code " + dump(j) + " (expected busy or paused)");
  out = *code;
  return {};
}

Status read(const json& j, const Path& p, WorkerErrorCode& out) {
  if (!j.is_string()) return expected(p, "error code string", j);
  auto code = parse_worker_error_code(j.get_ref<const std::string&>());
  if (!code) return bad(p, "unknown error code " + dump(j));
  out = *code;
  return {};
}

Status read(const json& j, const Path& p, SttTimestamps& out) {
  if (!j.is_string()) return expected(p, "\"segment\" or \"word\"", j);
  const auto& text = j.get_ref<const std::string&>();
  if (text == "segment") {
    out = SttTimestamps::Segment;
  } else if (text == "word") {
    out = SttTimestamps::Word;
  } else {
    return bad(p, "unknown timestamps mode " + dump(j) + " (expected segment or word)");
  }
  return {};
}

// Every reader overload, declared up front so the templates below can find them all.
Status read(const json& j, const Path& p, ChatMessage& out);
Status read(const json& j, const Path& p, Task& out);
Status read(const json& j, const Path& p, ModelFile& out);
Status read(const json& j, const Path& p, ModelCliDefaults& out);
Status read(const json& j, const Path& p, ModelSource& out);
Status read(const json& j, const Path& p, JobOfferClaim& out);
Status read(const json& j, const Path& p, ModelsPerKind& out);
Status read(const json& j, const Path& p, WorkerCapabilities& out);
Status read(const json& j, const Path& p, LogEntry& out);
Status read(const json& j, const Path& p, RegisterRequest& out);
Status read(const json& j, const Path& p, RegisterResponse& out);
Status read(const json& j, const Path& p, RegistrationPoll& out);
Status read(const json& j, const Path& p, ChatCompletionMessage& out);
Status read(const json& j, const Path& p, ChatCompletionChoice& out);
Status read(const json& j, const Path& p, ChatCompletionUsage& out);
Status read(const json& j, const Path& p, ChatCompletion& out);
Status read(const json& j, const Path& p, TranscriptSegment& out);
Status read(const json& j, const Path& p, Transcript& out);
Status read(const json& j, const Path& p, StudioLimits& out);
Status read(const json& j, const Path& p, WorkerCapacity& out);

template <class T>
Status read(const json& j, const Path& p, std::vector<T>& out) {
  if (!j.is_array()) return expected(p, "array", j);
  out.clear();
  out.reserve(j.size());
  std::size_t i = 0;
  for (const json& element : j) {
    T value{};
    SW_TRY(read(element, p.at(i), value));
    out.push_back(std::move(value));
    ++i;
  }
  return {};
}

// An object's fields: req (present and not null... unless the type accepts null), opt (missing or
// null → nullopt), dflt (missing or null → keep the default already in `out`).
class Obj {
 public:
  Obj(const json& j, const Path& p) : j_(j), p_(p) {}

  Status check() const {
    if (!j_.is_object()) return expected(p_, "object", j_);
    return {};
  }

  template <class T>
  Status req(const char* key, T& out) const {
    auto it = j_.find(key);
    Path child = p_.child(key);
    if (it == j_.end()) return bad(child, "missing required field");
    return read(*it, child, out);
  }

  template <class T>
  Status opt(const char* key, std::optional<T>& out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      out.reset();
      return {};
    }
    T value{};
    SW_TRY(read(*it, p_.child(key), value));
    out = std::move(value);
    return {};
  }

  template <class T>
  Status dflt(const char* key, T& out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return {};
    return read(*it, p_.child(key), out);
  }

  // An optional JSON object kept verbatim (chatTemplateKwargs).
  Status opt_object(const char* key, std::optional<RawJson>& out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      out.reset();
      return {};
    }
    if (!it->is_object()) return expected(p_.child(key), "object", *it);
    out = RawJsonAccess::make(dump(*it));
    return {};
  }

  const json& raw() const { return j_; }
  const Path& path() const { return p_; }

 private:
  const json& j_;
  const Path& p_;
};

// ---- struct readers ----
Status read(const json& j, const Path& p, ChatMessage& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("role", out.role));
  SW_TRY(o.req("content", out.content));
  return {};
}

Status read_image(const Obj& o, ImageParams& out) {
  SW_TRY(o.req("prompt", out.prompt));
  SW_TRY(o.opt("negativePrompt", out.negative_prompt));
  SW_TRY(o.opt("initImageUrl", out.init_image_url));
  SW_TRY(o.opt("maskUrl", out.mask_url));
  SW_TRY(o.opt("refImageUrl", out.ref_image_url));
  SW_TRY(o.opt("denoise", out.denoise));
  SW_TRY(o.opt("cfgScale", out.cfg_scale));
  SW_TRY(o.opt("samplingMethod", out.sampling_method));
  SW_TRY(o.dflt("width", out.width));
  SW_TRY(o.dflt("height", out.height));
  SW_TRY(o.dflt("steps", out.steps));
  SW_TRY(o.opt("seed", out.seed));
  SW_TRY(o.dflt("ext", out.ext));
  return {};
}

Status read_llm(const Obj& o, LlmParams& out) {
  SW_TRY(o.req("messages", out.messages));
  SW_TRY(o.opt("system", out.system));
  SW_TRY(o.dflt("maxTokens", out.max_tokens));
  SW_TRY(o.dflt("temperature", out.temperature));
  SW_TRY(o.opt("topP", out.top_p));
  SW_TRY(o.opt("seed", out.seed));
  SW_TRY(o.opt("stop", out.stop));
  SW_TRY(o.opt("jsonSchema", out.json_schema));
  SW_TRY(o.opt("reasoning", out.reasoning));
  SW_TRY(o.opt_object("chatTemplateKwargs", out.chat_template_kwargs));
  return {};
}

Status read_stt(const Obj& o, AudioSttParams& out) {
  SW_TRY(o.req("inputUrl", out.input_url));
  SW_TRY(o.opt("language", out.language));
  SW_TRY(o.opt("translate", out.translate));
  SW_TRY(o.opt("prompt", out.prompt));
  SW_TRY(o.opt("vad", out.vad));
  SW_TRY(o.opt("timestamps", out.timestamps));
  return {};
}

Status read_tts(const Obj& o, AudioTtsParams& out) {
  SW_TRY(o.req("text", out.text));
  SW_TRY(o.dflt("voice", out.voice));
  SW_TRY(o.opt("speed", out.speed));
  SW_TRY(o.opt("language", out.language));
  SW_TRY(o.dflt("ext", out.ext));
  return {};
}

Status read_video(const Obj& o, VideoParams& out) {
  SW_TRY(o.req("prompt", out.prompt));
  SW_TRY(o.opt("negativePrompt", out.negative_prompt));
  SW_TRY(o.opt("initImageUrl", out.init_image_url));
  SW_TRY(o.dflt("seconds", out.seconds));
  SW_TRY(o.opt("fps", out.fps));
  SW_TRY(o.dflt("width", out.width));
  SW_TRY(o.dflt("height", out.height));
  SW_TRY(o.dflt("ext", out.ext));
  return {};
}

Status read(const json& j, const Path& p, Task& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  TaskKind kind{};
  SW_TRY(o.req("kind", kind));
  switch (kind) {
    case TaskKind::Image: {
      ImageParams params;
      SW_TRY(read_image(o, params));
      out.params = std::move(params);
      break;
    }
    case TaskKind::Llm: {
      LlmParams params;
      SW_TRY(read_llm(o, params));
      out.params = std::move(params);
      break;
    }
    case TaskKind::AudioStt: {
      AudioSttParams params;
      SW_TRY(read_stt(o, params));
      out.params = std::move(params);
      break;
    }
    case TaskKind::AudioTts: {
      AudioTtsParams params;
      SW_TRY(read_tts(o, params));
      out.params = std::move(params);
      break;
    }
    case TaskKind::Video: {
      VideoParams params;
      SW_TRY(read_video(o, params));
      out.params = std::move(params);
      break;
    }
  }
  return {};
}

bool is_hex64(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

Status read(const json& j, const Path& p, ModelFile& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("role", out.role));
  SW_TRY(o.req("url", out.url));
  SW_TRY(o.req("filename", out.filename));
  SW_TRY(o.opt("approxBytes", out.approx_bytes));
  SW_TRY(o.opt("sha256", out.sha256));
  if (out.role.empty()) return bad(p.child("role"), "must not be empty");
  if (out.sha256 && !is_hex64(*out.sha256)) {
    return bad(p.child("sha256"), "expected 64 hexadecimal characters");
  }
  return {};
}

Status read(const json& j, const Path& p, ModelCliDefaults& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("cfgScale", out.cfg_scale));
  SW_TRY(o.req("steps", out.steps));
  SW_TRY(o.req("width", out.width));
  SW_TRY(o.req("height", out.height));
  SW_TRY(o.opt("samplingMethod", out.sampling_method));
  SW_TRY(o.opt("flowShift", out.flow_shift));
  SW_TRY(o.opt("zeroCondT", out.zero_cond_t));
  SW_TRY(o.opt("offloadToCpu", out.offload_to_cpu));
  SW_TRY(o.opt("contextSize", out.context_size));
  SW_TRY(o.opt_object("chatTemplateKwargs", out.chat_template_kwargs));
  SW_TRY(o.opt("mmap", out.mmap));
  SW_TRY(o.opt("maxVramGib", out.max_vram_gib));
  return {};
}

Status read(const json& j, const Path& p, ModelSource& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("engine", out.engine));
  if (out.engine.empty()) return bad(p.child("engine"), "must not be empty");
  SW_TRY(o.req("files", out.files));
  SW_TRY(o.req("cliDefaults", out.cli_defaults));
  return {};
}

Status read(const json& j, const Path& p, JobOfferClaim& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("jobId", out.job_id));
  if (out.job_id.empty()) return bad(p.child("jobId"), "must not be empty");
  SW_TRY(o.req("gameId", out.game_id));
  SW_TRY(o.req("assetName", out.asset_name));
  SW_TRY(o.req("model", out.model));
  SW_TRY(o.req("vramGbEstimate", out.vram_gb_estimate));
  SW_TRY(o.req("task", out.task));
  SW_TRY(o.req("modelSource", out.model_source));
  return {};
}

Status read(const json& j, const Path& p, ModelsPerKind& out) {
  if (!j.is_object()) return expected(p, "object", j);
  out.clear();
  for (auto it = j.begin(); it != j.end(); ++it) {
    Path child = p.child(it.key());
    auto kind = parse_task_kind(it.key());
    if (!kind) return bad(child, "unknown task kind \"" + it.key() + "\"");
    SW_TRY(read(it.value(), child, out[*kind]));
  }
  return {};
}

Status read(const json& j, const Path& p, WorkerCapabilities& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("machineName", out.machine_name));
  SW_TRY(o.req("username", out.username));
  SW_TRY(o.req("agentVersion", out.agent_version));
  SW_TRY(o.req("engine", out.engine));
  SW_TRY(o.req("vramTotalGb", out.vram_total_gb));
  SW_TRY(o.req("vramThresholdGb", out.vram_threshold_gb));
  SW_TRY(o.req("autoEnabled", out.auto_enabled));
  SW_TRY(o.req("autoStart", out.auto_start));
  out.auto_update = false;
  out.start_minimised = false;
  out.only_when_idle = false;
  SW_TRY(o.dflt("autoUpdate", out.auto_update));
  SW_TRY(o.dflt("startMinimised", out.start_minimised));
  SW_TRY(o.dflt("onlyWhenIdle", out.only_when_idle));
  SW_TRY(o.opt("userPresence", out.user_presence));
  SW_TRY(o.req("supportedModels", out.supported_models));
  SW_TRY(o.dflt("taskKinds", out.task_kinds));
  SW_TRY(o.dflt("supportedModelsPerKind", out.supported_models_per_kind));
  return {};
}

Status read(const json& j, const Path& p, LogEntry& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("ts", out.ts));
  SW_TRY(o.req("level", out.level));
  SW_TRY(o.req("category", out.category));
  SW_TRY(o.req("message", out.message));
  SW_TRY(o.opt("jobId", out.job_id));
  return {};
}

Status read(const json& j, const Path& p, StudioLimits& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("maxFrameBytes", out.max_frame_bytes));
  SW_TRY(o.req("maxUploadBytes", out.max_upload_bytes));
  return {};
}

Status read(const json& j, const Path& p, WorkerCapacity& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("room", out.room));
  SW_TRY(o.dflt("jobIds", out.job_ids));
  return {};
}

Status read(const json& j, const Path& p, RegisterRequest& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("installId", out.install_id));
  SW_TRY(o.req("registrationSecretHash", out.registration_secret_hash));
  if (!is_hex64(out.registration_secret_hash)) {
    return bad(p.child("registrationSecretHash"), "expected 64 hexadecimal characters");
  }
  SW_TRY(o.req("capabilities", out.capabilities));
  SW_TRY(o.req("userAgent", out.user_agent));
  SW_TRY(o.opt("label", out.label));
  SW_TRY(o.opt("joinToken", out.join_token));
  return {};
}

Status read(const json& j, const Path& p, RegisterResponse& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("requestId", out.request_id));
  SW_TRY(o.req("status", out.status));
  return {};
}

Status read(const json& j, const Path& p, RegistrationPoll& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  std::string status;
  SW_TRY(o.req("status", status));
  if (status == "pending") {
    out = RegistrationPending{};
  } else if (status == "approved") {
    RegistrationApproved approved;
    SW_TRY(o.req("workerId", approved.worker_id));
    SW_TRY(o.req("authToken", approved.auth_token));
    out = std::move(approved);
  } else if (status == "rejected") {
    RegistrationRejected rejected;
    SW_TRY(o.dflt("reason", rejected.reason));
    out = std::move(rejected);
  } else {
    return bad(p.child("status"), "unknown registration status \"" + status +
                                      "\" (expected pending, approved, rejected)");
  }
  return {};
}

Status read(const json& j, const Path& p, ChatCompletionMessage& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("role", out.role));
  // OpenAI allows a null content (tool calls); we carry it as empty text.
  out.content.clear();
  SW_TRY(o.dflt("content", out.content));
  SW_TRY(o.opt("reasoning_content", out.reasoning_content));
  return {};
}

Status read(const json& j, const Path& p, ChatCompletionChoice& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.dflt("index", out.index));
  SW_TRY(o.req("message", out.message));
  SW_TRY(o.dflt("finish_reason", out.finish_reason));
  return {};
}

Status read(const json& j, const Path& p, ChatCompletionUsage& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("prompt_tokens", out.prompt_tokens));
  SW_TRY(o.req("completion_tokens", out.completion_tokens));
  SW_TRY(o.req("total_tokens", out.total_tokens));
  return {};
}

Status read(const json& j, const Path& p, ChatCompletion& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("object", out.object));
  if (out.object != "chat.completion") {
    return bad(p.child("object"), "expected \"chat.completion\", got \"" + out.object + "\"");
  }
  SW_TRY(o.dflt("model", out.model));
  SW_TRY(o.req("choices", out.choices));
  SW_TRY(o.req("usage", out.usage));
  SW_TRY(o.opt("elapsed_ms", out.elapsed_ms));
  return {};
}

Status read(const json& j, const Path& p, TranscriptSegment& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("start", out.start));
  SW_TRY(o.req("end", out.end));
  SW_TRY(o.req("text", out.text));
  return {};
}

Status read(const json& j, const Path& p, Transcript& out) {
  Obj o(j, p);
  SW_TRY(o.check());
  SW_TRY(o.req("text", out.text));
  SW_TRY(o.dflt("language", out.language));
  SW_TRY(o.dflt("duration", out.duration));
  SW_TRY(o.opt("segments", out.segments));
  return {};
}

// Parses `text` and reads it as T from the document root.
template <class T>
Result<T> decode_as(std::string_view text) {
  auto doc = parse_document(text);
  if (!doc) return fail(std::move(doc).error());
  Path root;
  T value{};
  SW_TRY(read(*doc, root, value));
  return value;
}

// ---------------------------------------------------------------------------------------------
// Encoding support

template <class T>
void put_opt(ojson& o, const char* key, const std::optional<T>& value);

ojson to_json(const RawJson& raw) {
  // RawJson is valid by construction; a parse failure here would be a codec bug.
  return ojson::parse(raw.text(), nullptr, /*allow_exceptions=*/false);
}

ojson to_json(const std::string& s) {
  return s;
}
ojson to_json(bool b) {
  return b;
}
ojson to_json(double d) {
  return d;
}
ojson to_json(std::uint32_t v) {
  return v;
}
ojson to_json(std::uint64_t v) {
  return v;
}
ojson to_json(TaskKind k) {
  return std::string(to_string(k));
}
ojson to_json(UserPresence p) {
  return std::string(to_string(p));
}
ojson to_json(RejectCode c) {
  return std::string(to_string(c));
}
ojson to_json(WorkerErrorCode c) {
  return std::string(to_string(c));
}
ojson to_json(SttTimestamps t) {
  return std::string(to_string(t));
}

ojson to_json(const ChatMessage& m);
ojson to_json(const ModelFile& f);
ojson to_json(const LogEntry& e);

template <class T>
ojson to_json(const std::vector<T>& values) {
  ojson arr = ojson::array();
  for (const T& v : values) arr.push_back(to_json(v));
  return arr;
}

template <class T>
void put_opt(ojson& o, const char* key, const std::optional<T>& value) {
  if (value) o[key] = to_json(*value);
}

ojson to_json(const ChatMessage& m) {
  ojson o;
  o["role"] = m.role;
  o["content"] = m.content;
  return o;
}

void put_params(ojson& o, const ImageParams& p) {
  o["prompt"] = p.prompt;
  put_opt(o, "negativePrompt", p.negative_prompt);
  put_opt(o, "initImageUrl", p.init_image_url);
  put_opt(o, "maskUrl", p.mask_url);
  put_opt(o, "refImageUrl", p.ref_image_url);
  put_opt(o, "denoise", p.denoise);
  put_opt(o, "cfgScale", p.cfg_scale);
  put_opt(o, "samplingMethod", p.sampling_method);
  o["width"] = p.width;
  o["height"] = p.height;
  o["steps"] = p.steps;
  put_opt(o, "seed", p.seed);
  o["ext"] = p.ext;
}

void put_params(ojson& o, const LlmParams& p) {
  o["messages"] = to_json(p.messages);
  put_opt(o, "system", p.system);
  o["maxTokens"] = p.max_tokens;
  o["temperature"] = p.temperature;
  put_opt(o, "topP", p.top_p);
  put_opt(o, "seed", p.seed);
  put_opt(o, "stop", p.stop);
  put_opt(o, "jsonSchema", p.json_schema);
  put_opt(o, "reasoning", p.reasoning);
  put_opt(o, "chatTemplateKwargs", p.chat_template_kwargs);
}

void put_params(ojson& o, const AudioSttParams& p) {
  o["inputUrl"] = p.input_url;
  put_opt(o, "language", p.language);
  put_opt(o, "translate", p.translate);
  put_opt(o, "prompt", p.prompt);
  put_opt(o, "vad", p.vad);
  put_opt(o, "timestamps", p.timestamps);
}

void put_params(ojson& o, const AudioTtsParams& p) {
  o["text"] = p.text;
  o["voice"] = p.voice;
  put_opt(o, "speed", p.speed);
  put_opt(o, "language", p.language);
  o["ext"] = p.ext;
}

void put_params(ojson& o, const VideoParams& p) {
  o["prompt"] = p.prompt;
  put_opt(o, "negativePrompt", p.negative_prompt);
  put_opt(o, "initImageUrl", p.init_image_url);
  o["seconds"] = p.seconds;
  put_opt(o, "fps", p.fps);
  o["width"] = p.width;
  o["height"] = p.height;
  o["ext"] = p.ext;
}

ojson to_json(const Task& task) {
  ojson o;
  o["kind"] = std::string(to_string(task.kind()));
  std::visit([&o](const auto& params) { put_params(o, params); }, task.params);
  return o;
}

ojson to_json(const ModelFile& f) {
  ojson o;
  o["role"] = f.role;
  o["url"] = f.url;
  o["filename"] = f.filename;
  put_opt(o, "approxBytes", f.approx_bytes);
  put_opt(o, "sha256", f.sha256);
  return o;
}

ojson to_json(const ModelCliDefaults& d) {
  ojson o;
  o["cfgScale"] = d.cfg_scale;
  o["steps"] = d.steps;
  o["width"] = d.width;
  o["height"] = d.height;
  put_opt(o, "samplingMethod", d.sampling_method);
  put_opt(o, "flowShift", d.flow_shift);
  put_opt(o, "zeroCondT", d.zero_cond_t);
  put_opt(o, "offloadToCpu", d.offload_to_cpu);
  put_opt(o, "contextSize", d.context_size);
  put_opt(o, "chatTemplateKwargs", d.chat_template_kwargs);
  put_opt(o, "mmap", d.mmap);
  put_opt(o, "maxVramGib", d.max_vram_gib);
  return o;
}

ojson to_json(const ModelSource& s) {
  ojson o;
  o["engine"] = s.engine;
  o["files"] = to_json(s.files);
  o["cliDefaults"] = to_json(s.cli_defaults);
  return o;
}

ojson to_json(const JobOfferClaim& c) {
  ojson o;
  o["jobId"] = c.job_id;
  o["gameId"] = c.game_id;
  o["assetName"] = c.asset_name;
  o["model"] = c.model;
  o["vramGbEstimate"] = c.vram_gb_estimate;
  o["task"] = to_json(c.task);
  o["modelSource"] = to_json(c.model_source);
  return o;
}

ojson to_json(const WorkerCapabilities& c) {
  ojson o;
  o["machineName"] = c.machine_name;
  o["username"] = c.username;
  o["agentVersion"] = c.agent_version;
  o["engine"] = c.engine;
  o["vramTotalGb"] = c.vram_total_gb;
  o["vramThresholdGb"] = c.vram_threshold_gb;
  o["autoEnabled"] = c.auto_enabled;
  o["autoStart"] = c.auto_start;
  o["autoUpdate"] = c.auto_update;
  o["startMinimised"] = c.start_minimised;
  o["onlyWhenIdle"] = c.only_when_idle;
  put_opt(o, "userPresence", c.user_presence);
  o["supportedModels"] = to_json(c.supported_models);
  o["taskKinds"] = to_json(c.task_kinds);
  ojson per_kind = ojson::object();
  for (const auto& [kind, models] : c.supported_models_per_kind) {
    per_kind[std::string(to_string(kind))] = to_json(models);
  }
  o["supportedModelsPerKind"] = std::move(per_kind);
  return o;
}

ojson to_json(const LogEntry& e) {
  ojson o;
  o["ts"] = e.ts;
  o["level"] = e.level;
  o["category"] = e.category;
  o["message"] = e.message;
  put_opt(o, "jobId", e.job_id);
  return o;
}

ojson typed(std::string_view type) {
  ojson o;
  o["type"] = std::string(type);
  return o;
}

ojson to_json(const WorkerFrame& frame) {
  ojson o = typed(frame_type(frame));
  std::visit(
      [&o](const auto& f) {
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, Hello>) {
          o["authToken"] = f.auth_token;
          o["capabilities"] = to_json(f.capabilities);
          if (!f.features.empty()) o["features"] = to_json(f.features);
        } else if constexpr (std::is_same_v<F, Heartbeat>) {
          o["capabilities"] = to_json(f.capabilities);
          put_opt(o, "currentJobId", f.current_job_id);
          if (f.capacity) {
            ojson capacity;
            capacity["room"] = f.capacity->room;
            capacity["jobIds"] = to_json(f.capacity->job_ids);
            o["capacity"] = std::move(capacity);
          }
        } else if constexpr (std::is_same_v<F, Accept>) {
          o["jobId"] = f.job_id;
        } else if constexpr (std::is_same_v<F, Reject>) {
          o["jobId"] = f.job_id;
          o["reason"] = f.reason;
          put_opt(o, "code", f.code);
        } else if constexpr (std::is_same_v<F, CompleteJson>) {
          o["jobId"] = f.job_id;
          o["result"] = to_json(f.result);
          put_opt(o, "prompt", f.prompt);
        } else if constexpr (std::is_same_v<F, Fail>) {
          o["jobId"] = f.job_id;
          o["error"] = f.error;
          o["retryable"] = f.retryable;
        } else if constexpr (std::is_same_v<F, LogBatch>) {
          o["entries"] = to_json(f.entries);
        } else if constexpr (std::is_same_v<F, JobProgress>) {
          o["jobId"] = f.job_id;
          o["phase"] = f.phase;
          put_opt(o, "delta", f.delta);
          put_opt(o, "reasoningDelta", f.reasoning_delta);
          put_opt(o, "done", f.done);
          put_opt(o, "total", f.total);
        } else {
          static_assert(std::is_same_v<F, ReadyForMore>);
        }
      },
      frame);
  return o;
}

ojson to_json(const StudioFrame& frame) {
  ojson o = typed(frame_type(frame));
  std::visit(
      [&o](const auto& f) {
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, Welcome>) {
          o["workerId"] = f.worker_id;
          o["serverTime"] = f.server_time;
          if (!f.features.empty()) o["features"] = to_json(f.features);
          if (f.limits) {
            ojson limits;
            limits["maxFrameBytes"] = f.limits->max_frame_bytes;
            limits["maxUploadBytes"] = f.limits->max_upload_bytes;
            o["limits"] = std::move(limits);
          }
        } else if constexpr (std::is_same_v<F, Offer>) {
          o["claim"] = to_json(f.claim);
        } else if constexpr (std::is_same_v<F, CompleteAck> || std::is_same_v<F, FailAck>) {
          o["jobId"] = f.job_id;
        } else if constexpr (std::is_same_v<F, ErrorFrame>) {
          o["code"] = to_json(f.code);
          o["message"] = f.message;
        } else if constexpr (std::is_same_v<F, CancelJob>) {
          o["jobId"] = f.job_id;
          o["reason"] = f.reason;
        } else {
          static_assert(std::is_same_v<F, HeartbeatAck>);
        }
      },
      frame);
  return o;
}

ojson to_json(const RegisterRequest& r) {
  ojson o;
  o["installId"] = r.install_id;
  o["registrationSecretHash"] = r.registration_secret_hash;
  o["capabilities"] = to_json(r.capabilities);
  o["userAgent"] = r.user_agent;
  put_opt(o, "label", r.label);
  put_opt(o, "joinToken", r.join_token);
  return o;
}

ojson to_json(const RegisterResponse& r) {
  ojson o;
  o["requestId"] = r.request_id;
  o["status"] = r.status;
  return o;
}

ojson to_json(const RegistrationPoll& poll) {
  ojson o;
  std::visit(
      [&o](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, RegistrationPending>) {
          o["status"] = "pending";
        } else if constexpr (std::is_same_v<P, RegistrationApproved>) {
          o["status"] = "approved";
          o["workerId"] = p.worker_id;
          o["authToken"] = p.auth_token;
        } else {
          o["status"] = "rejected";
          o["reason"] = p.reason;
        }
      },
      poll);
  return o;
}

ojson to_json(const ChatCompletion& c) {
  ojson o;
  o["object"] = c.object;
  o["model"] = c.model;
  ojson choices = ojson::array();
  for (const auto& choice : c.choices) {
    ojson message;
    message["role"] = choice.message.role;
    message["content"] = choice.message.content;
    put_opt(message, "reasoning_content", choice.message.reasoning_content);
    ojson ch;
    ch["index"] = choice.index;
    ch["message"] = std::move(message);
    ch["finish_reason"] = choice.finish_reason;
    choices.push_back(std::move(ch));
  }
  o["choices"] = std::move(choices);
  ojson usage;
  usage["prompt_tokens"] = c.usage.prompt_tokens;
  usage["completion_tokens"] = c.usage.completion_tokens;
  usage["total_tokens"] = c.usage.total_tokens;
  o["usage"] = std::move(usage);
  put_opt(o, "elapsed_ms", c.elapsed_ms);
  return o;
}

ojson to_json(const Transcript& t) {
  ojson o;
  o["text"] = t.text;
  o["language"] = t.language;
  o["duration"] = t.duration;
  if (t.segments) {
    ojson segments = ojson::array();
    for (const auto& s : *t.segments) {
      ojson seg;
      seg["start"] = s.start;
      seg["end"] = s.end;
      seg["text"] = s.text;
      segments.push_back(std::move(seg));
    }
    o["segments"] = std::move(segments);
  }
  return o;
}

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

// Frame decoding: the `type` discriminator picks the struct; each reads its fields from the root.
template <class Frame>
Status read_frame_fields(const Obj& o, Frame& out);

template <>
Status read_frame_fields(const Obj& o, Hello& f) {
  SW_TRY(o.req("authToken", f.auth_token));
  SW_TRY(o.req("capabilities", f.capabilities));
  return o.dflt("features", f.features);
}
template <>
Status read_frame_fields(const Obj& o, Heartbeat& f) {
  SW_TRY(o.req("capabilities", f.capabilities));
  SW_TRY(o.opt("currentJobId", f.current_job_id));
  return o.opt("capacity", f.capacity);
}
template <>
Status read_frame_fields(const Obj& o, Accept& f) {
  return o.req("jobId", f.job_id);
}
template <>
Status read_frame_fields(const Obj& o, Reject& f) {
  SW_TRY(o.req("jobId", f.job_id));
  SW_TRY(o.req("reason", f.reason));
  return o.opt("code", f.code);
}
template <>
Status read_frame_fields(const Obj& o, CompleteJson& f) {
  SW_TRY(o.req("jobId", f.job_id));
  SW_TRY(o.req("result", f.result));
  return o.opt("prompt", f.prompt);
}
template <>
Status read_frame_fields(const Obj& o, Fail& f) {
  SW_TRY(o.req("jobId", f.job_id));
  SW_TRY(o.req("error", f.error));
  return o.req("retryable", f.retryable);
}
template <>
Status read_frame_fields(const Obj& o, LogBatch& f) {
  return o.req("entries", f.entries);
}
template <>
Status read_frame_fields(const Obj&, ReadyForMore&) {
  return {};
}
template <>
Status read_frame_fields(const Obj& o, JobProgress& f) {
  SW_TRY(o.req("jobId", f.job_id));
  SW_TRY(o.req("phase", f.phase));
  SW_TRY(o.opt("delta", f.delta));
  SW_TRY(o.opt("reasoningDelta", f.reasoning_delta));
  SW_TRY(o.opt("done", f.done));
  return o.opt("total", f.total);
}
template <>
Status read_frame_fields(const Obj& o, CancelJob& f) {
  SW_TRY(o.req("jobId", f.job_id));
  return o.req("reason", f.reason);
}
template <>
Status read_frame_fields(const Obj& o, Welcome& f) {
  SW_TRY(o.req("workerId", f.worker_id));
  SW_TRY(o.req("serverTime", f.server_time));
  SW_TRY(o.dflt("features", f.features));
  return o.opt("limits", f.limits);
}
template <>
Status read_frame_fields(const Obj& o, Offer& f) {
  return o.req("claim", f.claim);
}
template <>
Status read_frame_fields(const Obj&, HeartbeatAck&) {
  return {};
}
template <>
Status read_frame_fields(const Obj& o, CompleteAck& f) {
  return o.req("jobId", f.job_id);
}
template <>
Status read_frame_fields(const Obj& o, FailAck& f) {
  return o.req("jobId", f.job_id);
}
template <>
Status read_frame_fields(const Obj& o, ErrorFrame& f) {
  SW_TRY(o.req("code", f.code));
  return o.req("message", f.message);
}

// Tries each alternative of the variant whose frame_type equals `type`.
template <class Variant, std::size_t I = 0>
Result<Variant> read_variant_frame(const Obj& o, std::string_view type) {
  if constexpr (I == std::variant_size_v<Variant>) {
    return bad(o.path().child("type"), "unknown frame type \"" + std::string(type) + "\"");
  } else {
    using Alt = std::variant_alternative_t<I, Variant>;
    Variant probe{std::in_place_index<I>};
    if (frame_type(probe) == type) {
      Alt frame{};
      SW_TRY(read_frame_fields(o, frame));
      return Variant{std::move(frame)};
    }
    return read_variant_frame<Variant, I + 1>(o, type);
  }
}

template <class Variant>
Result<Variant> decode_frame(std::string_view text) {
  auto doc = parse_document(text);
  if (!doc) return fail(std::move(doc).error());
  Path root;
  Obj o(*doc, root);
  SW_TRY(o.check());
  std::string type;
  SW_TRY(o.req("type", type));
  return read_variant_frame<Variant>(o, type);
}

}  // namespace

Result<RawJson> RawJson::parse(std::string_view text) {
  auto doc = parse_document(text);
  if (!doc) return fail(std::move(doc).error());
  return RawJson(dump(*doc));
}

Result<WorkerFrame> decode_worker_frame(std::string_view json) {
  return decode_frame<WorkerFrame>(json);
}
Result<StudioFrame> decode_studio_frame(std::string_view json) {
  return decode_frame<StudioFrame>(json);
}
std::string encode(const WorkerFrame& frame) {
  return dump(to_json(frame));
}
std::string encode(const StudioFrame& frame) {
  return dump(to_json(frame));
}

Result<Task> decode_task(std::string_view json) {
  return decode_as<Task>(json);
}
std::string encode(const Task& task) {
  return dump(to_json(task));
}
Result<WorkerCapabilities> decode_capabilities(std::string_view json) {
  return decode_as<WorkerCapabilities>(json);
}
std::string encode(const WorkerCapabilities& c) {
  return dump(to_json(c));
}
Result<ModelSource> decode_model_source(std::string_view json) {
  return decode_as<ModelSource>(json);
}
namespace {
// A source as a person writes it, completed as the wire requires before it is read.
Result<ModelSource> read_authored(json doc, const Path& path) {
  if (doc.is_object()) {
    if (!doc.contains("files") || doc["files"].is_null()) doc["files"] = json::array();
    if (!doc.contains("cliDefaults") || doc["cliDefaults"].is_null()) {
      doc["cliDefaults"] = json::object();
    }
    if (auto& defaults = doc["cliDefaults"]; defaults.is_object()) {
      for (const char* key : {"cfgScale", "steps", "width", "height"}) {
        if (!defaults.contains(key) || defaults[key].is_null()) defaults[key] = 0u;
      }
    }
  }
  ModelSource value{};
  SW_TRY(read(doc, path, value));
  return value;
}
}  // namespace

Result<ModelSource> decode_authored_model_source(std::string_view text) {
  auto doc = parse_document(text);
  if (!doc) return fail(std::move(doc).error());
  return read_authored(std::move(*doc), Path{});
}
Result<ModelSource> read_authored_model_source(const json& value, std::string_view path) {
  return read_authored(value, Path{nullptr, path});
}
Result<Task> read_task(const json& value, std::string_view path) {
  const Path root{nullptr, path};
  Task task{};
  SW_TRY(read(value, root, task));
  return task;
}
std::string encode(const ModelSource& s) {
  return dump(to_json(s));
}
Result<JobOfferClaim> decode_claim(std::string_view json) {
  return decode_as<JobOfferClaim>(json);
}
std::string encode(const JobOfferClaim& c) {
  return dump(to_json(c));
}
Result<LogEntry> decode_log_entry(std::string_view json) {
  return decode_as<LogEntry>(json);
}
std::string encode(const LogEntry& e) {
  return dump(to_json(e));
}

Result<RegisterRequest> decode_register_request(std::string_view json) {
  return decode_as<RegisterRequest>(json);
}
std::string encode(const RegisterRequest& r) {
  return dump(to_json(r));
}
Result<RegisterResponse> decode_register_response(std::string_view json) {
  return decode_as<RegisterResponse>(json);
}
std::string encode(const RegisterResponse& r) {
  return dump(to_json(r));
}
Result<RegistrationPoll> decode_registration_poll(std::string_view json) {
  return decode_as<RegistrationPoll>(json);
}
std::string encode(const RegistrationPoll& p) {
  return dump(to_json(p));
}

Result<ChatCompletion> decode_chat_completion(std::string_view json) {
  return decode_as<ChatCompletion>(json);
}
std::string encode(const ChatCompletion& c) {
  return dump(to_json(c));
}
Result<Transcript> decode_transcript(std::string_view json) {
  return decode_as<Transcript>(json);
}
std::string encode(const Transcript& t) {
  return dump(to_json(t));
}

RawJson to_raw_json(const ChatCompletion& c) {
  return RawJsonAccess::make(encode(c));
}
RawJson to_raw_json(const Transcript& t) {
  return RawJsonAccess::make(encode(t));
}

bool same_json(std::string_view a, std::string_view b) {
  // operator== recurses per nesting level: both sides go through the depth guard first.
  auto ja = parse_document(a);
  auto jb = parse_document(b);
  if (!ja || !jb) return false;
  return *ja == *jb;
}

}  // namespace sw::proto
