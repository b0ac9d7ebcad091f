#include "studio/api/openai_routes.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fstream>
#include <iterator>

#include "common/base64.h"
#include "common/json_text.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "studio/api/job_intake.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/openai/openai_mapping.h"
#include "studio/studio.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;
namespace oa = openai;

namespace {

HttpResponse openai_error(int status, std::string_view code, std::string_view message) {
  // OpenAI's own codes where a client may look for them: a bad key is invalid_api_key, a spent
  // quota is type and code insufficient_quota.
  if (status == 401 && code == "unauthorized") {
    code = "invalid_api_key";
  }
  auto body = oa::error_json(status, code, message);
  if (code == "insufficient_quota") {
    body["error"]["type"] = "insufficient_quota";
  }
  auto response =
      HttpResponse::json(status, body.dump(-1, ' ', false, json::error_handler_t::replace));
  // OpenAI's clients retry 5xx (twice, by default) unless told not to: a job that failed after
  // the studio's own attempts, or that no connected worker can serve, would only run again (or
  // wait again) as a new job. They retry 429 too: a spent quota stays spent until its period
  // turns.
  if (code == "job_failed" || code == "no_worker" || code == "bad_result" ||
      code == "insufficient_quota") {
    response.headers.push_back({"x-should-retry", "false"});
  }
  return response;
}

std::string sse(const json& data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// The error a failed request gets: an unknown model is OpenAI's 404 model_not_found.
HttpResponse refusal(const Error& error) {
  if (error.code == Code::InvalidArgument && error.message.starts_with("model: unknown model")) {
    return openai_error(404, "model_not_found", error.message);
  }
  if (error.code == Code::InvalidArgument) {
    return openai_error(400, "invalid_request", error.message);
  }
  const auto native = error_response(error);  // logs server-side details, hides them
  return as_openai_error(native);
}

bool unroutable(WaitClass reason) {
  return reason == WaitClass::NoWorker || reason == WaitClass::NoKind ||
         reason == WaitClass::NoEngine || reason == WaitClass::NoVram;
}

// How a finished job is answered.
enum class Answer { Chat, ChatStream, Image, Speech, Transcript };

// One OpenAI request and its job, from submission to the answer. Lives while its timers,
// database calls or stream callbacks hold it.
class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(Studio& studio, net::Responder responder, Answer answer, std::string model)
      : s_(studio),
        responder_(std::move(responder)),
        answer_(answer),
        model_(std::move(model)),
        grace_(studio.loop()),
        limit_(studio.loop()) {}

  bool include_usage = false;
  oa::ImageResponseFormat image_format = oa::ImageResponseFormat::B64Json;
  oa::TranscriptFormat transcript_format = oa::TranscriptFormat::Json;
  std::string public_base;  // for image `url` answers
  std::optional<std::string> owner;  // Registry::bearer_owner of the request
  // An upload this request stored as the job's input (a transcription's file): discarded when no
  // job is created to take it.
  std::optional<std::string> input_upload;

  void submit(JobBody body) {
    auto job = prepare_job(s_, std::move(body), owner);
    if (!job) {
      drop_input();
      responder_.send(refusal(job.error()));
      return;
    }
    submit_job(s_, std::move(*job), [self = shared_from_this()](Result<tx::CreatedJob> stored) {
      if (!stored || stored->refused) {
        self->drop_input();
      }
      if (!stored) {
        self->responder_.send(refusal(stored.error()));
        return;
      }
      if (stored->refused) {
        // OpenAI's own code for a spent quota.
        auto response = openai_error(429, "insufficient_quota", stored->refused->message);
        response.headers.push_back({"retry-after", std::to_string(stored->refused->retry_after_s)});
        self->responder_.send(std::move(response));
        return;
      }
      self->start(stored->record);
    });
  }

 private:
  void drop_input() {
    if (input_upload) {
      s_.discard_upload(*input_upload);
      input_upload.reset();
    }
  }

  void start(const store::JobRecord& record) {
    job_id_ = record.id;
    created_ = record.created_at / 1000;
    std::weak_ptr<Call> weak = weak_from_this();
    watch_id_ = s_.watch_job(job_id_, {.on_change =
                                           [weak](const store::JobRecord* committed) {
                                             if (auto self = weak.lock()) self->changed(committed);
                                           },
                                       .on_progress =
                                           [weak](const proto::JobProgress& progress) {
                                             if (auto self = weak.lock())
                                               self->progressed(progress);
                                           }});
    if (answer_ == Answer::ChatStream) {
      stream_ = responder_.start_stream("text/event-stream");
      if (!stream_) {
        abandon("the client went away");
        return;
      }
      // OpenAI's first chunk names the role; content follows in later chunks.
      stream_->write(sse(oa::chat_chunk(job_id_, model_, created_, {.role = "assistant"})));
      // The stream holds the call until it ends (its callback runs once, then is dropped): a job
      // may run longer than any timer here.
      stream_->on_close(
          [self = shared_from_this()] { self->abandon("the client closed the stream"); });
    } else {
      limit_.expires_after(s_.config().openai_wait_limit);
      limit_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->timed_out();
      });
    }
    grace_.expires_after(s_.config().openai_unroutable_grace);
    grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->check_routable();
    });
  }

  void changed(const store::JobRecord* committed) {
    if (answered_) {
      return;
    }
    if (committed != nullptr && !is_finished(committed->status)) {
      return;
    }
    // The row, not the published record (that one carries no result); null: changed in another
    // studio process.
    s_.database().call<std::optional<store::JobRecord>>(
        [id = job_id_](store::StudioStore& st) { return st.find_job(id); },
        [self = shared_from_this()](Result<std::optional<store::JobRecord>> row) {
          if (row && *row && is_finished((*row)->status) && !self->answered_) {
            self->finish(**row);
          }
        });
  }

  void progressed(const proto::JobProgress& progress) {
    if (answered_ || !stream_ || (!progress.delta && !progress.reasoning_delta)) {
      return;
    }
    oa::ChunkDelta delta;
    if (progress.delta && !progress.delta->empty()) {
      streamed_ += *progress.delta;
      delta.content = *progress.delta;
    }
    if (progress.reasoning_delta && !progress.reasoning_delta->empty()) {
      delta.reasoning_content = *progress.reasoning_delta;
    }
    if (delta.content || delta.reasoning_content) {
      stream_->write(sse(oa::chat_chunk(job_id_, model_, created_, delta)));
    }
  }

  // No connected worker can serve the job, and none came within the grace: the client is told
  // why at once instead of waiting for a worker that may never come.
  void check_routable() {
    if (answered_) {
      return;
    }
    const auto waiting = s_.waiting_for(job_id_);
    if (!waiting || !unroutable(waiting->reason)) {
      // Looked at again while the request lasts: a job requeued after its only worker died must
      // not hold the client until the wait limit.
      grace_.expires_after(s_.config().openai_unroutable_grace);
      grace_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->check_routable();
      });
      return;
    }
    const std::string reason = waiting->text;
    fail_with(503, "no_worker", fmt::format("job {} cannot run: {}", job_id_, reason));
    cancel("no connected worker can serve it");
  }

  void timed_out() {
    if (answered_) {
      return;
    }
    fail_with(
        504, "timeout",
        fmt::format(
            "job {} did not end within {} s; it goes on: GET /api/v1/jobs/{}", job_id_,
            std::chrono::duration_cast<std::chrono::seconds>(s_.config().openai_wait_limit).count(),
            job_id_));
  }

  // The client is gone: its job is cancelled (a worker with the "cancel" feature stops it).
  void abandon(std::string_view why) {
    if (answered_) {
      return;
    }
    logger().info("openai.abandoned", {{"job_id", job_id_}, {"why", why}});
    end();
    cancel(why);
  }

  void cancel(std::string_view why) {
    logger().info("openai.cancel", {{"job_id", job_id_}, {"why", why}});
    s_.cancel_job(job_id_, [](Result<std::optional<tx::JobView>>) {});
  }

  void end() {
    answered_ = true;
    s_.unwatch_job(job_id_, watch_id_);
    grace_.cancel();
    limit_.cancel();
  }

  void fail_with(int status, std::string_view code, std::string_view message) {
    end();
    if (stream_) {
      stream_->write(sse(oa::error_json(status, code, message)));
      stream_->close();
    } else {
      responder_.send(openai_error(status, code, message));
    }
  }

  void finish(const store::JobRecord& job) {
    if (job.status == store::JobStatus::Failed) {
      fail_with(502, "job_failed",
                fmt::format("job {} failed: {}", job.id, job.error.value_or("no error recorded")));
      return;
    }
    if (job.status == store::JobStatus::Cancelled) {
      fail_with(409, "job_cancelled", fmt::format("job {} was cancelled", job.id));
      return;
    }
    switch (answer_) {
      case Answer::Chat:
      case Answer::ChatStream: return finish_chat(job);
      case Answer::Image: return finish_image(job);
      case Answer::Speech: return finish_speech(job);
      case Answer::Transcript: return finish_transcript(job);
    }
  }

  void finish_chat(const store::JobRecord& job) {
    auto result = job.result_json ? proto::decode_chat_completion(*job.result_json)
                                  : fail(Error::internal("no JSON result"));
    if (!result || result->choices.empty()) {
      fail_with(502, "bad_result",
                fmt::format("job {} ended with a result that is not a chat completion", job.id));
      return;
    }
    if (!stream_) {
      end();
      responder_.send(ok_json(oa::chat_completion(*result, job.id, model_, created_)));
      return;
    }
    end();
    const auto& choice = result->choices.front();
    // What the worker's progress did not carry (all of it from a worker without "progress").
    if (choice.message.content.starts_with(streamed_) &&
        choice.message.content.size() > streamed_.size()) {
      stream_->write(sse(oa::chat_chunk(
          job.id, model_, created_, {.content = choice.message.content.substr(streamed_.size())})));
    }
    stream_->write(sse(oa::chat_chunk(job.id, model_, created_, {}, choice.finish_reason)));
    if (include_usage) {
      stream_->write(sse(oa::usage_chunk(job.id, model_, created_, result->usage)));
    }
    stream_->write("data: [DONE]\n\n");
    stream_->close();
  }

  void finish_image(const store::JobRecord& job) {
    if (!job.result_binary) {
      fail_with(502, "bad_result", fmt::format("job {} ended without an image", job.id));
      return;
    }
    if (image_format == oa::ImageResponseFormat::Url) {
      end();
      responder_.send(
          ok_json({{"created", created_},
                   {"data", json::array({{{"url", fmt::format("{}/api/v1/jobs/{}/result",
                                                              public_base, job.id)}}})}}));
      return;
    }
    end();
    const auto path = s_.results_dir() / job.result_binary->sha256;
    // Read and encoded on the blocking pool: an image is megabytes.
    boost::asio::post(s_.blocking_pool(), [self = shared_from_this(), path] {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const bool ok = static_cast<bool>(in) || in.eof();
      std::string encoded =
          ok ? base64_encode(
                   std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()))
             : std::string();
      boost::asio::post(self->s_.loop(), [self, ok, encoded = std::move(encoded)]() mutable {
        if (!ok) {
          self->responder_.send(
              openai_error(500, "internal_error", "the result file is unreadable"));
          return;
        }
        self->responder_.send(
            ok_json({{"created", self->created_},
                     {"data", json::array({{{"b64_json", std::move(encoded)}}})}}));
      });
    });
  }

  void finish_speech(const store::JobRecord& job) {
    end();
    if (!job.result_binary) {
      responder_.send(
          openai_error(502, "bad_result", fmt::format("job {} ended without audio", job.id)));
      return;
    }
    responder_.send(file_answer(s_.results_dir() / job.result_binary->sha256,
                                proto::mime_for_ext(job.result_binary->ext),
                                "job " + job.id + "'s result", "--results-dir",
                                s_.config().database_uri.has_value()));
  }

  void finish_transcript(const store::JobRecord& job) {
    end();
    auto transcript = job.result_json ? proto::decode_transcript(*job.result_json)
                                      : fail(Error::internal("no JSON result"));
    if (!transcript) {
      responder_.send(
          openai_error(502, "bad_result",
                       fmt::format("job {} ended with a result that is not a transcript", job.id)));
      return;
    }
    auto body = oa::transcription_body(*transcript, transcript_format);
    responder_.send(HttpResponse::text(200, std::move(body.body), std::move(body.content_type)));
  }

  Studio& s_;
  net::Responder responder_;
  Answer answer_;
  std::string model_;
  std::string job_id_;
  std::int64_t created_ = 0;
  boost::asio::steady_timer grace_;
  boost::asio::steady_timer limit_;
  std::uint64_t watch_id_ = 0;
  std::shared_ptr<net::EventStream> stream_;
  std::string streamed_;  // content deltas written so far
  bool answered_ = false;
};

}  // namespace

class OpenAiRoutes::Impl {
 public:
  explicit Impl(Studio& studio) : s_(studio) {}

  void handle(RouteId id, const HttpRequest& request, const std::vector<std::string>& p,
              const net::Responder& responder) {
    switch (id) {
      case RouteId::OpenAiModels: return models(responder);
      case RouteId::OpenAiModel: return model(p[0], responder);
      case RouteId::OpenAiChat: return chat(request, responder);
      case RouteId::OpenAiImages: return images(request, responder);
      case RouteId::OpenAiSpeech: return speech(request, responder);
      case RouteId::OpenAiTranscriptions: return transcriptions(request, responder);
      default: break;
    }
    responder.send(openai_error(404, "not_found", "no route for " + request.path));
  }

 private:
  static json model_object(const store::ModelRecord& record) {
    return {{"id", record.id},
            {"object", "model"},
            {"created", record.created_at / 1000},
            {"owned_by", "studio"},
            {"kind", proto::to_string(record.kind)},  // ours: which routes take it
            {"display_name", record.display_name}};
  }

  void models(const net::Responder& responder) {
    json data = json::array();
    for (const auto* model : s_.registry().models()) {
      if (model->record.enabled) {
        data.push_back(model_object(model->record));
      }
    }
    responder.send(ok_json({{"object", "list"}, {"data", std::move(data)}}));
  }

  void model(const std::string& id, const net::Responder& responder) {
    const auto* model = s_.registry().model(id);
    if (model == nullptr || !model->record.enabled) {
      responder.send(
          openai_error(404, "model_not_found", fmt::format("model: unknown model \"{}\"", id)));
      return;
    }
    responder.send(ok_json(model_object(model->record)));
  }

  Result<json> body_of(const HttpRequest& request) const {
    return parse_json(request.body, "request body",
                      JsonLimits{.max_bytes = s_.config().json_body_limit});
  }

  void chat(const HttpRequest& request, const net::Responder& responder) {
    auto body = body_of(request);
    auto chat = body ? oa::read_chat_request(*body) : fail(std::move(body).error());
    if (!chat) {
      responder.send(refusal(chat.error()));
      return;
    }
    auto call = std::make_shared<Call>(
        s_, responder, chat->stream ? Answer::ChatStream : Answer::Chat, chat->model);
    call->include_usage = chat->include_usage;
    call->owner = owner_of(request);
    call->submit(JobBody{.model = chat->model, .task = proto::Task{std::move(chat->params)}});
  }

  void images(const HttpRequest& request, const net::Responder& responder) {
    auto body = body_of(request);
    auto image = body ? oa::read_image_request(*body) : fail(std::move(body).error());
    if (!image) {
      responder.send(refusal(image.error()));
      return;
    }
    auto call = std::make_shared<Call>(s_, responder, Answer::Image, image->model);
    call->image_format = image->response_format;
    call->owner = owner_of(request);
    call->public_base = s_.config().public_url.empty() ? public_base(request) : s_.config().public_url;
    call->submit(JobBody{.model = image->model, .task = proto::Task{std::move(image->params)}});
  }

  void speech(const HttpRequest& request, const net::Responder& responder) {
    auto body = body_of(request);
    auto speech = body ? oa::read_speech_request(*body) : fail(std::move(body).error());
    if (!speech) {
      responder.send(refusal(speech.error()));
      return;
    }
    auto call = std::make_shared<Call>(s_, responder, Answer::Speech, speech->model);
    call->owner = owner_of(request);
    call->submit(JobBody{.model = speech->model, .task = proto::Task{std::move(speech->params)}});
  }

  // Multipart: the audio in the `file` part, the other fields as OpenAI names them. The file is
  // stored as an upload (private, hashed, gone with its job) that the worker fetches.
  void transcriptions(const HttpRequest& request, const net::Responder& responder) {
    const auto* type = request.header("Content-Type");
    auto parts = net::parse_form_data(type != nullptr ? *type : std::string(), request.body);
    if (!parts) {
      responder.send(openai_error(400, "invalid_request",
                                  "file: the body must be multipart/form-data with a `file` part (" +
                                      parts.error().message + ")"));
      return;
    }
    std::vector<oa::FormField> fields;
    const net::FormPart* file = nullptr;
    for (const auto& part : *parts) {
      if (part.name == "file") {
        if (file != nullptr) {
          responder.send(openai_error(400, "invalid_request", "file: more than one file part"));
          return;
        }
        file = &part;
      } else if (part.data.size() > (64u << 10)) {
        responder.send(openai_error(400, "invalid_request",
                                    part.name + ": a form field of at most 64 KiB"));
        return;
      } else {
        fields.push_back({part.name, std::string(part.data)});
      }
    }
    if (file == nullptr || file->data.empty()) {
      responder.send(openai_error(400, "invalid_request", "file: required (the audio to transcribe)"));
      return;
    }
    auto stt = oa::read_transcription_request(fields);
    if (stt) {
      // The model is checked before anything is stored.
      if (auto kind = model_kind_for_job(s_, stt->model); !kind) {
        stt = fail(std::move(kind).error());
      }
    }
    if (!stt) {
      responder.send(refusal(stt.error()));
      return;
    }
    const auto token = request.bearer_token();
    auto owner = token ? s_.registry().bearer_owner(*token) : std::nullopt;
    // The URL the upload will have: the same for every id but its last segment.
    const std::string url_head = s_.upload_url(request, "");
    std::string content_type =
        file->content_type.empty() ? "application/octet-stream" : file->content_type;
    s_.store_upload(
        std::string(file->data), std::move(content_type), file->filename.value_or("audio"),
        owner.value_or("admin"),
        [this, responder, url_head, owner,
         request = std::move(*stt)](Result<store::UploadRecord> stored) mutable {
          if (!stored) {
            responder.send(refusal(stored.error()));
            return;
          }
          request.params.input_url = url_head + stored->id;
          auto call = std::make_shared<Call>(s_, responder, Answer::Transcript, request.model);
          call->transcript_format = request.format;
          call->owner = owner;
          call->input_upload = stored->id;
          call->submit(JobBody{.model = request.model, .task = proto::Task{std::move(request.params)}});
        });
  }

  std::optional<std::string> owner_of(const HttpRequest& request) const {
    const auto token = request.bearer_token();
    return token ? s_.registry().bearer_owner(*token) : std::nullopt;
  }

  // The studio as this client reaches it (its Host header), for links in answers.
  static std::string public_base(const HttpRequest& request) {
    const auto* host = request.header("Host");
    return "http://" + (host != nullptr && !host->empty() ? *host : std::string("127.0.0.1"));
  }

  Studio& s_;
};

OpenAiRoutes::OpenAiRoutes(Studio& studio) : impl_(std::make_unique<Impl>(studio)) {}
OpenAiRoutes::~OpenAiRoutes() = default;

void OpenAiRoutes::handle(RouteId id, net::HttpRequest request,
                          const std::vector<std::string>& params, const net::Responder& responder) {
  impl_->handle(id, request, params, responder);
}

HttpResponse as_openai_error(HttpResponse response) {
  if (response.status < 400 || response.content_type != "application/json") {
    return response;
  }
  auto body = parse_json(response.body, "error body", JsonLimits{.max_bytes = 1u << 20});
  if (!body || !body->is_object() || !(*body)["error"].is_string()) {
    return response;
  }
  const auto code = (*body)["error"].get<std::string>();
  const auto message =
      (*body)["message"].is_string() ? (*body)["message"].get<std::string>() : code;
  auto converted = openai_error(response.status, code, message);
  converted.headers = std::move(response.headers);
  return converted;
}

}  // namespace sw::studio::api
