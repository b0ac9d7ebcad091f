#pragma once
// JSON encoding and decoding of every wire type. The only entry points to the wire format:
// nothing outside proto/ sees nlohmann::json.
//
// Decoding is a tolerant reader: unknown keys are ignored, `null` is accepted for optional fields,
// missing optional fields take their defaults; required keys and value types are enforced. It
// never throws: a bad document yields Error{Code::Protocol} whose message names the path and the
// problem, e.g. `claim.task: missing required field`, `type: unknown frame type "foo"`.
//
// Encoding is strict: camelCase keys, optional fields omitted (never null), `type` first.
// All functions are thread-safe (no shared state).

#include <string>
#include <string_view>

#include "common/error.h"
#include "proto/frames.h"
#include "proto/registration.h"
#include "proto/results.h"
#include "proto/types.h"

namespace sw::proto {

Result<WorkerFrame> decode_worker_frame(std::string_view json);
Result<StudioFrame> decode_studio_frame(std::string_view json);
std::string encode(const WorkerFrame& frame);
std::string encode(const StudioFrame& frame);

Result<Task> decode_task(std::string_view json);
std::string encode(const Task& task);
Result<WorkerCapabilities> decode_capabilities(std::string_view json);
std::string encode(const WorkerCapabilities& capabilities);
Result<ModelSource> decode_model_source(std::string_view json);
// A model source as a person writes one (the studio's POST /api/v1/models, the worker's
// models.json): `files` and `cliDefaults`, or some of cliDefaults' four numbers, may be left out
// and are filled as the reference's workers require them on the wire (no files; 0 = unset).
Result<ModelSource> decode_authored_model_source(std::string_view json);
std::string encode(const ModelSource& source);
Result<JobOfferClaim> decode_claim(std::string_view json);
std::string encode(const JobOfferClaim& claim);
Result<LogEntry> decode_log_entry(std::string_view json);
std::string encode(const LogEntry& entry);

Result<RegisterRequest> decode_register_request(std::string_view json);
std::string encode(const RegisterRequest& request);
Result<RegisterResponse> decode_register_response(std::string_view json);
std::string encode(const RegisterResponse& response);
Result<RegistrationPoll> decode_registration_poll(std::string_view json);
std::string encode(const RegistrationPoll& poll);

Result<ChatCompletion> decode_chat_completion(std::string_view json);
std::string encode(const ChatCompletion& completion);
Result<Transcript> decode_transcript(std::string_view json);
std::string encode(const Transcript& transcript);

// The JSON text of a result shape, ready for completeJson.result.
RawJson to_raw_json(const ChatCompletion& completion);
RawJson to_raw_json(const Transcript& transcript);
// True when two documents are the same JSON value (key order and whitespace ignored).
bool same_json(std::string_view a, std::string_view b);

}  // namespace sw::proto
