#include "studio/api/worker_routes.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <charconv>
#include <filesystem>

#include "common/clock.h"
#include "common/file_io.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/request_bodies.h"
#include "studio/studio.h"
#include "studio/transactions.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

class WorkerRoutes::Impl {
 public:
  explicit Impl(Studio& studio) : s_(studio) {}

  void handle(RouteId id, HttpRequest request, const std::vector<std::string>& p,
              const net::Responder& responder) {
    switch (id) {
      case RouteId::RegisterRequest: return register_request(request, responder);
      case RouteId::RegisterPoll: return register_poll(request, p[0], responder);
      case RouteId::Complete: return complete(std::move(request), p[0], p[1], responder);
      default: break;
    }
    responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
  }

  bool worker_token_ok(const HttpRequest& head, const std::string& worker_id) const {
    const auto token = head.bearer_token();
    return token && s_.registry().worker_token_matches(worker_id, *token);
  }

  std::variant<net::UpgradeAccepted, HttpResponse> upgrade(const HttpRequest& head,
                                                           const std::string& worker_id) {
    if (!worker_token_ok(head, worker_id)) {
      const auto reference = random_uuid();
      logger().warn(
          "ws.upgrade_unauthorised",
          {{"worker_id", worker_id}, {"remote", head.remote_address}, {"reference", reference}});
      return refuse(Refusal::Unauthorized, "unknown worker or bad bearer token",
                    {{"reference", reference}});
    }
    if (s_.stopping()) {
      return unavailable("the studio is shutting down");
    }
    net::UpgradeAccepted accepted;
    accepted.handler = std::make_shared<WorkerSession>(s_.weak_from_this(), worker_id);
    accepted.message_limit = s_.config().frame_limit;
    if (const auto* protocols = head.header("sec-websocket-protocol");
        protocols && protocols->find("studio-worker-v1") != std::string::npos) {
      accepted.subprotocol = "studio-worker-v1";
    }
    return accepted;
  }

  // ---- registration (reference §2.1–2.2) ----

  void register_request(const HttpRequest& request, const net::Responder& responder) {
    if (!s_.allow_registration(request.remote_address)) {
      responder.send(refuse(
          Refusal::RateLimited,
          fmt::format("at most {} registration requests per {} s from one address",
                      s_.config().register_rate_limit, s_.config().register_rate_window.count())));
      return;
    }
    auto body = proto::decode_register_request(request.body);
    if (!body) {
      responder.send(invalid("invalid_request", body.error().message));
      return;
    }
    if (body->install_id.empty() || body->install_id.size() > 200) {
      responder.send(invalid("invalid_request", "installId: must be 1 to 200 characters"));
      return;
    }
    if (!is_lower_hex64(body->registration_secret_hash)) {
      responder.send(invalid("invalid_request",
                             "registrationSecretHash: must be 64 lowercase hex characters"));
      return;
    }
    store::RegistrationRecord record;
    record.id = "rr-" + random_uuid();
    record.install_id = body->install_id;
    record.secret_hash = body->registration_secret_hash;
    record.capabilities_json = proto::encode(body->capabilities);
    record.user_agent = body->user_agent;
    // Address and port: two requests from one host (two installs) are told apart by the port
    // their request came from, as well as by install id and first-seen time (issue 17).
    const bool v6 = request.remote_address.find(':') != std::string::npos;
    record.source_ip = request.remote_port == 0 ? request.remote_address
                       : v6 ? fmt::format("[{}]:{}", request.remote_address, request.remote_port)
                            : fmt::format("{}:{}", request.remote_address, request.remote_port);
    record.created_at = s_.unix_millis();
    if (body->join_token) {
      return join(*body->join_token, std::move(record), responder);
    }
    s_.database().call<std::string>(
        [record](store::StudioStore& st) { return tx::open_registration(st, record); },
        [responder, install = record.install_id](Result<std::string> id) {
          if (!id) {
            responder.send(error_response(id.error()));
            return;
          }
          logger().info("registration.requested", {{"request_id", *id}, {"install_id", install}});
          responder.send(
              HttpResponse::json(200, proto::encode(proto::RegisterResponse{*id, "pending"})));
        });
  }

  // A register-request with a join token (issue 22): approved at once, or 403 naming why the
  // token cannot be used. The token itself is never logged; its id is.
  void join(const std::string& token, store::RegistrationRecord record,
            const net::Responder& responder) {
    if (token.empty() || token.size() > 200) {
      responder.send(invalid("invalid_request", "joinToken: must be 1 to 200 characters"));
      return;
    }
    s_.database().call<tx::JoinAnswer>(
        [record, hash = sha256_hex(token)](store::StudioStore& st) {
          return tx::join_registration(st, record, hash);
        },
        [this, responder, install = record.install_id,
         source = record.source_ip](Result<tx::JoinAnswer> joined) {
          if (!joined) {
            responder.send(error_response(joined.error()));
            return;
          }
          if (!joined->refusal.empty()) {
            logger().warn("registration.join_refused", {{"install_id", install},
                                                        {"remote", source},
                                                        {"join_token_id", joined->join_token_id},
                                                        {"why", joined->refusal}});
            responder.send(refuse(Refusal::JoinTokenRefused, joined->refusal));
            return;
          }
          logger().info("registration.joined", {{"request_id", joined->request_id},
                                                {"worker_id", joined->worker_id},
                                                {"install_id", install},
                                                {"join_token_id", joined->join_token_id}});
          s_.request_decided(joined->request_id);
          // Unknown token until the worker polls; the placeholder hash matches nothing. (A repeat
          // of a join whose worker already collected its token keeps that token.)
          if (!s_.registry().knows_worker(joined->worker_id)) {
            s_.registry().set_worker_token_hash(joined->worker_id, sha256_hex(random_hex(32)));
          }
          s_.publish_worker(joined->worker_id, "approved");
          responder.send(HttpResponse::json(
              200, proto::encode(proto::RegisterResponse{joined->request_id, "approved"})));
        });
  }

  // The most a poll is held open (`?waitMs=`, ours): well inside a worker's 60 s HTTP timeout.
  static constexpr std::int64_t kMaxPollWaitMs = 30'000;

  // `?waitMs=N` (ours; the reference studio ignores it): a poll of a request still pending is
  // held up to N ms (at most kMaxPollWaitMs) and answered as soon as the operator decides, so an
  // approval reaches a waiting worker at once without it polling often.
  void register_poll(const HttpRequest& request, const std::string& request_id,
                     const net::Responder& responder) {
    const auto secret = request.bearer_token();
    if (!secret) {
      responder.send(
          refuse(Refusal::Unauthorized, "Authorization: Bearer <registration secret> required"));
      return;
    }
    std::int64_t wait_ms = 0;
    if (auto text = request.query_param("waitMs"); text && !text->empty()) {
      const auto* end = text->data() + text->size();
      const auto parsed = std::from_chars(text->data(), end, wait_ms);
      if (parsed.ec != std::errc() || parsed.ptr != end || wait_ms < 0) {
        responder.send(invalid("invalid_request", "waitMs: must be a whole number of ms"));
        return;
      }
      wait_ms = std::min(wait_ms, kMaxPollWaitMs);
    }
    poll_registration(request_id, sha256_hex(*secret), std::chrono::milliseconds(wait_ms),
                      responder);
  }

  void poll_registration(const std::string& request_id, const std::string& secret_hash,
                         std::chrono::milliseconds wait, const net::Responder& responder) {
    s_.database().call<tx::RegistrationAnswer>(
        [request_id, secret_hash](store::StudioStore& st) {
          return tx::poll_registration(st, request_id, secret_hash);
        },
        [this, responder, request_id, secret_hash, wait](Result<tx::RegistrationAnswer> answer) {
          if (!answer) {
            responder.send(error_response(answer.error()));
            return;
          }
          if (answer->pending && wait.count() > 0 && !s_.stopping()) {
            hold_poll(request_id, secret_hash, wait, std::move(answer->response.body), responder);
            return;
          }
          if (answer->token) {
            s_.registry().set_worker_token_hash(answer->token->first, answer->token->second);
          }
          responder.send(std::move(answer->response));
        });
  }

  // Another studio process may decide the request: its NOTIFY wakes the poll, and since a
  // notification is only a hint, a held poll also reads the request again this often.
  static constexpr std::chrono::milliseconds kClusterPollReread{1'000};

  // Holds a pending poll until its request is decided (then polls once more, without waiting)
  // or `wait` ends (then answers `pending_body`). In a cluster the hold is cut into slices of
  // kClusterPollReread, each ending in a fresh read of the request with the rest of the wait.
  void hold_poll(const std::string& request_id, const std::string& secret_hash,
                 std::chrono::milliseconds wait, std::string pending_body,
                 const net::Responder& responder) {
    auto held = s_.hold_poll(request_id);
    const bool slice = s_.clustered() && wait > kClusterPollReread;
    // The loop's own clock, like the timer (a test clock may stand still).
    const auto until = std::chrono::steady_clock::now() + wait;
    held->timer.expires_after(slice ? kClusterPollReread : wait);
    held->timer.async_wait([this, weak = s_.weak_from_this(), held, request_id, secret_hash,
                            pending_body = std::move(pending_body), responder, slice,
                            until](const boost::system::error_code&) {
      auto studio = weak.lock();
      if (!studio) {
        return;
      }
      if (held->decided && !studio->stopping()) {
        poll_registration(request_id, secret_hash, std::chrono::milliseconds(0), responder);
        return;
      }
      studio->end_held_poll(request_id, held);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (slice && !studio->stopping() && left.count() > 0) {
        poll_registration(request_id, secret_hash, left, responder);
        return;
      }
      responder.send(HttpResponse::json(200, pending_body));
    });
  }

  // ---- results (reference §2.3) ----

  // An upload is admitted from its path before any of its body is read, by the job book's
  // verdict (jobs::judge_active, then jobs::judge_settled on the row): a result that may be taken
  // is stored; a possible repeat or a result to drop is only verified (hashed); anything else is
  // not this worker's: 409 at once. What was decided here is decided again once the body is in
  // (complete_hashed), since the job may have moved meanwhile.
  void admit_upload(const HttpRequest& head, const std::string& worker_id,
                    const std::string& job_id, net::Admitter admitter) {
    using Mode = ResultUploadSink::Mode;
    const auto* type = head.header("content-type");
    UploadHead upload{type ? *type : std::string(), declared_length(head)};
    switch (s_.book().judge_active(job_id, worker_id).verdict) {
      case jobs::Verdict::Take: return admitter.decide(open_upload(Mode::Store, upload));
      case jobs::Verdict::Repeat:
      case jobs::Verdict::Drop: return admitter.decide(open_upload(Mode::Verify, upload));
      case jobs::Verdict::Busy: return admitter.decide(busy(job_id));
      case jobs::Verdict::NotYours: return admitter.decide(not_claimed(job_id));
      case jobs::Verdict::AskStore: break;
    }
    s_.database().call<std::optional<store::JobRecord>>(
        [id = job_id](store::StudioStore& st) { return st.find_job(id); },
        [this, upload, admitter, worker_id, job_id,
         weak = s_.weak_from_this()](Result<std::optional<store::JobRecord>> job) {
          if (!weak.lock()) {
            return admitter.decide(unavailable("shutting down"));
          }
          if (!job) {
            return admitter.decide(error_response(job.error()));
          }
          if (s_.book().standing(job_id, worker_id) != jobs::Standing::Unknown) {
            // It became active meanwhile (a studio load raced the look-up): ask again shortly.
            return admitter.decide(busy(job_id));
          }
          // The bytes are not in yet: a done job's repeat is checked once they are.
          switch (jobs::judge_settled(*job, worker_id, true)) {
            case jobs::Verdict::Take: return admitter.decide(open_upload(Mode::Store, upload));
            case jobs::Verdict::Repeat:
            case jobs::Verdict::Drop: return admitter.decide(open_upload(Mode::Verify, upload));
            case jobs::Verdict::Busy:
              s_.take_over_for_result(worker_id, job_id);  // a cluster's claim of another process
              return admitter.decide(busy(job_id));
            case jobs::Verdict::NotYours:
            case jobs::Verdict::AskStore: break;
          }
          admitter.decide(not_claimed(job_id));
        });
  }

  struct UploadHead {
    std::string content_type;
    std::optional<std::uint64_t> declared;
  };

  static std::optional<std::uint64_t> declared_length(const HttpRequest& head) {
    const auto* length = head.header("content-length");
    std::uint64_t value = 0;
    if (length == nullptr ||
        std::from_chars(length->data(), length->data() + length->size(), value).ec != std::errc()) {
      return std::nullopt;  // chunked: reserved as it arrives
    }
    return value;
  }

  std::variant<net::Admission, HttpResponse> open_upload(ResultUploadSink::Mode mode,
                                                         const UploadHead& upload) {
    auto sink =
        ResultUploadSink::open(mode, s_.results_dir(), s_.upload_budget(), upload.content_type,
                               upload.declared, s_.config().json_body_limit);
    if (auto* refusal = std::get_if<HttpResponse>(&sink)) {
      if (refusal->status == 503) {
        ++s_.metrics().uploads_deferred;
      }
      return std::move(*refusal);
    }
    net::Admission admission{s_.config().result_body_limit,
                             std::get<std::shared_ptr<ResultUploadSink>>(std::move(sink))};
    admission.authenticated = true;  // admit() checked the worker's token first
    return admission;
  }

  static HttpResponse not_claimed(const std::string& job_id) {
    return refuse(Refusal::Conflict, "job " + job_id + " is not claimed by this worker");
  }

  static HttpResponse busy(const std::string& job_id) {
    return unavailable("job " + job_id + " is being claimed, released or completed; retry shortly",
                       1);
  }

  void complete(HttpRequest request, const std::string& worker_id, const std::string& job_id,
                const net::Responder& responder) {
    auto sink = std::dynamic_pointer_cast<ResultUploadSink>(request.body_sink);
    if (!sink) {
      responder.send(refuse(Refusal::InternalError, "the upload was not streamed"));
      return;
    }
    auto received = sink->finish();
    sink.reset();  // its share of the budget: the bytes are in
    if (!received) {
      responder.send(invalid("invalid_request", received.error().message));
      return;
    }
    if (!valid_ext(received->ext)) {
      responder.send(invalid("invalid_request",
                             "ext: must be 1 to 10 lowercase letters or digits (e.g. webp)"));
      return;
    }
    s_.metrics().upload_bytes += received->size;
    complete_hashed(BinaryUpload{std::move(received->ext), std::move(received->prompt),
                                 std::move(received->file), received->size, worker_id, job_id,
                                 std::move(received->sha256)},
                    responder);
  }

  struct BinaryUpload {
    std::string ext;
    std::optional<std::string> prompt;
    // The received bytes under a temporary name (removed when the last copy goes, unless moved
    // into place); null when the upload was only verified (a repeat or a late result).
    std::shared_ptr<ResultFile> file;
    std::uint64_t size = 0;
    std::string worker_id;
    std::string job_id;
    std::string sha256;
  };

  void complete_hashed(BinaryUpload upload, const net::Responder& responder) {
    const auto judged = s_.book().judge_active(upload.job_id, upload.worker_id);
    switch (judged.verdict) {
      case jobs::Verdict::Take: break;
      case jobs::Verdict::Drop:
        responder.send(ok_json({{"ok", true}, {"discarded", true}}));
        if (judged.release_holder) {
          s_.release(upload.job_id, "cancelled", {store::AttemptOutcome::Cancelled, std::nullopt},
                     false, false);
        }
        return;
      case jobs::Verdict::Busy: return responder.send(busy(upload.job_id));
      case jobs::Verdict::NotYours: return responder.send(not_claimed(upload.job_id));
      case jobs::Verdict::Repeat:
      case jobs::Verdict::AskStore: return complete_settled(std::move(upload), responder);
    }
    // Hold the job while the file is written, so that no timeout requeues it meanwhile.
    const auto previous = s_.hold_for_completion(upload.job_id);
    write_result_file(std::move(upload), responder,
                      [this, previous](const BinaryUpload& written_upload, const Status& written,
                                       const net::Responder& reply) {
                        store_binary(written_upload, written, reply, previous);
                      });
  }

  // Commits the received bytes under their hash on the blocking pool, then calls `then` on the
  // loop (unless the studio is gone).
  void write_result_file(
      BinaryUpload upload, const net::Responder& responder,
      std::function<void(const BinaryUpload&, const Status&, const net::Responder&)> then) {
    const auto path = s_.results_dir() / upload.sha256;
    boost::asio::post(s_.blocking_pool(), [this, upload, path, responder, then = std::move(then),
                                           weak = s_.weak_from_this()]() mutable {
      Status written;
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        // A rename: readers never see a partial file, and it survives a crash of the studio as
        // the database does (WAL, synchronous=NORMAL).
        written = upload.file ? upload.file->commit(path)
                              : Status(fail(Error::unavailable(
                                    "the job was taken up again while its result was received")));
      }
      upload.file.reset();  // a copy not needed (same bytes already stored) is removed here
      boost::asio::post(s_.loop(), [upload = std::move(upload), written, responder,
                                    then = std::move(then), weak] {
        if (weak.lock()) {
          then(upload, written, responder);
        }
      });
    });
  }

  // The job is not active: its row decides (jobs::judge_settled). A repeat of a stored completion
  // is idempotent; a result for a job that failed is taken (issue 18), its bytes written first
  // and the row completed in one transaction that judges it again; a result for a job done by
  // another or cancelled is dropped; anything else is not this worker's.
  void complete_settled(BinaryUpload upload, const net::Responder& responder) {
    s_.database().call<std::optional<store::JobRecord>>(
        [id = upload.job_id](store::StudioStore& st) { return st.find_job(id); },
        [this, upload, responder,
         weak = s_.weak_from_this()](Result<std::optional<store::JobRecord>> job) mutable {
          if (!weak.lock()) {
            return responder.send(unavailable("shutting down"));
          }
          if (!job) {
            return responder.send(error_response(job.error()));
          }
          const auto verdict = jobs::judge_settled(
              *job, upload.worker_id,
              *job && (*job)->result_binary && (*job)->result_binary->sha256 == upload.sha256);
          answer_settled(verdict, upload, responder);
          if (verdict == jobs::Verdict::Take) {
            write_result_file(std::move(upload), responder,
                              [this](const BinaryUpload& written_upload, const Status& written,
                                     const net::Responder& reply) {
                                take_settled(written_upload, written, reply);
                              });
          }
        });
  }

  // Answers every verdict but Take (which is answered once the result is stored).
  void answer_settled(jobs::Verdict verdict, const BinaryUpload& upload,
                      const net::Responder& responder) {
    switch (verdict) {
      case jobs::Verdict::Take: return;
      case jobs::Verdict::Repeat:
        ++s_.metrics().repeated_completions;
        return responder.send(ok_json({{"ok", true}, {"repeated", true}}));
      case jobs::Verdict::Drop:
        logger().info("job.result_dropped",
                      {{"job_id", upload.job_id}, {"worker_id", upload.worker_id}});
        return responder.send(ok_json({{"ok", true}, {"discarded", true}}));
      case jobs::Verdict::Busy:
        s_.take_over_for_result(upload.worker_id, upload.job_id);
        return responder.send(busy(upload.job_id));
      case jobs::Verdict::NotYours:
      case jobs::Verdict::AskStore: return responder.send(not_claimed(upload.job_id));
    }
  }

  void take_settled(const BinaryUpload& upload, const Status& written,
                    const net::Responder& responder) {
    if (!written) {
      logger().error("result.write_failed",
                     {{"job_id", upload.job_id}, {"error", written.error().message}});
      return responder.send(unavailable("cannot store the result: " + written.error().message));
    }
    store::BinaryResult result{upload.sha256, proto::mime_for_ext(upload.ext), upload.ext,
                               static_cast<std::int64_t>(upload.size)};
    s_.database().call<tx::SettledCompletion>(
        [id = upload.job_id, worker = upload.worker_id, result, prompt = upload.prompt,
         now = s_.unix_millis()](store::StudioStore& st) {
          return tx::complete_settled(st, id, worker, result, prompt, now);
        },
        [this, upload, responder,
         weak = s_.weak_from_this()](Result<tx::SettledCompletion> settled) {
          if (!weak.lock()) {
            return responder.send(unavailable("shutting down"));
          }
          if (!settled) {
            return responder.send(unavailable(settled.error().message));
          }
          if (settled->verdict != jobs::Verdict::Take) {
            return answer_settled(settled->verdict, upload, responder);
          }
          if (settled->job) {
            s_.settled_by_late_result(*settled->job);
          }
          responder.send(ok_json({{"ok", true}}));
        });
  }

  void store_binary(const BinaryUpload& upload, const Status& written,
                    const net::Responder& responder, jobs::Phase previous) {
    if (!s_.book().find(upload.job_id)) {
      responder.send(refuse(Refusal::Conflict, "job is no longer held"));
      return;
    }
    if (!written) {
      logger().error("result.write_failed",
                     {{"job_id", upload.job_id}, {"error", written.error().message}});
      s_.resume_after_failed_completion(upload.job_id, previous);
      responder.send(unavailable("cannot store the result: " + written.error().message));
      return;
    }
    store::BinaryResult result{upload.sha256, proto::mime_for_ext(upload.ext), upload.ext,
                               static_cast<std::int64_t>(upload.size)};
    const auto now = s_.unix_millis();
    s_.finish_complete(
        upload.job_id, upload.worker_id, previous,
        [id = upload.job_id, worker = upload.worker_id, result, prompt = upload.prompt,
         now](store::StudioStore& st) {
          return st.complete_job_binary(id, worker, result, prompt, now);
        },
        [responder, job_id = upload.job_id](Result<bool> stored) {
          if (stored && *stored) {
            responder.send(ok_json({{"ok", true}}));
          } else if (stored) {
            responder.send(
                refuse(Refusal::Conflict, "job " + job_id + " is not claimed by this worker"));
          } else {
            responder.send(unavailable(stored.error().message));
          }
        });
  }

  Studio& s_;
};

WorkerRoutes::WorkerRoutes(Studio& studio) : impl_(std::make_unique<Impl>(studio)) {}
WorkerRoutes::~WorkerRoutes() = default;

void WorkerRoutes::handle(RouteId id, net::HttpRequest request,
                          const std::vector<std::string>& params, const net::Responder& responder) {
  impl_->handle(id, std::move(request), params, responder);
}

bool WorkerRoutes::token_ok(const net::HttpRequest& head, const std::string& worker_id) const {
  return impl_->worker_token_ok(head, worker_id);
}

std::variant<net::UpgradeAccepted, net::HttpResponse> WorkerRoutes::upgrade(
    const net::HttpRequest& head, const std::string& worker_id) {
  return impl_->upgrade(head, worker_id);
}

void WorkerRoutes::admit_upload(const net::HttpRequest& head, const std::string& worker_id,
                                const std::string& job_id, net::Admitter admitter) {
  impl_->admit_upload(head, worker_id, job_id, std::move(admitter));
}

}  // namespace sw::studio::api
