#include "studio/studio.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <charconv>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/admin.h"
#include "studio/cluster/cluster.h"
#include "studio/data_dir.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/router.h"
#include "studio/store/pg_studio_store.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::jobs");
  return instance;
}

// Client uploads a crash cut short (uploads/.upl-*.part). With `min_age`, only those nobody
// wrote to for that long: a directory shared with other studio processes may hold one being
// written. Blocking, before the loop runs.
void remove_partial_upload_files(const std::filesystem::path& dir, std::chrono::seconds min_age) {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.starts_with(".upl-") && name.ends_with(".part")) {
      std::error_code time_ec;
      const auto written = it->last_write_time(time_ec);
      if (min_age.count() > 0 && (time_ec || now - written < min_age)) {
        continue;
      }
      std::error_code ignored;
      std::filesystem::remove(it->path(), ignored);
    }
  }
}

// Which database this studio runs on: the first thing an operator of several processes checks.
void announce_backend(store::StudioStore& store, const StudioConfig& config) {
  if (auto* pg = dynamic_cast<store::PgStudioStore*>(&store)) {
    const auto where = pg->connection().endpoint();
    logger().info("studio.database", {{"backend", "postgresql"},
                                      {"host", where.host},
                                      {"port", where.port},
                                      {"db", where.dbname},
                                      {"user", where.user},
                                      {"results_dir", config.results_path().string()}});
    return;
  }
  logger().info("studio.database", {{"backend", "sqlite"},
                                    {"path", (config.data_dir / "studio.db").string()},
                                    {"results_dir", config.results_path().string()}});
}

}  // namespace

Studio::Studio(boost::asio::any_io_executor loop, StudioConfig config, const Clock& clock)
    : loop_(std::move(loop)),
      config_(std::move(config)),
      clock_(clock),
      blocking_(std::make_unique<boost::asio::thread_pool>(2)),
      register_limiter_(config_.register_rate_limit, config_.register_rate_window),
      event_epoch_(clock.unix_millis()) {}

Studio::~Studio() {
  if (cluster_) {
    cluster_->stop();  // its timers and listener; the row stays (a crash's path: adopted later)
  }
  if (db_) {
    db_->stop();
  }
  blocking_->join();
}

Result<std::shared_ptr<Studio>> Studio::create(boost::asio::any_io_executor loop,
                                               StudioConfig config, const Clock& clock) {
  // Private modes, and no silent fresh start over a lost database (issue 16).
  auto store = open_studio_store(config.data_dir, config.database_uri, config.results_path());
  if (!store) {
    return fail(std::move(store).error());
  }
  announce_backend(**store, config);
  // On PostgreSQL the results and uploads directories may be shared by several studio processes:
  // only files nobody has written to for an hour are a crash's leftovers.
  const auto leftover_age =
      config.database_uri ? std::chrono::seconds(3600) : std::chrono::seconds(0);
  remove_stale_upload_files(config.results_path(), leftover_age);
  // Made (0700) now, like the results directory: a wrong --uploads-dir fails the start rather
  // than every upload.
  if (auto made = make_private_dir(config.uploads_path()); !made) {
    return fail(std::move(made).error());
  }
  remove_partial_upload_files(config.uploads_path(), leftover_age);
  // On PostgreSQL this process is one of possibly several sharing the database (issue 18): it
  // registers its lease before it claims anything, and its claims carry its id.
  std::string process_id;
  if (config.database_uri) {
    process_id = cluster::new_process_id();
    (*store)->set_process_id(process_id);
    // On the database's clock, as every later renewal (cluster.h: lease).
    auto shared = (*store)->shared_clock();
    if (!shared) {
      return fail(std::move(shared).error());
    }
    SW_TRY((*store)->register_process(cluster::process_record(
        process_id, shared->value_or(clock.unix_millis()), cluster::Timing{})));
  }
  std::shared_ptr<Studio> studio(new Studio(loop, std::move(config), clock));
  studio->upload_budget_->limit =
      std::max(studio->config_.upload_in_flight_limit, studio->config_.result_body_limit);
  SW_TRY(studio->load(**store, !process_id.empty()));
  studio->db_ = std::make_unique<DbWorker>(std::move(*store), loop);
  studio->router_ = make_router(*studio);
  if (!process_id.empty()) {
    auto joined = cluster::Cluster::create(studio->weak_from_this(), *studio->config_.database_uri,
                                           process_id);
    if (!joined) {
      return fail(std::move(joined).error());
    }
    studio->cluster_ = std::move(*joined);
    studio->cluster_->start();
  }
  studio->schedule_sweep();
  studio->schedule_upload_sweep(std::chrono::milliseconds(0));  // a restart finds what ended
  return studio;
}

Status Studio::load(store::StudioStore& store, bool clustered) {
  auto workers = store.list_workers();
  if (!workers) {
    return fail(std::move(workers).error());
  }
  registry_.replace_workers(*workers);
  auto models = store.list_models();
  if (!models) {
    return fail(std::move(models).error());
  }
  registry_.replace_models(std::move(*models), [](const std::string& id, const Error& error) {
    logger().warn("model.unreadable", {{"model", id}, {"error", error.message}});
  });
  auto keys = store.list_api_keys();
  if (!keys) {
    return fail(std::move(keys).error());
  }
  registry_.replace_api_keys(*keys);
  if (config_.admin_token) {
    registry_.set_admin_token_hash(sha256_hex(*config_.admin_token));
  } else {
    auto stored = store.setting(kAdminTokenSetting);
    if (!stored) {
      return fail(std::move(stored).error());
    }
    if (*stored) {
      registry_.set_admin_token_hash(**stored);
    }
  }

  // Claimed jobs belong to sessions of a previous run: their holders get the claim grace to come
  // back (their heartbeat re-attaches the job, their result is accepted) before a requeue.
  // With several processes a claim belongs to the process that holds it: those of live processes
  // are theirs, and those of dead ones (this process's former run among them) come through the
  // cluster's adoption once their lease has ended, with the same grace.
  auto active = store.active_jobs();
  if (!active) {
    return fail(std::move(active).error());
  }
  std::size_t left_to_adoption = 0;
  for (auto& record : *active) {
    const bool claimed = record.status == store::JobStatus::Claimed;
    if (claimed && clustered) {
      ++left_to_adoption;
      continue;
    }
    auto job = make_active_job(std::move(record));
    if (!job) {
      logger().error("job.unreadable", {{"error", job.error().message}});
      continue;
    }
    if (!claimed) {
      enqueue(std::move(*job));
      continue;
    }
    execute(book_.restore_claimed(std::move(*job), steady_now(), config_.claim_grace));
  }
  logger().info("studio.loaded", {{"workers", registry_.worker_count()},
                                  {"models", registry_.model_count()},
                                  {"queued_jobs", scheduler_.queued()},
                                  {"claims_of_other_processes", left_to_adoption}});
  return {};
}

Result<std::optional<std::string>> Studio::mint_admin_token_if_missing() {
  if (registry_.has_admin_token()) {
    return std::optional<std::string>();
  }
  // Its own connection (the studio's writer is idle before the loop runs).
  Result<std::unique_ptr<store::StudioStore>> store =
      config_.database_uri ? Result<std::unique_ptr<store::StudioStore>>(
                                 store::PgStudioStore::open(*config_.database_uri))
                           : Result<std::unique_ptr<store::StudioStore>>(
                                 store::SqliteStudioStore::open(config_.data_dir / "studio.db"));
  if (!store) {
    return fail(std::move(store).error());
  }
  auto token = store_first_admin_token(**store);
  if (!token) {
    return fail(std::move(token).error());
  }
  if (!*token) {
    // Another studio process on this database minted it since load(): use theirs, print none.
    auto stored = (*store)->setting(kAdminTokenSetting);
    if (!stored) {
      return fail(std::move(stored).error());
    }
    if (*stored) {
      registry_.set_admin_token_hash(**stored);
    }
    return std::optional<std::string>();
  }
  registry_.set_admin_token_hash(sha256_hex(**token));
  return token;
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
  return make_active_job(std::move(record), std::move(*task), std::move(*source));
}

Studio::ActiveJob Studio::make_active_job(store::JobRecord record, proto::Task task,
                                          proto::ModelSource source) {
  ActiveJob job;
  job.needs_uploads = !uploads::upload_refs(task).empty();
  proto::JobOfferClaim claim;
  claim.job_id = record.id;
  claim.game_id = record.game_id;
  claim.asset_name = record.asset_name;
  claim.model = record.model;
  claim.vram_gb_estimate = record.vram_gb_estimate;
  claim.task = std::move(task);
  claim.model_source = std::move(source);
  job.engine = claim.model_source.engine;
  job.offer_frame = proto::encode(proto::StudioFrame{proto::Offer{std::move(claim)}});
  job.record = std::move(record);
  return job;
}

void Studio::dispatch_at(SteadyTime at) {
  if (stopping_) {
    return;
  }
  // One timer per wake, so that an earlier wake never replaces a later one (each lives at most
  // one run limit; shutdown cancels those left).
  auto timer = std::make_shared<boost::asio::steady_timer>(
      loop_, std::max(at - steady_now(), SteadyTime::duration::zero()));
  dispatch_timers_.insert(timer);
  timer->async_wait([weak = weak_from_this(), timer](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    self->dispatch_timers_.erase(timer);
    if (!ec) {
      self->request_dispatch();
    }
  });
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
      if (auto job = book_.erase(assignment.job_id)) {
        enqueue(std::move(*job));
      }
      continue;
    }
    claim(assignment.job_id, session->second);
  }
}

void Studio::claim(const std::string& job_id, const std::shared_ptr<WorkerSession>& session) {
  book_.begin_claim(job_id, session->worker_id_, session->order_);
  session->jobs_.insert(job_id);
  count_session_jobs(session);
  const auto now = unix_millis();
  db_->call<ClaimOutcome>(
      [job_id, worker = session->worker_id_, now](store::StudioStore& s) -> Result<ClaimOutcome> {
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
        const auto* claimed_job = self->book_.find(job_id);
        if (!claimed_job) {
          return;
        }
        const bool worker_gone = claimed && *claimed == ClaimOutcome::WorkerGone;
        if (claimed_job->phase != jobs::Phase::Claiming) {
          // Released meanwhile (its session closed): the release requeues it. A refused claim,
          // like one the database did not store, left the row queued, which that release must
          // not take for a lost job.
          if (worker_gone || !claimed) {
            self->book_.claim_refused_late(job_id);
          }
          return;
        }
        if (!claimed) {
          // Not stored (the database is unreachable or restarting: the DbWorker reconnects with
          // backoff): the row is still queued, so the job goes back to the queue and is offered
          // again once the database answers. Dropping it here would strand it until a restart.
          logger().warn("job.claim_failed", {{"job_id", job_id},
                                             {"worker_id", session->worker_id_},
                                             {"error", claimed.error().message}});
          self->free_session_slot(job_id, session);
          self->execute(self->book_.requeue_unclaimed(job_id, self->steady_now()));
          return;
        }
        if (worker_gone) {
          logger().warn("job.claim_refused", {{"job_id", job_id},
                                              {"worker_id", session->worker_id_},
                                              {"reason", "the worker's row is gone"}});
          self->free_session_slot(job_id, session);
          self->execute(self->book_.requeue_unclaimed(job_id, self->steady_now()));
          self->revoke_worker(session->worker_id_,
                              "worker " + session->worker_id_ + " was deleted by the operator");
          return;
        }
        if (!claimed || *claimed != ClaimOutcome::Claimed) {
          // The row left `queued` behind our back: another studio process claimed it first
          // (normal with several), or an operator's edit. Forget it.
          logger().log(self->cluster_ && claimed ? log::Level::Debug : log::Level::Warn,
                       "job.claim_lost",
                       {{"job_id", job_id},
                        {"error", claimed ? std::string("not queued") : claimed.error().message}});
          self->free_session_slot(job_id, session);
          self->book_.erase(job_id);
          self->request_dispatch();
          return;
        }
        self->book_.claim_stored(job_id, now);
        if (claimed_job->cancelled || session->ended_) {
          const std::string why = "the worker disconnected before the offer was sent";
          self->release(job_id, why, {store::AttemptOutcome::Requeued, why}, false, false);
          return;
        }
        self->execute(self->book_.offer(job_id, self->steady_now(), self->config_.offer_timeout));
      });
}

void Studio::execute(jobs::Effects effects) {
  for (auto& effect : effects) {
    std::visit(
        [this](auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, jobs::effect::Enqueue>) {
            if (const auto* job = book_.find(e.job_id)) {
              scheduler_.enqueue(job->queued());
              request_dispatch();
            }
          } else if constexpr (std::is_same_v<E, jobs::effect::SendOffer>) {
            const auto* job = book_.find(e.job_id);
            const auto session = job ? session_of(*job) : nullptr;
            if (!session) {
              return;  // its session is gone: the close released or detached the job
            }
            if (auto socket = session->socket()) {
              socket->send_text(job->offer_frame);
            }
            ++metrics_.frames_out;
            ++metrics_.offers;
            metrics_.observe_offer_latency(steady_now() - job->enqueued_at);
          } else if constexpr (std::is_same_v<E, jobs::effect::ArmDeadline>) {
            auto& timer = deadlines_[e.job_id];
            if (timer) {
              timer->cancel();
            }
            const auto after = std::max(e.at - steady_now(), SteadyTime::duration::zero());
            timer = std::make_shared<boost::asio::steady_timer>(loop_, after);
            timer->async_wait([weak = weak_from_this(), job_id = e.job_id, raw = timer.get(),
                               generation = e.generation](const boost::system::error_code& ec) {
              auto self = weak.lock();
              if (ec || !self) {
                return;
              }
              if (auto it = self->deadlines_.find(job_id);
                  it != self->deadlines_.end() && it->second.get() == raw) {
                self->deadlines_.erase(it);
              }
              if (const auto* due = self->book_.deadline_due(job_id, generation)) {
                self->on_deadline(job_id, *due);
              }
            });
          } else if constexpr (std::is_same_v<E, jobs::effect::CancelDeadline>) {
            if (auto it = deadlines_.find(e.job_id); it != deadlines_.end()) {
              it->second->cancel();
              deadlines_.erase(it);
            }
          } else if constexpr (std::is_same_v<E, jobs::effect::Publish>) {
            publish_job(e.record);
          }
        },
        effect);
  }
}

void Studio::on_deadline(const std::string& job_id, const jobs::Deadline& deadline) {
  const auto* job = book_.find(job_id);
  const std::string reason = deadline.reason;  // the release below changes the job
  logger().warn("job.deadline",
                {{"job_id", job_id}, {"worker_id", job->holder}, {"reason", reason}});
  if (job->phase == jobs::Phase::Offered && config_.reject_hold_off.count() > 0) {
    // An unanswered offer is no run (no attempt counted): others get the job first.
    scheduler_.exclude(job->holder, job_id, steady_now() + config_.reject_hold_off);
  } else if (job->phase == jobs::Phase::Running && session_of(*job)) {
    // The run limit says when to try elsewhere (issue 18): the holder, still connected, is most
    // likely still running the job, and its result is taken whenever it comes. Offering the job
    // straight back to it would start a second run racing the first; others get it first, for
    // as long as a run may take (then, with no one else, it may go back to the same worker).
    const auto until = steady_now() + config_.run_limit_for(job->record.kind);
    scheduler_.exclude(job->holder, job_id, until);
    dispatch_at(until);
    runs_past_limit_[job_id].push_back(session_of(*job));
  }
  release(job_id, reason, {store::AttemptOutcome::Requeued, reason}, true, false);
}

std::shared_ptr<WorkerSession> Studio::session_of(const ActiveJob& job) const {
  if (job.session == 0) {
    return nullptr;
  }
  const auto it = sessions_.find(job.holder);
  if (it == sessions_.end() || it->second->order_ != job.session || it->second->ended_) {
    return nullptr;
  }
  return it->second;
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
  if (const auto held = book_.held_by(job_id, worker_id)) {
    then(*held);
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
  if (session && session->jobs_.erase(job_id) > 0 && !session->ended_) {
    // A job that ran left it: the ones it had no room for may fit now. An offer that ends
    // unanswered or refused freed nothing (and must not start a refuse/re-offer round).
    const auto* job = book_.find(job_id);
    if (!job || (job->phase != jobs::Phase::Offered && job->phase != jobs::Phase::Claiming)) {
      scheduler_.room_freed(session->worker_id_, job_id);
    }
    count_session_jobs(session);
  }
}

void Studio::count_session_jobs(const std::shared_ptr<WorkerSession>& session) {
  if (!session->ended_) {
    scheduler_.set_held(session->worker_id_, session->jobs_.size());
  }
}

void Studio::release(const std::string& job_id, std::string error, store::AttemptEnd ended,
                     bool count_attempt, bool terminal, std::function<void()> after_commit) {
  const auto* found = book_.find(job_id);
  if (!found || found->phase == jobs::Phase::Queued) {
    if (after_commit) {
      after_commit();
    }
    return;
  }
  const auto& job = *found;
  free_session_slot(job_id, session_of(job));
  execute(book_.let_go(job_id));
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
    book_.erase(job_id);
    request_dispatch();
    return;
  }
  // `attempts` counts runs started (accepted offers, counted at the accept): a release adds none.
  const int attempts = job.record.attempts;
  const auto outcome = jobs::judge_release(job.record, ended.outcome, count_attempt, terminal);
  const bool exhausted = outcome.fail;
  ended.outcome = outcome.attempt;
  if (ended.outcome != store::AttemptOutcome::Done) {
    ++metrics_.attempts_ended[std::string(store::to_string(ended.outcome))];
  }
  const std::string holder = job.holder;
  const auto now = unix_millis();
  write_release(job_id, holder, attempts, error, exhausted, now, std::move(ended),
                std::move(after_commit));
}

void Studio::retry_release(const std::string& job_id, int attempts, const std::string& error,
                           bool exhausted, std::int64_t now, store::AttemptEnd ended,
                           std::function<void()> after_commit) {
  // The DbWorker already waits out its reconnection backoff; this pause only keeps an error that
  // is not a lost connection from spinning.
  auto timer = std::make_shared<boost::asio::steady_timer>(loop_, std::chrono::milliseconds(200));
  timer->async_wait([weak = weak_from_this(), timer, job_id, attempts, error, exhausted, now,
                     ended = std::move(ended),
                     after_commit = std::move(after_commit)](const boost::system::error_code&) {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    const auto* job = self->book_.find(job_id);
    if (self->stopping_ || !job || job->phase != jobs::Phase::Finishing) {
      // Shutting down: the row stays claimed and the next start restores the claim.
      if (after_commit) {
        after_commit();
      }
      return;
    }
    self->write_release(job_id, job->holder, attempts, error, exhausted, now, ended, after_commit);
  });
}

void Studio::write_release(const std::string& job_id, const std::string& holder, int attempts,
                           const std::string& error, bool exhausted, std::int64_t now,
                           store::AttemptEnd ended, std::function<void()> after_commit) {
  db_->call<bool>(
      [job_id, holder, attempts, error, exhausted, now, ended](store::StudioStore& s) {
        return s.release_job(job_id, holder, attempts, error, exhausted, now, ended);
      },
      [self = shared_from_this(), job_id, attempts, error, exhausted, now, ended,
       after_commit](Result<bool> released) mutable {
        if (const auto* settling = self->book_.find(job_id)) {
          const auto& released_job = *settling;
          if (released && !*released && released_job.claim_refused && !released_job.cancelled) {
            // Its claim was refused, so the row is still queued: back in the queue it goes.
            self->execute(self->book_.requeue_unclaimed(job_id, self->steady_now()));
          } else if (!released && !self->stopping_) {
            // Not stored (the database is unreachable or restarting): the row still names the
            // holder, so the job stays in the book (Finishing) and the write is tried again.
            logger().warn("job.release_retry",
                          {{"job_id", job_id}, {"error", released.error().message}});
            self->retry_release(job_id, attempts, error, exhausted, now, std::move(ended),
                                std::move(after_commit));
            return;
          } else if (!released || !*released) {
            // With several processes the row moving first is a normal race (another process
            // completed or took over the job); alone, it means an edit behind the studio's back.
            logger().log(released && self->cluster_ ? log::Level::Info : log::Level::Error,
                         "job.release_failed",
                         {{"job_id", job_id},
                          {"error", released ? std::string("row not claimed by the holder")
                                             : released.error().message}});
            self->book_.erase(job_id);
          } else {
            logger().info(exhausted ? "job.failed" : "job.requeued",
                          {{"job_id", job_id},
                           {"worker_id", released_job.holder},
                           {"attempts", attempts},
                           {"error", error}});
            if (!exhausted) {
              ++self->metrics_.requeues;
            }
            self->execute(self->book_.release_stored(job_id, attempts, error, exhausted, now,
                                                     self->steady_now()));
          }
        }
        if (after_commit) {
          after_commit();
        }
        self->request_dispatch();
      });
}

jobs::Phase Studio::hold_for_completion(const std::string& job_id) {
  auto held = book_.hold(job_id);
  if (held.previous == jobs::Phase::Queued) {
    scheduler_.remove(job_id);
  }
  execute(std::move(held.effects));
  return held.previous;
}

void Studio::resume_after_failed_completion(const std::string& job_id, jobs::Phase previous) {
  execute(book_.resume(job_id, previous, steady_now()));
}

void Studio::finish_complete(const std::string& job_id, const std::string& worker_id,
                             jobs::Phase previous,
                             std::function<Result<bool>(store::StudioStore&)> write,
                             std::function<void(Result<bool>)> answer) {
  db_->call<bool>(std::move(write), [self = shared_from_this(), job_id, worker_id, previous,
                                     answer = std::move(answer)](Result<bool> stored) {
    if (const auto* found = self->book_.find(job_id)) {
      const auto& done_job = *found;
      if (stored && *stored) {
        if (!done_job.holder.empty() && done_job.holder != worker_id) {
          // A former holder's result won: the current claim is withdrawn. Its worker's accept
          // is ignored and its own result acknowledged and dropped.
          logger().info("job.claim_withdrawn", {{"job_id", job_id},
                                                {"withdrawn_from", done_job.holder},
                                                {"completed_by", worker_id}});
          ++self->metrics_.withdrawn_claims;
          self->stop_work(self->session_of(done_job), job_id,
                          "worker " + worker_id + " delivered the job's result first");
        }
        self->free_session_slot(job_id, self->session_of(done_job));
        self->scheduler_.record_completion(worker_id, done_job.record.model);
        logger().debug("job.done", {{"job_id", job_id}, {"worker_id", worker_id}});
        self->execute(self->book_.completion_stored(job_id, worker_id, self->unix_millis()));
        self->request_dispatch();
      } else {
        // Not stored: the job goes back to where it was, so that a retry can land.
        self->resume_after_failed_completion(job_id, previous);
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
  if (upload_sweep_timer_) {
    upload_sweep_timer_->cancel();
  }
  for (const auto& timer : std::vector(dispatch_timers_.begin(), dispatch_timers_.end())) {
    timer->cancel();
  }
  for (auto& [id, timer] : deadlines_) {
    timer->cancel();
  }
  deadlines_.clear();
  for (const auto& session : std::vector(open_sessions_.begin(), open_sessions_.end())) {
    session->ended_ = true;
    if (auto socket = session->socket()) {
      socket->close(1000, "studio shutting down");
    }
  }
  for (auto& subscriber : event_streams_) {
    subscriber.stream->close();
  }
  event_streams_.clear();
  for (auto& [id, held] : held_polls_) {
    held->timer.cancel();  // answers "pending" now; the worker polls the next studio run
  }
  held_polls_.clear();
  // Jobs held by the closed sessions stay claimed in the database: the next start requeues them
  // (with other studio processes: one of them adopts them once our row is gone).
  if (cluster_) {
    cluster_->stop();
  }
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
  if (cluster_) {
    cluster_->stop();
  }
  db_->stop();
  blocking_->join();
}

void Studio::add_event_stream(std::shared_ptr<net::EventStream> stream,
                              std::optional<std::string> last_event_id, std::string bearer_hash) {
  stream->write(": connected\n\n");
  if (last_event_id) {
    // "<epoch>.<n>": replay what came after n when this process wrote it and still has it.
    const std::string prefix = fmt::format("{}.", event_epoch_);
    std::uint64_t n = 0;
    const char* begin = last_event_id->data() + prefix.size();
    const char* end = last_event_id->data() + last_event_id->size();
    const bool ours = last_event_id->starts_with(prefix) &&
                      std::from_chars(begin, end, n).ptr == end && n <= last_event_n_;
    const bool kept = ours && (n == last_event_n_ ||
                               (!recent_events_.empty() && recent_events_.front().first <= n + 1));
    if (kept) {
      for (const auto& [event_n, chunk] : recent_events_) {
        if (event_n > n) {
          stream->write(chunk);
        }
      }
    } else {
      nlohmann::json data = {{"lastEventId", *last_event_id}};
      stream->write(
          fmt::format("event: gap\ndata: {}\n\n",
                      data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
    }
  }
  event_streams_.push_back({std::move(stream), std::move(bearer_hash)});
}

std::shared_ptr<Studio::HeldPoll> Studio::hold_poll(const std::string& request_id) {
  auto held = std::make_shared<HeldPoll>(loop_);
  held_polls_.emplace(request_id, held);
  return held;
}

void Studio::end_held_poll(const std::string& request_id, const std::shared_ptr<HeldPoll>& held) {
  auto [first, last] = held_polls_.equal_range(request_id);
  for (auto it = first; it != last; ++it) {
    if (it->second == held) {
      held_polls_.erase(it);
      return;
    }
  }
}

std::string Studio::render_metrics(
    const std::map<std::string, std::int64_t>& counts_by_status) const {
  return metrics_.render(scheduler_.queued_per_kind(), counts_by_status, sessions_.size(),
                         scheduler_.waiting_counts(steady_now()));
}

nlohmann::json Studio::metrics_snapshot(
    const std::map<std::string, std::int64_t>& counts_by_status) const {
  auto out = metrics_.snapshot(scheduler_.queued_per_kind(), counts_by_status, sessions_.size(),
                               scheduler_.waiting_counts(steady_now()));
  out["at"] = iso_time(unix_millis());
  return out;
}

std::optional<Studio::ConnectedWorker> Studio::connected_worker(
    const std::string& worker_id) const {
  const auto it = sessions_.find(worker_id);
  if (it == sessions_.end()) {
    return std::nullopt;
  }
  const auto& session = *it->second;
  ConnectedWorker out;
  out.capabilities_json = proto::encode(session.capabilities_);
  out.connected_at = session.welcomed_at_;
  if (session.last_heartbeat_at_ != 0) out.last_heartbeat_at = session.last_heartbeat_at_;
  // Oldest first, as the worker names them; then any offered since its last heartbeat.
  for (const auto& id : session.reported_jobs_) {
    if (session.jobs_.contains(id)) out.job_ids.push_back(id);
  }
  for (const auto& id : session.jobs_) {
    if (std::find(out.job_ids.begin(), out.job_ids.end(), id) == out.job_ids.end()) {
      out.job_ids.push_back(id);
    }
  }
  if (!out.job_ids.empty()) out.job_id = out.job_ids.front();
  return out;
}

std::optional<std::string> Studio::waiting_reason(const std::string& job_id) const {
  auto reason = scheduler_.waiting(job_id, steady_now());
  return reason ? std::optional<std::string>(std::move(reason->text)) : std::nullopt;
}

void Studio::job_created(const store::JobRecord& record) {
  logger().debug("job.created", {{"job_id", record.id}, {"model", record.model}});
  ++metrics_.jobs_created[std::string(proto::to_string(record.kind))];
  publish_job(record);
  if (auto active = make_active_job(record)) {
    enqueue(std::move(*active));
  }
}

void Studio::job_created(const store::JobRecord& record, proto::Task task,
                         proto::ModelSource source) {
  logger().debug("job.created", {{"job_id", record.id}, {"model", record.model}});
  ++metrics_.jobs_created[std::string(proto::to_string(record.kind))];
  publish_job(record);
  enqueue(make_active_job(record, std::move(task), std::move(source)));
}

void Studio::cancel_job(const std::string& id,
                        std::function<void(Result<std::optional<tx::JobView>>)> done) {
  const auto verdict = book_.judge_cancel(id);
  const bool active_here = verdict != jobs::Cancel::AskStore;
  // The holder connected here that can stop the work (feature "cancel"), told once the cancel
  // is committed.
  std::weak_ptr<WorkerSession> stoppable;
  if (const auto* job = book_.find(id); job != nullptr && verdict != jobs::Cancel::Unqueue) {
    stoppable = session_of(*job);
  }
  if (active_here) {
    book_.mark_cancelled(id);
    if (verdict == jobs::Cancel::Unqueue) {
      scheduler_.remove(id);
    }
  }
  db_->call<tx::CancelOutcome>(
      [id, now = unix_millis()](store::StudioStore& s) { return tx::cancel_job(s, id, now); },
      [self = shared_from_this(), id, active_here, stoppable,
       done = std::move(done)](Result<tx::CancelOutcome> stored) {
        if (active_here) {
          if (stored) {
            self->book_.cancel_stored(id);
          } else {
            self->execute(self->book_.cancel_failed(id));
          }
        }
        if (!stored) {
          done(fail(std::move(stored).error()));
          return;
        }
        // The process whose statement cancelled the job tells every event stream, its own and,
        // relayed, the other processes' (which learn the cancel from the row and say nothing,
        // so that each stream reads one `cancelled`).
        if (stored->changed && stored->job) {
          logger().info("job.cancelled", {{"job_id", id}});
          self->publish_job(stored->job->record);
          self->stop_work(stoppable.lock(), id, "cancelled by a client");
        }
        done(std::move(stored->job));
      });
}

void Studio::stop_work(const std::shared_ptr<WorkerSession>& holder, const std::string& job_id,
                       std::string_view why) {
  if (!holder || !holder->cancel_ || holder->ended_) {
    return;  // a worker without "cancel" runs on; its result is acknowledged and dropped
  }
  logger().info("job.cancel_sent",
                {{"job_id", job_id}, {"worker_id", holder->worker_id_}, {"why", std::string(why)}});
  send(holder, proto::CancelJob{job_id, std::string(why)});
}

void Studio::end_runs_past_limit(const store::JobRecord& job) {
  const auto it = runs_past_limit_.find(job.id);
  if (it == runs_past_limit_.end()) {
    return;
  }
  const auto sessions = std::move(it->second);
  runs_past_limit_.erase(it);
  if (job.status != store::JobStatus::Done && job.status != store::JobStatus::Cancelled) {
    return;
  }
  const std::string why =
      job.status == store::JobStatus::Cancelled
          ? "cancelled by a client"
          : "worker " + job.worker_id.value_or("") + " delivered the job's result first";
  for (const auto& weak : sessions) {
    if (const auto session = weak.lock();
        session && session->worker_id_ != job.worker_id.value_or("")) {
      stop_work(session, job.id, why);
    }
  }
}

void Studio::publish_job(const store::JobRecord& job) {
  job_ended_for_uploads(job);
  if (job.status == store::JobStatus::Done || job.status == store::JobStatus::Failed ||
      job.status == store::JobStatus::Cancelled) {
    end_runs_past_limit(job);
    ++metrics_.jobs_ended[{std::string(proto::to_string(job.kind)),
                           std::string(store::to_string(job.status))}];
  }
  // Always, streams or not: a client that reconnects with Last-Event-ID gets what it missed.
  publish("job", job_event_json(job));
  if (const auto watchers = job_watchers_.find(job.id); watchers != job_watchers_.end()) {
    const auto current = watchers->second;  // a watcher may unwatch while it runs
    for (const auto& [id, watch] : current) {
      if (watch.on_change) {
        watch.on_change(&job);
      }
    }
  }
}

std::uint64_t Studio::watch_job(const std::string& job_id, JobWatch watch) {
  const auto id = ++next_watch_id_;
  job_watchers_[job_id].emplace(id, std::move(watch));
  return id;
}

void Studio::unwatch_job(const std::string& job_id, std::uint64_t watch_id) {
  const auto it = job_watchers_.find(job_id);
  if (it == job_watchers_.end()) {
    return;
  }
  it->second.erase(watch_id);
  if (it->second.empty()) {
    job_watchers_.erase(it);
  }
}

void Studio::relayed_job_event(std::string_view chunk) {
  // "event: job\ndata: {\"id\":\"job-…\",…}\n\n" (publish): only the id is wanted, and only
  // when someone here watches it.
  constexpr std::string_view kHead = "event: job\ndata: ";
  if (job_watchers_.empty() || !chunk.starts_with(kHead)) {
    return;
  }
  const auto data = parse_json(chunk.substr(kHead.size()), "relayed job event",
                               JsonLimits{.max_bytes = 64u << 10, .max_depth = 4});
  if (!data || !data->is_object() || !data->contains("id") || !(*data)["id"].is_string()) {
    return;
  }
  const auto watchers = job_watchers_.find((*data)["id"].get<std::string>());
  if (watchers == job_watchers_.end()) {
    return;
  }
  const auto current = watchers->second;
  for (const auto& [id, watch] : current) {
    if (watch.on_change) {
      watch.on_change(nullptr);
    }
  }
}

void Studio::publish_worker(const std::string& worker_id, std::string_view state) {
  publish("worker", worker_event_json(worker_id, state));
}

void Studio::publish(std::string_view event, const std::string& data) {
  const std::string chunk = fmt::format("event: {}\ndata: {}\n\n", event, data);
  if (cluster_) {
    cluster_->relay_event(chunk);
  }
  write_event_streams(chunk);
}

void Studio::write_event_streams(const std::string& chunk) {
  const auto n = ++last_event_n_;
  std::string with_id = fmt::format("id: {}.{}\n", event_epoch_, n) + chunk;
  std::erase_if(event_streams_, [this](const EventSubscriber& subscriber) {
    if (!subscriber.bearer_hash.empty() &&
        registry_.bearer_of_hash(subscriber.bearer_hash) < Registry::Bearer::Client) {
      subscriber.stream->close();  // revoked or narrowed since it subscribed
    }
    return !subscriber.stream->is_open();
  });
  for (auto& subscriber : event_streams_) {
    subscriber.stream->write(with_id);
  }
  recent_events_.emplace_back(n, std::move(with_id));
  if (recent_events_.size() > kRecentEvents) {
    recent_events_.pop_front();
  }
}

}  // namespace sw::studio
