// The reference's pinned wire cases (ws_wire.rs) plus the decoder's error contract: a bad
// document yields an error naming the path and the problem, and nothing ever throws.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proto/codec.h"
#include "proto/json_readers.h"

namespace sw::proto {
namespace {

using ::testing::HasSubstr;

const char* kCapabilities = R"({"machineName":"rig","username":"u","agentVersion":"0.1.0",
  "engine":"multi","vramTotalGb":0,"vramThresholdGb":12,"autoEnabled":true,"autoStart":false,
  "supportedModels":["synthetic"]})";

std::string offer_json(const std::string& claim_fields) {
  return R"({"type":"offer","claim":{"jobId":"job-1","gameId":"g","assetName":"a","model":"m",
    "vramGbEstimate":1.5)" +
         claim_fields + "}}";
}

const std::string kTask = R"(,"task":{"kind":"image","prompt":"p"})";
const std::string kSource =
    R"(,"modelSource":{"engine":"synthetic","files":[],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})";

std::string decode_error_studio(const std::string& text) {
  auto frame = decode_studio_frame(text);
  EXPECT_FALSE(frame) << "decoded unexpectedly: " << text;
  return frame ? std::string() : frame.error().message;
}

std::string decode_error_worker(const std::string& text) {
  auto frame = decode_worker_frame(text);
  EXPECT_FALSE(frame) << "decoded unexpectedly: " << text;
  return frame ? std::string() : frame.error().message;
}

TEST(OfferDecoding, FullOfferDecodes) {
  auto frame = decode_studio_frame(offer_json(kTask + kSource));
  ASSERT_TRUE(frame) << frame.error().message;
  const auto& claim = std::get<Offer>(*frame).claim;
  EXPECT_EQ(claim.job_id, "job-1");
  EXPECT_EQ(claim.vram_gb_estimate, 1.5);
  const auto& image = std::get<ImageParams>(claim.task.params);
  EXPECT_EQ(image.prompt, "p");
  EXPECT_EQ(image.width, 512u);  // defaults of §1.7
  EXPECT_EQ(image.height, 512u);
  EXPECT_EQ(image.steps, 20u);
  EXPECT_EQ(image.ext, "webp");
}

TEST(OfferDecoding, OfferWithoutTaskIsRejected) {
  EXPECT_EQ(decode_error_studio(offer_json(kSource)), "claim.task: missing required field");
}

TEST(OfferDecoding, OfferWithoutModelSourceIsRejected) {
  EXPECT_EQ(decode_error_studio(offer_json(kTask)), "claim.modelSource: missing required field");
}

TEST(OfferDecoding, ErrorsNameNestedPaths) {
  EXPECT_EQ(decode_error_studio(offer_json(R"(,"task":{"kind":"paint","prompt":"p"})" + kSource)),
            R"(claim.task.kind: unknown task kind "paint")");
  EXPECT_EQ(decode_error_studio(
                offer_json(R"(,"task":{"kind":"image","prompt":"p","width":-5})" + kSource)),
            "claim.task.width: expected unsigned integer, got number -5");
  EXPECT_EQ(decode_error_studio(
                offer_json(R"(,"task":{"kind":"image","prompt":"p","width":1.5})" + kSource)),
            "claim.task.width: expected unsigned integer, got number 1.5");
  EXPECT_EQ(decode_error_studio(offer_json(
                R"(,"task":{"kind":"image","prompt":"p","width":4294967296})" + kSource)),
            "claim.task.width: value 4294967296 is out of range (max 4294967295)");
  EXPECT_EQ(decode_error_studio(offer_json(R"(,"task":{"kind":"image","prompt":7})" + kSource)),
            "claim.task.prompt: expected string, got number 7");
  EXPECT_EQ(
      decode_error_studio(offer_json(
          kTask +
          R"(,"modelSource":{"engine":"sd-cpp","files":[{"role":"vae","url":"https://x/a","filename":"a","sha256":"xyz"}],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})")),
      "claim.modelSource.files[0].sha256: expected 64 hexadecimal characters");
  EXPECT_EQ(
      decode_error_studio(offer_json(
          kTask +
          R"(,"modelSource":{"engine":"sd-cpp","files":[],"cliDefaults":{"steps":0,"width":0,"height":0}})")),
      "claim.modelSource.cliDefaults.cfgScale: missing required field");
  EXPECT_EQ(decode_error_studio(R"({"type":"offer","claim":{"jobId":null}})"),
            "claim.jobId: expected string, got null");
  EXPECT_EQ(decode_error_studio(R"({"type":"offer","claim":[]})"),
            "claim: expected object, got array");
}

TEST(OfferDecoding, UnknownKeysAreIgnoredAndNullOptionalsAccepted) {
  auto frame = decode_studio_frame(offer_json(
      R"(,"task":{"kind":"image","prompt":"p","negativePrompt":null,"seed":null,"futureKey":{"a":1}})" +
      kSource + R"(,"attempt":2)"));
  ASSERT_TRUE(frame) << frame.error().message;
  const auto& image = std::get<ImageParams>(std::get<Offer>(*frame).claim.task.params);
  EXPECT_FALSE(image.negative_prompt);
  EXPECT_FALSE(image.seed);
}

TEST(OfferDecoding, UnknownEngineNameDecodesSoTheJobCanFailCleanly) {
  auto frame = decode_studio_frame(offer_json(
      kTask +
      R"(,"modelSource":{"engine":"comfyui","files":[],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})"));
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(std::get<Offer>(*frame).claim.model_source.engine, "comfyui");
  EXPECT_FALSE(parse_model_engine("comfyui"));
}

TEST(OfferDecoding, LargeSeedKeepsAllBits) {
  auto frame = decode_studio_frame(
      offer_json(R"(,"task":{"kind":"image","prompt":"p","seed":18446744073709551615})" + kSource));
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(*std::get<ImageParams>(std::get<Offer>(*frame).claim.task.params).seed,
            18446744073709551615ull);
}

TEST(FrameTypes, UnknownTypeIsRejected) {
  EXPECT_EQ(decode_error_worker(R"({"type":"foo"})"), R"(type: unknown frame type "foo")");
  EXPECT_EQ(decode_error_studio(R"({"type":"foo"})"), R"(type: unknown frame type "foo")");
}

TEST(FrameTypes, DirectionsAreNotInterchangeable) {
  EXPECT_EQ(decode_error_studio(R"({"type":"accept","jobId":"j"})"),
            R"(type: unknown frame type "accept")");
  EXPECT_EQ(decode_error_worker(R"({"type":"welcome","workerId":"w","serverTime":"t"})"),
            R"(type: unknown frame type "welcome")");
}

TEST(FrameTypes, MissingOrMistypedTypeIsRejected) {
  EXPECT_EQ(decode_error_worker(R"({"jobId":"j"})"), "type: missing required field");
  EXPECT_EQ(decode_error_worker(R"({"type":3})"), "type: expected string, got number 3");
  EXPECT_EQ(decode_error_worker(R"([1,2])"), "document: expected object, got array");
}

TEST(FrameTypes, InvalidJsonIsRejectedWithPosition) {
  std::string message = decode_error_worker(R"({"type":"accept",)");
  EXPECT_THAT(message, HasSubstr("document is not JSON: "));
  EXPECT_THAT(message, HasSubstr("column"));
}

TEST(FrameTypes, DeepNestingIsRefusedBeforeParsing) {
  std::string deep = R"({"type":"completeJson","jobId":"j","result":)" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  EXPECT_THAT(decode_error_worker(deep),
              HasSubstr("document nests deeper than 64 levels at byte "));
  // Brackets inside strings do not count.
  std::string text =
      R"({"type":"reject","jobId":"j","reason":")" + std::string(1000, '[') + R"("})";
  EXPECT_TRUE(decode_worker_frame(text));
}

TEST(RejectFrame, CodeRoundTrips) {
  for (RejectCode code : {RejectCode::Busy, RejectCode::Paused}) {
    WorkerFrame frame = Reject{"job-1", "why", code};
    std::string text = encode(frame);
    EXPECT_THAT(text, HasSubstr(std::string(R"("code":")") + std::string(to_string(code)) + "\""));
    auto back = decode_worker_frame(text);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(std::get<Reject>(*back), std::get<Reject>(frame));
  }
  std::string without = encode(WorkerFrame{Reject{"job-1", "model unloaded", std::nullopt}});
  EXPECT_EQ(without, R"({"type":"reject","jobId":"job-1","reason":"model unloaded"})");
  EXPECT_EQ(decode_error_worker(R"({"type":"reject","jobId":"j","reason":"r","code":"tired"})"),
            R"(code: unknown reject code "tired" (expected busy or paused))");
}

TEST(HeartbeatFrame, WithoutCurrentJobIdOmitsIt) {
  auto caps = decode_capabilities(kCapabilities);
  ASSERT_TRUE(caps) << caps.error().message;
  std::string text = encode(WorkerFrame{Heartbeat{*caps, std::nullopt}});
  EXPECT_EQ(text.find("currentJobId"), std::string::npos);
  EXPECT_EQ(text.rfind(R"({"type":"heartbeat",)", 0), 0u) << "type comes first: " << text;

  auto with_null = decode_worker_frame(
      std::string(R"({"type":"heartbeat","currentJobId":null,"capabilities":)") + kCapabilities +
      "}");
  ASSERT_TRUE(with_null) << with_null.error().message;
  EXPECT_FALSE(std::get<Heartbeat>(*with_null).current_job_id);
}

TEST(CapacityFeature, AHeartbeatCarriesItOnlyWhenSetAndItRoundTrips) {
  auto caps = decode_capabilities(kCapabilities);
  ASSERT_TRUE(caps) << caps.error().message;
  EXPECT_EQ(encode(WorkerFrame{Heartbeat{*caps, std::string("a")}}).find("capacity"),
            std::string::npos)
      << "the reference's heartbeat, key for key";
  const Heartbeat beat{*caps, std::string("a"), WorkerCapacity{1, {"a", "b"}}};
  const std::string text = encode(WorkerFrame{beat});
  EXPECT_NE(text.find(R"("capacity":{"room":1,"jobIds":["a","b"]})"), std::string::npos) << text;
  auto back = decode_worker_frame(text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<Heartbeat>(*back), beat);
}

TEST(LimitsFeature, HelloAndWelcomeCarryItOnlyWhenSet) {
  auto caps = decode_capabilities(kCapabilities);
  ASSERT_TRUE(caps) << caps.error().message;
  // Without features: the reference's documents exactly.
  EXPECT_EQ(encode(WorkerFrame{Hello{"t", *caps}}).find("features"), std::string::npos);
  EXPECT_EQ(encode(StudioFrame{Welcome{"w-1", "2026-01-01T00:00:00Z"}}),
            R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z"})");

  Welcome welcome{"w-1", "2026-01-01T00:00:00Z", {"limits"}, StudioLimits{16777216, 4096}};
  const std::string text = encode(StudioFrame{welcome});
  EXPECT_EQ(text,
            R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z",)"
            R"("features":["limits"],"limits":{"maxFrameBytes":16777216,"maxUploadBytes":4096}})");
  auto decoded = decode_studio_frame(text);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(std::get<Welcome>(*decoded), welcome);

  auto hello = decode_worker_frame(encode(WorkerFrame{Hello{"t", *caps, {"limits", "later"}}}));
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_EQ(std::get<Hello>(*hello).features, (std::vector<std::string>{"limits", "later"}));
  EXPECT_EQ(decode_error_studio(R"({"type":"welcome","workerId":"w","serverTime":"t",)"
                                R"("limits":{"maxFrameBytes":-1,"maxUploadBytes":1}})"),
            "limits.maxFrameBytes: expected unsigned integer, got number -1");
}

TEST(ProgressFeature, JobProgressRoundTripsWithOnlyTheFieldsSet) {
  JobProgress delta;
  delta.job_id = "job-1";
  delta.phase = "generate";
  delta.delta = "Hel";
  delta.reasoning_delta = "thinking";
  const std::string text = encode(WorkerFrame{delta});
  EXPECT_EQ(text, R"({"type":"jobProgress","jobId":"job-1","phase":"generate","delta":"Hel",)"
                  R"("reasoningDelta":"thinking"})");
  auto back = decode_worker_frame(text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<JobProgress>(*back), delta);

  JobProgress download;
  download.job_id = "job-2";
  download.phase = "download";
  download.done = 5'000'000'000ull;  // past 32 bits: a model file
  download.total = 6'000'000'000ull;
  const std::string bytes = encode(WorkerFrame{download});
  EXPECT_EQ(bytes, R"({"type":"jobProgress","jobId":"job-2","phase":"download",)"
                   R"("done":5000000000,"total":6000000000})");
  auto decoded = decode_worker_frame(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(std::get<JobProgress>(*decoded), download);
  EXPECT_THAT(decode_error_worker(R"({"type":"jobProgress","phase":"load"})"), HasSubstr("jobId"));
}

TEST(CancelFeature, CancelRoundTripsAndIsAStudioFrame) {
  const CancelJob cancel{"job-1", "client went away"};
  const std::string text = encode(StudioFrame{cancel});
  EXPECT_EQ(text, R"({"type":"cancel","jobId":"job-1","reason":"client went away"})");
  auto back = decode_studio_frame(text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<CancelJob>(*back), cancel);
  EXPECT_THAT(decode_error_studio(R"({"type":"cancel","reason":"r"})"), HasSubstr("jobId"));
  EXPECT_FALSE(decode_worker_frame(text)) << "a worker never sends cancel";
}

TEST(Capabilities, OptionalSettingsDefaultAndPresenceIsOmittedWhileUnknown) {
  auto caps = decode_capabilities(kCapabilities);
  ASSERT_TRUE(caps) << caps.error().message;
  EXPECT_FALSE(caps->auto_update);
  EXPECT_FALSE(caps->only_when_idle);
  EXPECT_TRUE(caps->task_kinds.empty());
  EXPECT_FALSE(caps->user_presence);
  std::string text = encode(*caps);
  EXPECT_EQ(text.find("userPresence"), std::string::npos);
  EXPECT_THAT(text, HasSubstr(R"("onlyWhenIdle":false)"));

  caps->user_presence = UserPresence::Idle;
  EXPECT_THAT(encode(*caps), HasSubstr(R"("userPresence":"idle")"));
}

TEST(Capabilities, PerKindMapRejectsUnknownKinds) {
  std::string text = std::string(kCapabilities);
  text.insert(text.size() - 1, R"(,"supportedModelsPerKind":{"music":["x"]})");
  auto caps = decode_capabilities(text);
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().message, R"(supportedModelsPerKind.music: unknown task kind "music")");
}

TEST(ErrorFrame, CodesAreSnakeCaseAndMapToCloseCodes) {
  const std::pair<WorkerErrorCode, std::pair<const char*, int>> expected[] = {
      {WorkerErrorCode::AuthFailed, {"auth_failed", 4001}},
      {WorkerErrorCode::ProtocolViolation, {"protocol_violation", 4002}},
      {WorkerErrorCode::DuplicateWorker, {"duplicate_worker", 4003}},
      {WorkerErrorCode::WorkerDeleted, {"worker_deleted", 4004}},
      {WorkerErrorCode::InternalError, {"internal_error", 1000}},
  };
  for (const auto& [code, wire] : expected) {
    std::string text = encode(StudioFrame{ErrorFrame{code, "m"}});
    EXPECT_EQ(text,
              std::string(R"({"type":"error","code":")") + wire.first + R"(","message":"m"})");
    EXPECT_EQ(close_code_for(code), wire.second);
    auto back = decode_studio_frame(text);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(std::get<ErrorFrame>(*back).code, code);
  }
  EXPECT_EQ(decode_error_studio(R"({"type":"error","code":"AuthFailed","message":"m"})"),
            R"(code: unknown error code "AuthFailed")");
}

TEST(CompleteJson, ResultIsCarriedVerbatimAndRequired) {
  auto frame = decode_worker_frame(
      R"({"type":"completeJson","jobId":"j","result":{"b":[1,2.5,"x"],"a":null},"prompt":"full"})");
  ASSERT_TRUE(frame) << frame.error().message;
  const auto& complete = std::get<CompleteJson>(*frame);
  EXPECT_TRUE(same_json(complete.result.text(), R"({"a":null,"b":[1,2.5,"x"]})"));
  EXPECT_EQ(complete.prompt, "full");
  EXPECT_EQ(decode_error_worker(R"({"type":"completeJson","jobId":"j"})"),
            "result: missing required field");
}

TEST(LlmTask, ChatTemplateKwargsMustBeAnObject) {
  auto task = decode_task(R"({"kind":"llm","messages":[{"role":"user","content":"hi"}],
                              "chatTemplateKwargs":{"enable_thinking":false}})");
  ASSERT_TRUE(task) << task.error().message;
  const auto& llm = std::get<LlmParams>(task->params);
  EXPECT_EQ(llm.max_tokens, 512u);
  EXPECT_DOUBLE_EQ(llm.temperature, 0.7);
  EXPECT_EQ(llm.chat_template_kwargs->text(), R"({"enable_thinking":false})");

  auto bad = decode_task(R"({"kind":"llm","messages":[],"chatTemplateKwargs":[1]})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "chatTemplateKwargs: expected object, got array");

  auto bad_message = decode_task(R"({"kind":"llm","messages":[{"role":"user"}]})");
  ASSERT_FALSE(bad_message);
  EXPECT_EQ(bad_message.error().message, "messages[0].content: missing required field");
}

TEST(RegistrationPoll, StatusesDecode) {
  auto approved =
      decode_registration_poll(R"({"status":"approved","workerId":"w","authToken":"t"})");
  ASSERT_TRUE(approved);
  EXPECT_EQ(std::get<RegistrationApproved>(*approved).auth_token, "t");
  auto missing = decode_registration_poll(R"({"status":"approved","workerId":"w"})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "authToken: missing required field");
  auto unknown = decode_registration_poll(R"({"status":"maybe"})");
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr(R"(status: unknown registration status "maybe")"));
}

TEST(RawJson, ParseValidatesAndCompacts) {
  auto raw = RawJson::parse(" { \"a\" : [ 1 , 2 ] } ");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->text(), R"({"a":[1,2]})");
  EXPECT_FALSE(RawJson::parse("{"));
  EXPECT_EQ(RawJson().text(), "null");
}

TEST(Encoding, InvalidUtf8FromLocalInputIsReplacedNotThrown) {
  std::string text = encode(WorkerFrame{Fail{"j", std::string("bad \xff byte"), true}});
  EXPECT_TRUE(decode_worker_frame(text)) << text;
}

// Every prefix and every single-byte corruption of a real offer either decodes or yields an
// error: the decoder never throws or crashes on hostile input.
TEST(Robustness, TruncatedAndCorruptedOffersNeverThrow) {
  const std::string offer = offer_json(kTask + kSource);
  std::size_t errors = 0;
  for (std::size_t length = 0; length < offer.size(); ++length) {
    auto frame = decode_studio_frame(offer.substr(0, length));
    if (!frame) ++errors;
  }
  EXPECT_EQ(errors, offer.size());  // no proper prefix of a JSON object is a document
  const char replacements[] = {'"', '{', '}', '[', ']', ',', ':', '0', '\\', '\0'};
  for (std::size_t i = 0; i < offer.size(); ++i) {
    for (char c : replacements) {
      std::string corrupted = offer;
      corrupted[i] = c;
      auto frame = decode_studio_frame(corrupted);
      if (frame) {
        EXPECT_TRUE(std::holds_alternative<Offer>(*frame));
      }
    }
  }
}

// A member of a body the studio already parsed is read by the wire's own readers, in place: the
// same task as decoding its text, and errors that name the member's path in the body.
TEST(JsonReaders, AParsedMemberReadsAsItsTextDecodesAndErrorsNameItsPath) {
  const std::string text = R"({"kind":"llm","messages":[{"role":"user","content":"hi"}]})";
  const auto parsed = nlohmann::json::parse(text);
  auto in_place = read_task(parsed, "task");
  auto from_text = decode_task(text);
  ASSERT_TRUE(in_place) << in_place.error().message;
  ASSERT_TRUE(from_text);
  EXPECT_EQ(encode(*in_place), encode(*from_text));

  auto bad = read_task(nlohmann::json::parse(R"({"kind":"paint"})"), "task");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, R"(task.kind: unknown task kind "paint")");
  auto nested =
      read_task(nlohmann::json::parse(R"({"kind":"llm","messages":[{"role":"user"}]})"), "task");
  ASSERT_FALSE(nested);
  EXPECT_EQ(nested.error().message, "task.messages[0].content: missing required field");
  auto not_object = read_task(nlohmann::json::parse("[1]"), "task");
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().message, "task: expected object, got array");

  // An authored source may leave files and cliDefaults out, as decode_authored_model_source.
  auto source =
      read_authored_model_source(nlohmann::json::parse(R"({"engine":"synthetic"})"), "source");
  ASSERT_TRUE(source) << source.error().message;
  EXPECT_TRUE(source->files.empty());
  auto bad_source = read_authored_model_source(
      nlohmann::json::parse(R"({"engine":"synthetic","files":{}})"), "source");
  ASSERT_FALSE(bad_source);
  EXPECT_EQ(bad_source.error().message, "source.files: expected array, got object");
}

}  // namespace
}  // namespace sw::proto
