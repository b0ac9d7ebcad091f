// Worker WebSocket sessions (reference §1, §8): hello/welcome, heartbeats, offers' answers,
// completions over the socket, logs, and the error-then-close rule.

#include <boost/asio/steady_timer.hpp>

#include <algorithm>

#include "common/clock.h"
#include "common/log.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/cluster/cluster.h"
#include "studio/db_worker.h"
#include "studio/studio.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::session");
  return instance;
}

constexpr auto kHeartbeatPersistEvery = std::chrono::milliseconds(30'000);

}  // namespace

void WorkerSession::on_open(std::shared_ptr<net::WebSocket> socket) {
  socket_ = socket;
  if (auto studio = studio_.lock()) {
    last_frame_ = studio->steady_now();
    studio->on_session_open(shared_from_this());
  } else {
    ended_ = true;
    socket->close(1000, "studio shutting down");
  }
}

void WorkerSession::on_text(std::string text) {
  if (auto studio = studio_.lock()) {
    studio->on_frame(shared_from_this(), text);
  }
}

void WorkerSession::on_binary(std::size_t bytes) {
  if (auto studio = studio_.lock()) {
    logger().warn("ws.binary_frame", {{"worker_id", worker_id_}, {"bytes", bytes}});
    studio->end_session(shared_from_this(), proto::WorkerErrorCode::ProtocolViolation,
                        "binary frames are not part of the protocol; send JSON text frames");
  }
}

void WorkerSession::on_closed() {
  if (auto studio = studio_.lock()) {
    studio->on_session_closed(shared_from_this());
  }
}

void Studio::on_session_open(const std::shared_ptr<WorkerSession>& session) {
  // Counted even while stopping: serve's drain waits for every session's close handshake, and a
  // session upgraded after the stop began would otherwise be cut with the loop (a reset, not 1000).
  open_sessions_.insert(session);
  if (stopping_) {
    session->ended_ = true;
    if (auto socket = session->socket()) {
      socket->close(1000, "studio shutting down");
    }
    return;
  }
  if (auto socket = session->socket()) {
    logger().debug("ws.open",
                   {{"worker_id", session->worker_id_}, {"remote", socket->remote_address()}});
  }
}

void Studio::send(const std::shared_ptr<WorkerSession>& session, const proto::StudioFrame& frame) {
  if (auto socket = session->socket(); socket && !session->ended_) {
    socket->send_text(proto::encode(frame));
    ++metrics_.frames_out;
  }
}

void Studio::on_frame(const std::shared_ptr<WorkerSession>& session, std::string_view text) {
  if (session->ended_) {
    return;
  }
  ++metrics_.frames_in;
  session->last_frame_ = steady_now();
  auto frame = proto::decode_worker_frame(text);
  if (!frame) {
    logger().warn("ws.bad_frame",
                  {{"worker_id", session->worker_id_}, {"error", frame.error().message}});
    end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                "malformed frame: " + frame.error().message);
    return;
  }
  if (!session->welcomed_) {
    if (session->hello_pending_) {
      end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                  fmt::format("{} sent before welcome: wait for welcome after hello",
                              proto::frame_type(*frame)));
    } else if (auto* hello = std::get_if<proto::Hello>(&*frame)) {
      handle_hello(session, std::move(*hello));
    } else {
      end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                  fmt::format("session not authenticated: the first frame must be hello, got {}",
                              proto::frame_type(*frame)));
    }
    return;
  }
  std::visit(
      [&](auto&& f) {
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, proto::Hello>) {
          end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                      "hello sent twice in one session");
        } else if constexpr (std::is_same_v<F, proto::Heartbeat>) {
          handle_heartbeat(session, std::move(f));
        } else if constexpr (std::is_same_v<F, proto::Accept>) {
          handle_accept(session, f);
        } else if constexpr (std::is_same_v<F, proto::Reject>) {
          handle_reject(session, f);
        } else if constexpr (std::is_same_v<F, proto::CompleteJson>) {
          handle_complete_json(session, std::move(f));
        } else if constexpr (std::is_same_v<F, proto::Fail>) {
          handle_fail(session, f);
        } else if constexpr (std::is_same_v<F, proto::LogBatch>) {
          handle_log_batch(session, std::move(f));
        } else if constexpr (std::is_same_v<F, proto::JobProgress>) {
          handle_progress(session, f);
        } else {
          // readyForMore: never needed (the studio drives offers), accepted from old workers.
          request_dispatch();
        }
      },
      std::move(*frame));
}

void Studio::handle_hello(const std::shared_ptr<WorkerSession>& session, proto::Hello hello) {
  // With other studio processes the cache may lag a change made through them (an approval, a
  // new token): the row below decides.
  if (!cluster_ && !registry_.knows_worker(session->worker_id_)) {
    end_session(session, proto::WorkerErrorCode::WorkerDeleted,
                "worker " + session->worker_id_ + " was deleted by the operator");
    return;
  }
  if (!cluster_ && !registry_.worker_token_matches(session->worker_id_, hello.auth_token)) {
    logger().warn("ws.auth_failed", {{"worker_id", session->worker_id_}});
    end_session(session, proto::WorkerErrorCode::AuthFailed, "auth token rejected");
    return;
  }
  // The row decides, not the cache: it is read again before the session is welcomed, so no
  // cached approval outlives a deleted worker's row.
  session->hello_pending_ = true;
  db_->call<std::optional<store::WorkerRecord>>(
      [worker_id = session->worker_id_](store::StudioStore& s) { return s.find_worker(worker_id); },
      [self = shared_from_this(), session,
       hello = std::move(hello)](Result<std::optional<store::WorkerRecord>> row) mutable {
        session->hello_pending_ = false;
        if (session->ended_ || self->stopping_) {
          return;
        }
        if (!row) {
          logger().error("ws.worker_unreadable",
                         {{"worker_id", session->worker_id_}, {"error", row.error().message}});
          // Passing (a database restart): a close without an `error` frame, which both workers
          // answer by reconnecting with backoff. An `error` frame, even internal_error, stops a
          // worker for good (reference-worker.md §2, "Worker reaction"). 1013: Try Again Later.
          self->close_session(session, 1013,
                              "the studio cannot read this worker's record; try again later",
                              "session ended: the worker's record could not be read", true, false);
          return;
        }
        if (!*row) {
          self->revoke_worker(session->worker_id_,
                              "worker " + session->worker_id_ + " was deleted by the operator");
          return;
        }
        if (!constant_time_equal(sha256_hex(hello.auth_token), (*row)->token_hash)) {
          logger().warn("ws.auth_failed", {{"worker_id", session->worker_id_}});
          self->end_session(session, proto::WorkerErrorCode::AuthFailed, "auth token rejected");
          return;
        }
        self->registry_.set_worker_token_hash(session->worker_id_, (*row)->token_hash);
        self->welcome(session, std::move(hello));
      });
}

void Studio::welcome(const std::shared_ptr<WorkerSession>& session, proto::Hello hello) {
  if (auto previous = sessions_.find(session->worker_id_); previous != sessions_.end()) {
    auto old = previous->second;
    logger().info("ws.duplicate", {{"worker_id", session->worker_id_}});
    end_session(old, proto::WorkerErrorCode::DuplicateWorker,
                "a newer session for this worker connected");
  }
  session->welcomed_ = true;
  session->welcomed_at_ = unix_millis();
  session->order_ = ++next_session_order_;
  session->capabilities_ = std::move(hello.capabilities);
  sessions_[session->worker_id_] = session;
  scheduler_.upsert_worker(session->worker_id_, session->order_, session->capabilities_);
  proto::Welcome welcome{session->worker_id_, format_rfc3339_millis(unix_millis())};
  // Extensions go only to a worker that announced them: the reference gets the reference's
  // welcome, key for key.
  const auto announced = [&](std::string_view feature) {
    return std::find(hello.features.begin(), hello.features.end(), feature) != hello.features.end();
  };
  if (announced(proto::kFeatureLimits)) {
    welcome.features.emplace_back(proto::kFeatureLimits);
    welcome.limits = proto::StudioLimits{config_.frame_limit, config_.result_body_limit};
  }
  // Several jobs at once: until its first heartbeat says how many, one slot, as for any worker.
  session->capacity_ = announced(proto::kFeatureCapacity);
  if (session->capacity_) {
    welcome.features.emplace_back(proto::kFeatureCapacity);
  }
  session->progress_ = announced(proto::kFeatureProgress);
  if (session->progress_) {
    welcome.features.emplace_back(proto::kFeatureProgress);
  }
  session->cancel_ = announced(proto::kFeatureCancel);
  if (session->cancel_) {
    welcome.features.emplace_back(proto::kFeatureCancel);
  }
  // It fetches studio uploads with its token: jobs whose inputs are uploads may go to it.
  session->uploads_ = announced(proto::kFeatureUploads);
  scheduler_.set_fetches_uploads(session->worker_id_, session->uploads_);
  if (session->uploads_) {
    welcome.features.emplace_back(proto::kFeatureUploads);
  }
  send(session, welcome);
  logger().info("ws.welcome", {{"worker_id", session->worker_id_},
                               {"machine", session->capabilities_.machine_name},
                               {"agent_version", session->capabilities_.agent_version}});
  persist_heartbeat(session, true);
  publish_worker(session->worker_id_, "connected");
  request_dispatch();
}

void Studio::revoke_worker(const std::string& worker_id, const std::string& message) {
  registry_.forget_worker(worker_id);
  std::vector<std::shared_ptr<WorkerSession>> doomed;
  for (const auto& session : open_sessions_) {
    if (session->worker_id_ == worker_id && !session->ended_) {
      doomed.push_back(session);
    }
  }
  if (auto it = sessions_.find(worker_id);
      it != sessions_.end() &&
      std::find(doomed.begin(), doomed.end(), it->second) == doomed.end()) {
    doomed.push_back(it->second);
  }
  for (const auto& session : doomed) {
    end_session(session, proto::WorkerErrorCode::WorkerDeleted, message);
  }
  // Claims waiting out their grace for this worker to come back: it will not.
  const auto held = book_.detached_claims_of(worker_id);
  for (const auto& id : held) {
    release(id, message, {store::AttemptOutcome::Requeued, message}, false, false);
  }
  publish_worker(worker_id, "deleted");
  logger().info("worker.revoked", {{"worker_id", worker_id},
                                   {"sessions_closed", doomed.size()},
                                   {"claims_released", held.size()}});
}

void Studio::handle_heartbeat(const std::shared_ptr<WorkerSession>& session,
                              proto::Heartbeat beat) {
  session->capabilities_ = std::move(beat.capabilities);
  session->last_heartbeat_at_ = unix_millis();
  session->reported_job_ = std::move(beat.current_job_id);
  session->reported_jobs_.clear();
  if (session->capacity_ && beat.capacity) {
    session->reported_jobs_ = beat.capacity->job_ids;
  } else if (session->reported_job_) {
    session->reported_jobs_.push_back(*session->reported_job_);
  }
  scheduler_.upsert_worker(session->worker_id_, session->order_, session->capabilities_);
  send(session, proto::HeartbeatAck{});
  persist_heartbeat(session, false);
  // A worker without "capacity" holds one job; a reported job is looked at only while it holds
  // none (as the reference studio does). One with it may report several beside those it holds.
  for (const auto& reported : session->reported_jobs_) {
    if (session->jobs_.contains(reported) || (!session->capacity_ && !session->jobs_.empty())) {
      continue;
    }
    if (!reattach_reported_job(session, reported) && cluster_) {
      // Held by another studio process (or adopted by one): the claim moves here.
      if (const auto* job = book_.find(reported); !job || job->phase == jobs::Phase::Queued) {
        cluster_->take_over(session, reported);
      }
    }
  }
  if (!session->first_beat_seen_) {
    // Once per session (the scan is over every active job): a claim this worker held before
    // and does not name now is not running there. Its result may still come from the worker's
    // outbox; past a short wait the job goes elsewhere instead of after the whole claim grace.
    session->first_beat_seen_ = true;
    for (const auto& held : book_.detached_claims_of(session->worker_id_)) {
      if (std::find(session->reported_jobs_.begin(), session->reported_jobs_.end(), held) ==
          session->reported_jobs_.end()) {
        logger().info("job.holder_back_without_it",
                      {{"job_id", held},
                       {"worker_id", session->worker_id_},
                       {"grace_ms", config_.returned_without_job_grace.count()}});
        execute(book_.returned_without(held, steady_now(), config_.returned_without_job_grace));
      }
    }
  }
  if (session->capacity_ && beat.capacity) {
    // Its slots: the jobs it holds that it knows of, plus the room it announced for more.
    std::size_t known = 0;
    for (const auto& reported : session->reported_jobs_) {
      known += session->jobs_.contains(reported) ? 1 : 0;
    }
    scheduler_.set_slots(session->worker_id_, known + beat.capacity->room);
  }
  if (scheduler_.queued() > 0) {
    // Self-heal: an idle worker asks for work by being idle. Only its own kinds are scanned,
    // so 10,000 heartbeating workers cost nothing while the queue is empty or not theirs.
    if (auto assignment = scheduler_.assign_worker(session->worker_id_, steady_now())) {
      claim(assignment->job_id, session);
    }
  }
}

bool Studio::reattach_reported_job(const std::shared_ptr<WorkerSession>& session,
                                   const std::string& reported) {
  if (session->ended_ || session->jobs_.contains(reported) ||
      (!session->capacity_ && !session->jobs_.empty())) {
    return false;
  }
  // A holder back after a disconnect (or a studio restart) still runs its job: keep the claim.
  const auto* job = book_.find(reported);
  if (!job || job->phase != jobs::Phase::Detached || job->holder != session->worker_id_) {
    return false;
  }
  const auto& job_id = job->record.id;
  session->jobs_.insert(job_id);
  count_session_jobs(session);
  logger().info("job.reattached", {{"job_id", job_id}, {"worker_id", job->holder}});
  execute(book_.reattach(job_id, session->order_, steady_now(),
                         config_.run_limit_for(job->record.kind)));
  return true;
}

void Studio::take_over_for_result(const std::string& worker_id, const std::string& job_id) {
  if (!cluster_) {
    return;
  }
  const auto session = sessions_.find(worker_id);
  if (session == sessions_.end() || session->second->ended_) {
    return;
  }
  if (const auto* job = book_.find(job_id); job && job->phase != jobs::Phase::Queued) {
    return;  // held here: the book judges the next delivery
  }
  cluster_->take_over(session->second, job_id);
}

void Studio::persist_heartbeat(const std::shared_ptr<WorkerSession>& session, bool force) {
  std::string capabilities = proto::encode(session->capabilities_);
  const auto now = unix_millis();
  if (!force && capabilities == session->persisted_capabilities_ &&
      session->reported_job_ == session->persisted_job_ &&
      now - session->persisted_at_ < kHeartbeatPersistEvery.count()) {
    return;
  }
  session->persisted_capabilities_ = capabilities;
  session->persisted_job_ = session->reported_job_;
  session->persisted_at_ = now;
  db_->call<bool>(
      [worker = session->worker_id_, capabilities = std::move(capabilities),
       job = session->reported_job_,
       now](store::StudioStore& s) { return s.record_heartbeat(worker, capabilities, job, now); },
      [self = shared_from_this(), session](Result<bool> exists) {
        if (exists && !*exists) {
          self->revoke_worker(session->worker_id_,
                              "worker " + session->worker_id_ + " was deleted by the operator");
        }
      });
}

void Studio::handle_accept(const std::shared_ptr<WorkerSession>& session,
                           const proto::Accept& accept) {
  const auto answer = book_.judge_accept(accept.job_id, session->order_);
  if (answer == jobs::Answer::Repeat) {
    return;  // a repeated accept changes nothing
  }
  if (answer == jobs::Answer::Start) {
    const auto now = unix_millis();
    const auto* job = book_.find(accept.job_id);
    execute(
        book_.accept(accept.job_id, steady_now(), now, config_.run_limit_for(job->record.kind)));
    // The worker's row is read again here too: a worker deleted since its offer is cut off.
    db_->call<bool>(
        [id = accept.job_id, worker = session->worker_id_,
         now](store::StudioStore& s) -> Result<bool> {
          auto row = s.worker_exists(worker);
          if (!row) {
            return fail(std::move(row).error());
          }
          if (!*row) {
            return false;
          }
          SW_TRY(s.mark_accepted(id, worker, now));
          return true;
        },
        [self = shared_from_this(), session](Result<bool> present) {
          if (present && !*present && !session->ended_) {
            self->revoke_worker(session->worker_id_,
                                "worker " + session->worker_id_ + " was deleted by the operator");
          }
        });
    return;
  }
  // An accept that crossed the offer's timeout (or a withdrawal) in flight changes nothing.
  once_held(accept.job_id, session->worker_id_,
            [self = shared_from_this(), session, job_id = accept.job_id](bool lapsed) {
              if (lapsed) {
                logger().info("job.late_accept_ignored",
                              {{"job_id", job_id}, {"worker_id", session->worker_id_}});
                return;
              }
              self->end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                                "accept for a job this worker does not hold: " + job_id);
            });
}

void Studio::handle_reject(const std::shared_ptr<WorkerSession>& session,
                           const proto::Reject& reject) {
  if (book_.judge_reject(reject.job_id, session->order_) != jobs::Answer::Release) {
    once_held(reject.job_id, session->worker_id_,
              [self = shared_from_this(), session, job_id = reject.job_id](bool lapsed) {
                if (!lapsed) {
                  self->end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                                    "reject for a job this worker was not offered: " + job_id);
                }
              });
    return;
  }
  const auto until = steady_now() + config_.reject_hold_off;
  const auto& job = *book_.find(reject.job_id);
  // A worker without the job's engine (its reason names the engine, or its latest capabilities
  // do not list it: an offer that crossed a heartbeat, or an older worker that lists no per-kind
  // models) says routing chose wrong, not that the job is bad: no attempt is counted.
  const bool engine_missing = !reject.code && !job.engine.empty() &&
                              (reject.reason.find(job.engine) != std::string::npos ||
                               !Scheduler::serves(session->capabilities_, job.queued()));
  logger().info("job.rejected", {{"job_id", reject.job_id},
                                 {"worker_id", session->worker_id_},
                                 {"reason", reject.reason},
                                 {"code", reject.code ? proto::to_string(*reject.code) : ""},
                                 {"engine_missing", engine_missing}});
  const std::string error = "rejected by " + session->worker_id_ + ": " + reject.reason;
  const store::AttemptEnd ended{store::AttemptOutcome::Rejected, reject.reason};
  // This job is still among the session's: "others" are the ones beside it.
  const bool no_room =
      session->capacity_ && reject.code == proto::RejectCode::Busy && session->jobs_.size() > 1;
  const auto outcome = jobs::judge_reject_outcome(reject.code.has_value(), engine_missing, no_room);
  if (outcome.hold_off_worker) {
    scheduler_.hold_off(session->worker_id_, until);
  }
  if (outcome.exclude_job) {
    scheduler_.exclude(session->worker_id_, reject.job_id, until, outcome.until_room);
  }
  release(reject.job_id, error, ended, outcome.count_attempt, false);
}

void Studio::handle_complete_json(const std::shared_ptr<WorkerSession>& session,
                                  proto::CompleteJson complete) {
  const std::string job_id = complete.job_id;
  const std::string worker = session->worker_id_;
  const auto judged = book_.judge_active(job_id, worker);
  switch (judged.verdict) {
    case jobs::Verdict::Take: {
      const auto previous = hold_for_completion(job_id);
      const auto now = unix_millis();
      finish_complete(
          job_id, worker, previous,
          [job_id, worker, result = complete.result.text(), prompt = std::move(complete.prompt),
           now](store::StudioStore& s) {
            return s.complete_job_json(job_id, worker, result, prompt, now);
          },
          [self = shared_from_this(), session, job_id](Result<bool> stored) {
            if (stored && *stored) {
              self->send(session, proto::CompleteAck{job_id});
            } else {
              // No acknowledgement: the worker keeps the result and delivers it again.
              logger().error("job.store_failed", {{"job_id", job_id},
                                                  {"error", stored ? std::string("not claimed")
                                                                   : stored.error().message}});
            }
          });
      return;
    }
    case jobs::Verdict::Drop:
      send(session, proto::CompleteAck{job_id});
      if (judged.release_holder) {
        release(job_id, "cancelled", {store::AttemptOutcome::Cancelled, std::nullopt}, false,
                false);
      }
      return;
    case jobs::Verdict::Busy:
      // No acknowledgement, so the worker's outbox delivers again a little later and meets a
      // settled job.
      logger().info("job.completion_deferred", {{"job_id", job_id}, {"worker_id", worker}});
      return;
    case jobs::Verdict::NotYours:
      end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                  "completeJson for a job this worker does not hold: " + job_id);
      return;
    case jobs::Verdict::Repeat:
    case jobs::Verdict::AskStore: break;
  }
  // Not active: the stored row decides (tx::complete_settled), and a failed job is completed in
  // the same transaction, so that of two late results only the first is taken.
  db_->call<tx::SettledCompletion>(
      [job_id, worker, result = tx::DeliveredResult(complete.result), prompt = complete.prompt,
       now = unix_millis()](store::StudioStore& s) {
        return tx::complete_settled(s, job_id, worker, result, prompt, now);
      },
      [self = shared_from_this(), session, job_id](Result<tx::SettledCompletion> settled) {
        if (!settled) {
          // No acknowledgement: the worker keeps the result and delivers it again.
          logger().error("job.store_failed",
                         {{"job_id", job_id}, {"error", settled.error().message}});
          return;
        }
        const std::string& who = session->worker_id_;
        switch (settled->verdict) {
          case jobs::Verdict::Take:
            if (settled->job) {
              self->settled_by_late_result(*settled->job);
            }
            self->send(session, proto::CompleteAck{job_id});
            return;
          case jobs::Verdict::Repeat:
            ++self->metrics_.repeated_completions;
            self->send(session, proto::CompleteAck{job_id});
            return;
          case jobs::Verdict::Drop:
            logger().info("job.result_dropped",
                          {{"job_id", job_id},
                           {"worker_id", who},
                           {"status", settled->job ? store::to_string(settled->job->status)
                                                   : std::string_view("unknown")}});
            self->send(session, proto::CompleteAck{job_id});
            return;
          case jobs::Verdict::Busy:
            logger().info("job.completion_deferred", {{"job_id", job_id}, {"worker_id", who}});
            self->take_over_for_result(who, job_id);
            return;
          case jobs::Verdict::NotYours:
          case jobs::Verdict::AskStore: break;
        }
        self->end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                          "completeJson for a job this worker does not hold: " + job_id);
      });
}

void Studio::handle_fail(const std::shared_ptr<WorkerSession>& session,
                         const proto::Fail& failure) {
  const auto standing_now = book_.standing(failure.job_id, session->worker_id_);
  if (standing_now == jobs::Standing::Holder) {
    logger().info("job.worker_failed", {{"job_id", failure.job_id},
                                        {"worker_id", session->worker_id_},
                                        {"retryable", failure.retryable},
                                        {"error", failure.error}});
    // Retried elsewhere first: a worker that just failed this job (a broken box, a program gone)
    // is not offered it again for a while, so it cannot use up every attempt in a second while
    // a healthy worker sits idle.
    book_.fail_reported(failure.job_id, unix_millis());
    if (failure.retryable && config_.fail_hold_off.count() > 0) {
      scheduler_.exclude(session->worker_id_, failure.job_id, steady_now() + config_.fail_hold_off);
    }
    release(failure.job_id, failure.error, {store::AttemptOutcome::Failed, failure.error}, true,
            !failure.retryable, [self = shared_from_this(), session, job_id = failure.job_id] {
              self->send(session, proto::FailAck{job_id});
            });
    return;
  }
  if (standing_now == jobs::Standing::Busy) {
    send(session, proto::FailAck{failure.job_id});  // the job is moving on without this worker
    return;
  }
  // A fail for a job this worker held before (the claim lapsed meanwhile) is acknowledged and
  // changes nothing; anything else breaks the protocol.
  once_held(failure.job_id, session->worker_id_,
            [self = shared_from_this(), session, job_id = failure.job_id](bool lapsed) {
              if (lapsed) {
                self->send(session, proto::FailAck{job_id});
                return;
              }
              self->end_session(session, proto::WorkerErrorCode::ProtocolViolation,
                                "fail for a job this worker does not hold: " + job_id);
            });
}

void Studio::handle_progress(const std::shared_ptr<WorkerSession>& session,
                             const proto::JobProgress& progress) {
  // Loss-tolerant by contract: progress from a worker not welcomed with the feature, or about a
  // job it does not hold (any more), is dropped without a word to the worker.
  if (!session->progress_ ||
      book_.standing(progress.job_id, session->worker_id_) != jobs::Standing::Holder) {
    logger().debug("job.progress_dropped",
                   {{"job_id", progress.job_id}, {"worker_id", session->worker_id_}});
    return;
  }
  const auto watchers = job_watchers_.find(progress.job_id);
  if (watchers == job_watchers_.end()) {
    return;
  }
  // A copy: a watcher may unwatch (itself or another) while it runs.
  const auto current = watchers->second;
  for (const auto& [id, watch] : current) {
    if (watch.on_progress) {
      watch.on_progress(progress);
    }
  }
}

void Studio::handle_log_batch(const std::shared_ptr<WorkerSession>& session,
                              proto::LogBatch batch) {
  if (batch.entries.empty()) {
    return;
  }
  db_->call<bool>(
      [worker = session->worker_id_, entries = std::move(batch.entries), now = unix_millis(),
       keep = config_.log_keep_per_worker](store::StudioStore& s) -> Result<bool> {
        SW_TRY(s.insert_logs(worker, entries, now, keep));
        return true;
      },
      [worker = session->worker_id_](Result<bool> stored) {
        if (!stored) {
          logger().warn("logs.store_failed",
                        {{"worker_id", worker}, {"error", stored.error().message}});
        }
      });
}

void Studio::end_session(std::shared_ptr<WorkerSession> session, proto::WorkerErrorCode code,
                         std::string message) {
  if (session->ended_) {
    return;
  }
  if (code == proto::WorkerErrorCode::ProtocolViolation) {
    ++metrics_.protocol_violations;
  }
  logger().info(
      "ws.error_sent",
      {{"worker_id", session->worker_id_}, {"code", proto::to_string(code)}, {"message", message}});
  // The error frame always goes first: the worker only stops reconnecting when it reads it.
  send(session, proto::ErrorFrame{code, message});
  // A newer session of the same worker takes its claim over; other ends give the job back.
  const bool keep_claim = code == proto::WorkerErrorCode::DuplicateWorker;
  // The operator removing a worker says nothing about its job: no attempt is counted.
  const bool count_attempt = code != proto::WorkerErrorCode::WorkerDeleted;
  close_session(session, proto::close_code_for(code), message,
                fmt::format("session ended: {}: {}", proto::to_string(code), message), keep_claim,
                count_attempt);
}

void Studio::close_session(std::shared_ptr<WorkerSession> session, std::uint16_t close_code,
                           std::string reason, std::string release_reason, bool keep_claim,
                           bool count_attempt) {
  if (auto socket = session->socket(); socket && !session->ended_) {
    socket->close(close_code, std::move(reason));
  }
  session->ended_ = true;
  if (auto it = sessions_.find(session->worker_id_);
      it != sessions_.end() && it->second == session) {
    sessions_.erase(it);
    scheduler_.remove_worker(session->worker_id_);
    publish_worker(session->worker_id_, "disconnected");
  }
  const std::set<std::string> held = session->jobs_;  // released one by one below
  for (const auto& job_id : held) {
    const auto* job = book_.find(job_id);
    if (keep_claim && job && job->session == session->order_ &&
        (job->phase == jobs::Phase::Offered || job->phase == jobs::Phase::Running)) {
      session->jobs_.erase(job_id);
      logger().info("job.detached", {{"job_id", job_id},
                                     {"worker_id", job->holder},
                                     {"grace_ms", config_.claim_grace.count()},
                                     {"why", release_reason}});
      execute(book_.detach(job_id, steady_now(), config_.claim_grace, release_reason));
    } else {
      release(job_id, release_reason, {store::AttemptOutcome::Requeued, release_reason},
              count_attempt, false);
    }
  }
}

void Studio::on_session_closed(const std::shared_ptr<WorkerSession>& session) {
  open_sessions_.erase(session);
  if (!session->ended_) {
    logger().info("ws.closed", {{"worker_id", session->worker_id_}});
    session->ended_ = true;
    close_session(session, 1000, "", "the worker disconnected", true);
  }
}

void Studio::schedule_sweep() {
  if (stopping_) {
    return;
  }
  sweep_timer_ = std::make_shared<boost::asio::steady_timer>(loop_, config_.sweep_interval);
  sweep_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) {
      return;
    }
    self->sweep_silent_sessions();
    self->schedule_sweep();
  });
}

void Studio::sweep_silent_sessions() {
  const auto now = steady_now();
  std::vector<std::shared_ptr<WorkerSession>> silent;
  for (const auto& session : open_sessions_) {
    if (!session->ended_ && now - session->last_frame_ > config_.session_silence_timeout) {
      silent.push_back(session);
    }
  }
  for (const auto& session : silent) {
    const auto ms = config_.session_silence_timeout.count();
    logger().warn("ws.silent", {{"worker_id", session->worker_id_}, {"silent_ms", ms}});
    close_session(session, 1000, fmt::format("no frame for {} ms", ms),
                  fmt::format("the worker went silent for {} ms", ms), true);
  }
}

}  // namespace sw::studio
