#include "studio/studio.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/admin.h"
#include "studio/data_dir.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/router.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::jobs");
  return instance;
}

}  // namespace

Studio::Studio(boost::asio::any_io_executor loop, StudioConfig config, const Clock& clock)
    : loop_(std::move(loop)),
      config_(std::move(config)),
      clock_(clock),
      blocking_(std::make_unique<boost::asio::thread_pool>(2)),
      register_limiter_(config_.register_rate_limit, config_.register_rate_window) {}

Studio::~Studio() {
  if (db_) {
    db_->stop();
  }
  blocking_->join();
}

Result<std::shared_ptr<Studio>> Studio::create(boost::asio::any_io_executor loop,
                                               StudioConfig config, const Clock& clock) {
  // Private modes, and no silent fresh start over a lost database (issue 16).
  auto store = open_data_dir(config.data_dir);
  if (!store) {
    return fail(std::move(store).error());
  }
  remove_stale_upload_files(config.data_dir / "results");
  std::shared_ptr<Studio> studio(new Studio(loop, std::move(config), clock));
  studio->upload_budget_->limit =
      std::max(studio->config_.upload_in_flight_limit, studio->config_.result_body_limit);
  SW_TRY(studio->load(**store));
  studio->db_ = std::make_unique<DbWorker>(std::move(*store), loop);
  studio->router_ = make_router(*studio);
  studio->schedule_sweep();
  return studio;
}

Status Studio::load(store::StudioStore& store) {
  auto workers = store.list_workers();
  if (!workers) {
    return fail(std::move(workers).error());
  }
  for (const auto& worker : *workers) {
    workers_[worker.id] = CachedWorker{worker.token_hash};
  }
  auto models = store.list_models();
  if (!models) {
    return fail(std::move(models).error());
  }
  for (auto& model : *models) {
    auto source = proto::decode_model_source(model.source_json);
    if (!source) {
      logger().warn("model.unreadable", {{"model", model.id}, {"error", source.error().message}});
      continue;
    }
    std::string id = model.id;
    models_[id] = CachedModel{std::move(model), std::move(*source)};
  }
  auto keys = store.list_api_keys();
  if (!keys) {
    return fail(std::move(keys).error());
  }
  for (const auto& key : *keys) {
    api_keys_[key.key_hash] = key.id;
  }
  if (config_.admin_token) {
    admin_token_hash_ = sha256_hex(*config_.admin_token);
  } else {
    auto stored = store.setting(kAdminTokenSetting);
    if (!stored) {
      return fail(std::move(stored).error());
    }
    if (*stored) {
      admin_token_hash_ = **stored;
    }
  }

  // Claimed jobs belong to sessions of a previous run: their holders get the claim grace to come
  // back (their heartbeat re-attaches the job, their result is accepted) before a requeue.
  auto active = store.active_jobs();
  if (!active) {
    return fail(std::move(active).error());
  }
  for (auto& record : *active) {
    const bool claimed = record.status == store::JobStatus::Claimed;
    auto job = make_active_job(std::move(record));
    if (!job) {
      logger().error("job.unreadable", {{"error", job.error().message}});
      continue;
    }
    if (!claimed) {
      enqueue(std::move(*job));
      continue;
    }
    job->holder = job->record.worker_id.value_or("");
    std::string id = job->record.id;
    auto& placed = jobs_.insert_or_assign(std::move(id), std::move(*job)).first->second;
    detach(placed, "the studio restarted");
  }
  logger().info("studio.loaded", {{"workers", workers_.size()},
                                  {"models", models_.size()},
                                  {"queued_jobs", scheduler_.queued()}});
  return {};
}

Result<std::optional<std::string>> Studio::mint_admin_token_if_missing() {
  if (!admin_token_hash_.empty()) {
    return std::optional<std::string>();
  }
  auto store = store::StudioStore::open(config_.data_dir / "studio.db");
  if (!store) {
    return fail(std::move(store).error());
  }
  auto token = store_new_admin_token(**store);
  if (!token) {
    return fail(std::move(token).error());
  }
  admin_token_hash_ = sha256_hex(*token);
  return std::optional<std::string>(std::move(*token));
}

Result<Studio::ActiveJob> Studio::make_active_job(store::JobRecord record) {
  auto task = proto::decode_task(record.task_json);
  if (!task) {
    return fail(Error::invalid_argument("job {}: stored task is unreadable: {}", record.id,
                                        task.error().message));
  }
  auto source = proto::decode_model_source(record.model_source_json);
  if (!source) {
    return fail(Error::invalid_argument("job {}: stored model source is unreadable: {}", record.id,
                                        source.error().message));
  }
  ActiveJob job;
  proto::JobOfferClaim claim;
  claim.job_id = record.id;
  claim.game_id = record.game_id;
  claim.asset_name = record.asset_name;
  claim.model = record.model;
  claim.vram_gb_estimate = record.vram_gb_estimate;
  claim.task = std::move(*task);
  claim.model_source = std::move(*source);
  job.engine = claim.model_source.engine;
  job.offer_frame = proto::encode(proto::StudioFrame{proto::Offer{std::move(claim)}});
  job.record = std::move(record);
  return job;
}

void Studio::enqueue(ActiveJob job) {
  job.phase = ActiveJob::Phase::Queued;
  job.holder.clear();
  job.session.reset();
  job.deadline.reset();
  job.deadline_reason.clear();
  job.run_until.reset();
  job.enqueued_at = steady_now();
  scheduler_.enqueue(job.queued());
  std::string id = job.record.id;
  jobs_.insert_or_assign(std::move(id), std::move(job));
  request_dispatch();
}

void Studio::request_dispatch() {
  if (dispatch_pending_ || stopping_) {
    return;
  }
  dispatch_pending_ = true;
  boost::asio::post(loop_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->dispatch();
    }
  });
}

void Studio::dispatch() {
  dispatch_pending_ = false;
  if (stopping_) {
    return;
  }
  for (auto& assignment : scheduler_.assign(steady_now())) {
    const auto session = sessions_.find(assignment.worker_id);
    if (session == sessions_.end()) {
      // Cannot happen (the scheduler only knows welcomed sessions); put the job back.
      auto it = jobs_.find(assignment.job_id);
      if (it != jobs_.end()) {
        enqueue(std::move(it->second));
      }
      continue;
    }
    claim(assignment.job_id, session->second);
  }
}

void Studio::claim(const std::string& job_id, const std::shared_ptr<WorkerSession>& session) {
  auto& job = jobs_.at(job_id);
  job.phase = ActiveJob::Phase::Claiming;
  job.holder = session->worker_id_;
  job.session = session;
  session->job_id_ = job_id;
  const auto now = unix_millis();
  db_->call<ClaimOutcome>(
      [job_id, worker = job.holder, now](store::StudioStore& s) -> Result<ClaimOutcome> {
        // The worker's row is read again before every claim: a cached approval never outlives it.
        auto row = s.worker_exists(worker);
        if (!row) {
          return fail(std::move(row).error());
        }
        if (!*row) {
          return ClaimOutcome::WorkerGone;
        }
        auto claimed = s.claim_job(job_id, worker, now);
        if (!claimed) {
          return fail(std::move(claimed).error());
        }
        return *claimed ? ClaimOutcome::Claimed : ClaimOutcome::NotQueued;
      },
      [self = shared_from_this(), job_id, session, now](Result<ClaimOutcome> claimed) {
        auto found = self->jobs_.find(job_id);
        if (found == self->jobs_.end()) {
          return;
        }
        auto& claimed_job = found->second;
        const bool worker_gone = claimed && *claimed == ClaimOutcome::WorkerGone;
        if (claimed_job.phase != ActiveJob::Phase::Claiming) {
          // Released meanwhile (its session closed): the release requeues it. A refused claim
          // left the row queued, which that release must not take for a lost job.
          claimed_job.claim_refused = worker_gone;
          return;
        }
        if (worker_gone) {
          logger().warn("job.claim_refused", {{"job_id", job_id},
                                              {"worker_id", session->worker_id_},
                                              {"reason", "the worker's row is gone"}});
          self->free_session_slot(job_id, session);
          if (claimed_job.cancelled) {
            self->jobs_.erase(found);
          } else {
            self->enqueue(std::move(claimed_job));
          }
          self->revoke_worker(session->worker_id_,
                              "worker " + session->worker_id_ + " was deleted by the operator");
          return;
        }
        if (!claimed || *claimed != ClaimOutcome::Claimed) {
          // The row left `queued` behind our back (an operator's edit): forget it.
          logger().warn("job.claim_lost",
                        {{"job_id", job_id},
                         {"error", claimed ? std::string("not queued") : claimed.error().message}});
          self->free_session_slot(job_id, session);
          self->jobs_.erase(found);
          self->request_dispatch();
          return;
        }
        claimed_job.record.status = store::JobStatus::Claimed;
        claimed_job.record.worker_id = claimed_job.holder;
        claimed_job.record.last_worker_id = claimed_job.holder;
        claimed_job.record.claimed_at = now;
        claimed_job.record.accepted_at.reset();
        if (claimed_job.cancelled || session->ended_) {
          const std::string why = "the worker disconnected before the offer was sent";
          self->release(job_id, why, {store::AttemptOutcome::Requeued, why}, false, false);
          return;
        }
        claimed_job.phase = ActiveJob::Phase::Offered;
        if (auto socket = session->socket()) {
          socket->send_text(claimed_job.offer_frame);
        }
        ++self->metrics_.frames_out;
        ++self->metrics_.offers;
        self->metrics_.observe_offer_latency(self->steady_now() - claimed_job.enqueued_at);
        self->start_deadline(
            claimed_job, self->config_.offer_timeout,
            fmt::format("offer not answered within {} ms", self->config_.offer_timeout.count()));
        self->publish_job(claimed_job.record);
      });
}

void Studio::start_deadline(ActiveJob& job, std::chrono::milliseconds after, std::string reason) {
  auto timer = std::make_shared<boost::asio::steady_timer>(loop_, after);
  job.deadline = timer;
  job.deadline_at = steady_now() + after;
  job.deadline_reason = reason;
  timer->async_wait([weak = weak_from_this(), job_id = job.record.id, raw = timer.get(),
                     reason = std::move(reason)](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) {
      return;
    }
    auto it = self->jobs_.find(job_id);
    if (it == self->jobs_.end() || it->second.deadline.get() != raw) {
      return;
    }
    logger().warn("job.deadline",
                  {{"job_id", job_id}, {"worker_id", it->second.holder}, {"reason", reason}});
    if (it->second.phase == ActiveJob::Phase::Offered &&
        self->config_.reject_hold_off.count() > 0) {
      // An unanswered offer is no run (no attempt counted): others get the job first.
      self->scheduler_.exclude(it->second.holder, job_id,
                               self->steady_now() + self->config_.reject_hold_off);
    }
    self->release(job_id, reason, {store::AttemptOutcome::Requeued, reason}, true, false);
  });
}

void Studio::start_run_limit(ActiveJob& job) {
  const auto limit = config_.run_limit_for(job.record.kind);
  const auto now = steady_now();
  job.run_until = jobs::run_deadline(job.run_until, now, limit);
  start_deadline(job, jobs::time_left(*job.run_until, now),
                 fmt::format("no result within the run limit of {} s",
                             std::chrono::duration_cast<std::chrono::seconds>(limit).count()));
}

void Studio::detach(ActiveJob& job, const std::string& why) {
  job.phase = ActiveJob::Phase::Detached;
  job.session.reset();
  const auto grace = config_.claim_grace;
  logger().info("job.detached", {{"job_id", job.record.id},
                                 {"worker_id", job.holder},
                                 {"grace_ms", grace.count()},
                                 {"why", why}});
  start_deadline(job, grace,
                 fmt::format("{} while worker {} held the job, and it did not return within {} ms",
                             why, job.holder, grace.count()));
}

void Studio::reattach(ActiveJob& job, const std::shared_ptr<WorkerSession>& session) {
  job.phase = ActiveJob::Phase::Running;
  job.session = session;
  session->job_id_ = job.record.id;
  scheduler_.set_busy(session->worker_id_, true);
  logger().info("job.reattached", {{"job_id", job.record.id}, {"worker_id", job.holder}});
  start_run_limit(job);
}

jobs::Standing Studio::standing(const std::string& job_id, const std::string& worker_id) const {
  const auto it = jobs_.find(job_id);
  return it == jobs_.end() ? jobs::Standing::Unknown : jobs::standing(it->second.view(), worker_id);
}

jobs::ActiveCompletion Studio::judge_active(const std::string& job_id,
                                            const std::string& worker_id) const {
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return jobs::judge_active(nullptr, worker_id);
  }
  const auto view = it->second.view();
  return jobs::judge_active(&view, worker_id);
}

void Studio::settled_by_late_result(const store::JobRecord& job) {
  const std::string worker = job.worker_id.value_or("");
  logger().info("job.late_result_taken",
                {{"job_id", job.id}, {"worker_id", worker}, {"attempts", job.attempts}});
  ++metrics_.late_results_taken;
  scheduler_.record_completion(worker, job.model);
  publish_job(job);
}

void Studio::once_held(const std::string& job_id, const std::string& worker_id,
                       std::function<void(bool)> then) {
  if (const auto it = jobs_.find(job_id); it != jobs_.end()) {
    then(it->second.holder == worker_id || it->second.record.formerly_held_by(worker_id));
    return;
  }
  db_->call<std::optional<store::JobRecord>>(
      [job_id](store::StudioStore& s) { return s.find_job(job_id); },
      [worker_id, then = std::move(then)](Result<std::optional<store::JobRecord>> job) {
        then(job && *job && jobs::held_by(**job, worker_id));
      });
}

void Studio::free_session_slot(const std::string& job_id,
                               const std::shared_ptr<WorkerSession>& session) {
  if (session && session->job_id_ == job_id) {
    session->job_id_.reset();
    if (!session->ended_) {
      scheduler_.set_busy(session->worker_id_, false);
    }
  }
}

void Studio::release(const std::string& job_id, std::string error, store::AttemptEnd ended,
                     bool count_attempt, bool terminal, std::function<void()> after_commit) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.phase == ActiveJob::Phase::Queued) {
    if (after_commit) {
      after_commit();
    }
    return;
  }
  auto& job = it->second;
  if (job.deadline) {
    job.deadline->cancel();
    job.deadline.reset();
  }
  free_session_slot(job_id, job.session);
  job.session.reset();
  if (job.cancelled) {
    // Nothing to requeue: the job is over, only the holder is cleared.
    db_->call<bool>(
        [job_id](store::StudioStore& s) -> Result<bool> {
          SW_TRY(s.clear_job_holder(job_id));
          return true;
        },
        [after_commit](Result<bool>) {
          if (after_commit) {
            after_commit();
          }
        });
    jobs_.erase(it);
    request_dispatch();
    return;
  }
  // `attempts` counts runs started (accepted offers, counted at the accept): a release adds none.
  const int attempts = job.record.attempts;
  const auto outcome = jobs::judge_release(job.record, ended.outcome, count_attempt, terminal);
  const bool exhausted = outcome.fail;
  ended.outcome = outcome.attempt;
  const std::string holder = job.holder;
  job.phase = ActiveJob::Phase::Finishing;
  const auto now = unix_millis();
  db_->call<bool>(
      [job_id, holder, attempts, error, exhausted, now,
       ended = std::move(ended)](store::StudioStore& s) {
        return s.release_job(job_id, holder, attempts, error, exhausted, now, ended);
      },
      [self = shared_from_this(), job_id, attempts, error, exhausted, now,
       after_commit](Result<bool> released) {
        auto found = self->jobs_.find(job_id);
        if (found != self->jobs_.end()) {
          auto& released_job = found->second;
          if (released && !*released && released_job.claim_refused && !released_job.cancelled) {
            // Its claim was refused, so the row is still queued: back in the queue it goes.
            released_job.claim_refused = false;
            self->enqueue(std::move(released_job));
          } else if (!released || !*released) {
            logger().error("job.release_failed",
                           {{"job_id", job_id},
                            {"error", released ? std::string("row not claimed by the holder")
                                               : released.error().message}});
            self->jobs_.erase(found);
          } else {
            released_job.record.former_workers += released_job.holder + ",";
            released_job.record.attempts = attempts;
            released_job.record.error = error;
            released_job.record.worker_id.reset();
            released_job.record.claimed_at.reset();
            released_job.record.accepted_at.reset();
            logger().info(exhausted ? "job.failed" : "job.requeued",
                          {{"job_id", job_id},
                           {"worker_id", released_job.holder},
                           {"attempts", attempts},
                           {"error", error}});
            if (exhausted) {
              released_job.record.status = store::JobStatus::Failed;
              released_job.record.finished_at = now;
              self->publish_job(released_job.record);
              self->jobs_.erase(found);
            } else {
              ++self->metrics_.requeues;
              released_job.record.status = store::JobStatus::Queued;
              self->publish_job(released_job.record);
              self->enqueue(std::move(released_job));
            }
          }
        }
        if (after_commit) {
          after_commit();
        }
        self->request_dispatch();
      });
}

Studio::ActiveJob::Phase Studio::hold_for_completion(ActiveJob& job) {
  const auto previous = job.phase;
  if (previous == ActiveJob::Phase::Queued) {
    scheduler_.remove(job.record.id);
  }
  job.phase = ActiveJob::Phase::Finishing;
  if (job.deadline) {
    job.deadline->cancel();
    job.deadline.reset();
  }
  return previous;
}

void Studio::resume_after_failed_completion(ActiveJob& job, ActiveJob::Phase previous) {
  if (previous == ActiveJob::Phase::Queued) {
    enqueue(std::move(job));
    return;
  }
  job.phase = previous;
  if (!job.deadline_reason.empty()) {
    start_deadline(job, jobs::time_left(job.deadline_at, steady_now()), job.deadline_reason);
  }
}

void Studio::finish_complete(const std::string& job_id, const std::string& worker_id,
                             ActiveJob::Phase previous,
                             std::function<Result<bool>(store::StudioStore&)> write,
                             std::function<void(Result<bool>)> answer) {
  db_->call<bool>(std::move(write), [self = shared_from_this(), job_id, worker_id, previous,
                                     answer = std::move(answer)](Result<bool> stored) {
    auto it = self->jobs_.find(job_id);
    if (it != self->jobs_.end()) {
      auto& done_job = it->second;
      if (stored && *stored) {
        if (!done_job.holder.empty() && done_job.holder != worker_id) {
          // A former holder's result won: the current claim is withdrawn. Its worker's accept
          // is ignored and its own result acknowledged and dropped.
          logger().info("job.claim_withdrawn", {{"job_id", job_id},
                                                {"withdrawn_from", done_job.holder},
                                                {"completed_by", worker_id}});
          ++self->metrics_.withdrawn_claims;
        }
        self->free_session_slot(job_id, done_job.session);
        done_job.record.status = store::JobStatus::Done;
        done_job.record.attempts = std::max(done_job.record.attempts, 1);  // as stored
        done_job.record.worker_id = worker_id;
        done_job.record.last_worker_id = worker_id;
        done_job.record.finished_at = self->unix_millis();
        self->scheduler_.record_completion(worker_id, done_job.record.model);
        self->publish_job(done_job.record);
        logger().debug("job.done", {{"job_id", job_id}, {"worker_id", worker_id}});
        self->jobs_.erase(it);
        self->request_dispatch();
      } else {
        // Not stored: the job goes back to where it was, so that a retry can land.
        self->resume_after_failed_completion(done_job, previous);
      }
    }
    answer(std::move(stored));
  });
}

void Studio::shutdown(std::function<void()> done) {
  stopping_ = true;
  if (sweep_timer_) {
    sweep_timer_->cancel();
  }
  for (auto& [id, job] : jobs_) {
    if (job.deadline) {
      job.deadline->cancel();
    }
  }
  for (const auto& session : std::vector(open_sessions_.begin(), open_sessions_.end())) {
    session->ended_ = true;
    if (auto socket = session->socket()) {
      socket->close(1000, "studio shutting down");
    }
  }
  for (auto& stream : event_streams_) {
    stream->close();
  }
  event_streams_.clear();
  for (auto& [id, held] : held_polls_) {
    held->timer.cancel();  // answers "pending" now; the worker polls the next studio run
  }
  held_polls_.clear();
  // Jobs held by the closed sessions stay claimed in the database: the next start requeues them.
  db_->stop();
  blocking_->join();
  boost::asio::post(loop_, std::move(done));
}

void Studio::wake_held_polls(const std::string& request_id) {
  const auto [first, last] = held_polls_.equal_range(request_id);
  for (auto it = first; it != last; ++it) {
    it->second->decided = true;
    it->second->timer.cancel();
  }
  held_polls_.erase(first, last);
}

void Studio::halt_threads_for_test() {
  stopping_ = true;
  db_->stop();
  blocking_->join();
}

void Studio::publish_job(const store::JobRecord& job) {
  if (!event_streams_.empty()) {
    publish("job", job_event_json(job));
  }
}

void Studio::publish_worker(const std::string& worker_id, std::string_view state) {
  if (!event_streams_.empty()) {
    publish("worker", worker_event_json(worker_id, state));
  }
}

void Studio::publish(std::string_view event, const std::string& data) {
  const std::string chunk = fmt::format("event: {}\ndata: {}\n\n", event, data);
  std::erase_if(event_streams_, [](const auto& stream) { return !stream->is_open(); });
  for (auto& stream : event_streams_) {
    stream->write(chunk);
  }
}

}  // namespace sw::studio
