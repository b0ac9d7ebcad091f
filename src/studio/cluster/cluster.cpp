#include "studio/cluster/cluster.h"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "common/log.h"
#include "common/secrets.h"
#include "proto/codec.h"
#include "sql/pg/connection.h"
#include "sql/pg/listener.h"
#include "studio/admin.h"
#include "studio/db_worker.h"
#include "studio/store/pg_studio_store.h"
#include "studio/studio.h"

namespace sw::studio::cluster {
namespace {

namespace asio = boost::asio;

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::cluster");
  return instance;
}

// PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; room is kept for the process id.
constexpr std::size_t kEventPayloadLimit = 7'800;
constexpr int kPollPage = 1'000;

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) {
    return "unknown";
  }
  return name;
}

// `keep` holds the cluster while the loop waits.
asio::awaitable<void> listen_loop(
    [[maybe_unused]] std::shared_ptr<Cluster> keep, sql::pg::Listener* listener,
    std::function<void(Result<std::vector<sql::pg::Notification>>)> deliver) {
  while (true) {
    auto notes = co_await listener->wait();
    const bool ok = notes.has_value();
    deliver(std::move(notes));
    if (!ok) {
      co_return;
    }
  }
}

}  // namespace

std::string new_process_id() {
  return "sp-" + random_uuid();
}

store::ProcessRecord process_record(const std::string& id, std::int64_t now, const Timing& timing) {
  return store::ProcessRecord{id, host_name(), static_cast<std::int64_t>(::getpid()), now,
                              now + timing.lease.count()};
}

Cluster::Cluster(std::weak_ptr<Studio> studio, std::shared_ptr<sql::pg::Connection> conn,
                 std::string uri, std::string process_id, Timing timing)
    : studio_(std::move(studio)),
      conn_(std::move(conn)),
      uri_(std::move(uri)),
      process_id_(std::move(process_id)),
      timing_(timing),
      lease_timer_(studio_.lock()->loop_),
      poll_timer_(studio_.lock()->loop_),
      reload_timer_(studio_.lock()->loop_),
      retry_timer_(studio_.lock()->loop_) {}

Cluster::~Cluster() = default;

Result<std::shared_ptr<Cluster>> Cluster::create(std::weak_ptr<Studio> studio, std::string uri,
                                                 std::string process_id, Timing timing) {
  auto conn = sql::pg::Connection::open(uri);
  if (!conn) {
    return fail(std::move(conn).error());
  }
  for (auto channel : {store::kJobsChannel, store::kCacheChannel, store::kRequestsChannel,
                       store::kEventsChannel}) {
    SW_TRY(conn->listen(channel));
  }
  auto shared = std::make_shared<sql::pg::Connection>(std::move(*conn));
  return std::shared_ptr<Cluster>(new Cluster(std::move(studio), std::move(shared), std::move(uri),
                                              std::move(process_id), timing));
}

void Cluster::start() {
  logger().info("cluster.joined", {{"process_id", process_id_}});
  listen();
  every(lease_timer_, timing_.renew_every, &Cluster::renew_and_adopt);
  every(poll_timer_, timing_.poll_every, &Cluster::poll_queue);
  every(reload_timer_, timing_.reload_every, &Cluster::reload_caches);
  renew_and_adopt();
  poll_queue();
}

void Cluster::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  lease_timer_.cancel();
  poll_timer_.cancel();
  reload_timer_.cancel();
  retry_timer_.cancel();
  if (listener_) {
    listener_->cancel();
  }
  auto studio = studio_.lock();
  if (!studio || !studio->db_) {
    return;
  }
  flush_events();
  studio->db_->call<bool>(
      [id = process_id_](store::StudioStore& s) -> Result<bool> {
        SW_TRY(s.remove_process(id));
        return true;
      },
      [id = process_id_](Result<bool> removed) {
        if (!removed) {
          logger().warn("cluster.leave_failed",
                        {{"process_id", id}, {"error", removed.error().message}});
          return;
        }
        // Its claims are orphans now: the next sweep of a survivor adopts them.
        logger().info("cluster.left", {{"process_id", id}});
      });
}

void Cluster::every(asio::steady_timer& timer, std::chrono::milliseconds period,
                    void (Cluster::*tick)()) {
  if (stopped_) {
    return;
  }
  timer.expires_after(period);
  timer.async_wait(
      [weak = weak_from_this(), &timer, period, tick](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->stopped_) {
          return;
        }
        (self.get()->*tick)();
        self->every(timer, period, tick);
      });
}

// ---- the listener ----

void Cluster::listen() {
  auto studio = studio_.lock();
  if (stopped_ || !studio) {
    return;
  }
  auto listener = sql::pg::Listener::create(studio->loop_, *conn_);
  if (!listener) {
    logger().warn("cluster.listen_failed", {{"error", listener.error().message}});
    reconnect_listener();
    return;
  }
  listener_ = std::move(*listener);
  listening_ = true;
  asio::co_spawn(
      studio->loop_,
      listen_loop(shared_from_this(), listener_.get(),
                  [weak = weak_from_this()](Result<std::vector<sql::pg::Notification>> notes) {
                    auto self = weak.lock();
                    if (!self) {
                      return;
                    }
                    if (notes) {
                      self->on_notifications(std::move(*notes));
                      return;
                    }
                    self->listening_ = false;
                    if (self->stopped_ || notes.error().code == Code::Cancelled) {
                      return;
                    }
                    logger().warn("cluster.listener_lost", {{"error", notes.error().message}});
                    self->reconnect_listener();
                  }),
      asio::detached);
}

void Cluster::reconnect_listener() {
  if (stopped_) {
    return;
  }
  retry_timer_.expires_after(std::chrono::seconds(1));
  retry_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    auto studio = self ? self->studio_.lock() : nullptr;
    if (ec || !self || self->stopped_ || !studio || !studio->db_) {
      return;
    }
    self->listener_.reset();
    // On the database thread: reconnecting blocks, and that thread waits for the server anyway.
    studio->db_->call<bool>(
        [conn = self->conn_](store::StudioStore&) -> Result<bool> {
          SW_TRY(conn->reconnect());
          for (auto channel : {store::kJobsChannel, store::kCacheChannel, store::kRequestsChannel,
                               store::kEventsChannel}) {
            SW_TRY(conn->listen(channel));
          }
          return true;
        },
        [weak](Result<bool> reconnected) {
          auto again = weak.lock();
          if (!again || again->stopped_) {
            return;
          }
          if (!reconnected) {
            logger().debug("cluster.listener_reconnect_failed",
                           {{"error", reconnected.error().message}});
            again->reconnect_listener();
            return;
          }
          logger().info("cluster.listener_reconnected");
          again->listen();
          // Notifications sent meanwhile are lost: read everything again.
          again->cursor_ = 0;
          again->poll_queue();
          again->reload_caches();
          again->verify_held();
        });
  });
}

void Cluster::on_notifications(std::vector<sql::pg::Notification> notes) {
  auto studio = studio_.lock();
  if (!studio || stopped_) {
    return;
  }
  bool reload = false;
  for (auto& note : notes) {
    if (note.channel == store::kJobsChannel) {
      const auto tab = note.payload.find('\t');
      const std::string id = note.payload.substr(0, tab);
      if (tab != std::string::npos &&
          note.payload.compare(tab + 1, std::string::npos, process_id_) == 0) {
        continue;  // our own change: the book already knows
      }
      jobs_to_read_.insert(id);
    } else if (note.channel == store::kCacheChannel) {
      reload = true;
    } else if (note.channel == store::kRequestsChannel) {
      studio->wake_held_polls(note.payload);
    } else if (note.channel == store::kEventsChannel) {
      const auto newline = note.payload.find('\n');
      if (newline == std::string::npos || note.payload.compare(0, newline, process_id_) == 0) {
        continue;
      }
      const auto chunk = note.payload.substr(newline + 1);
      studio->write_event_streams(chunk);
      studio->relayed_job_event(chunk);
    }
  }
  if (reload) {
    reload_caches();
  }
  if (!jobs_to_read_.empty() && !read_scheduled_) {
    read_scheduled_ = true;
    asio::post(studio->loop_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->read_scheduled_ = false;
        self->read_jobs();
      }
    });
  }
}

// ---- jobs ----

void Cluster::read_jobs() {
  auto studio = studio_.lock();
  if (!studio || stopped_ || jobs_to_read_.empty()) {
    return;
  }
  std::vector<std::string> ids(jobs_to_read_.begin(), jobs_to_read_.end());
  jobs_to_read_.clear();
  using Rows = std::vector<std::pair<std::string, std::optional<store::JobRecord>>>;
  studio->db_->call<Rows>(
      [ids = std::move(ids)](store::StudioStore& s) -> Result<Rows> {
        Rows rows;
        for (const auto& id : ids) {
          auto row = s.find_job(id);
          if (!row) {
            return fail(std::move(row).error());
          }
          rows.emplace_back(id, std::move(*row));
        }
        return rows;
      },
      [weak = weak_from_this()](Result<Rows> rows) {
        auto self = weak.lock();
        if (!self || self->stopped_) {
          return;
        }
        if (!rows) {
          // The polls and the next notification catch up.
          logger().debug("cluster.read_failed", {{"error", rows.error().message}});
          return;
        }
        for (const auto& [id, row] : *rows) {
          self->apply_row(id, row);
        }
      });
}

void Cluster::apply_row(const std::string& job_id, const std::optional<store::JobRecord>& row) {
  auto studio = studio_.lock();
  if (!studio) {
    return;
  }
  const auto* job = studio->book_.find(job_id);
  const auto view = job ? std::optional(job->view()) : std::nullopt;
  const auto verdict = jobs::judge_row(view ? &*view : nullptr, row, process_id_);
  switch (verdict.change) {
    case jobs::RowChange::Nothing: return;
    case jobs::RowChange::Mirror: mirror(*row); return;
    case jobs::RowChange::Forget:
      studio->scheduler_.remove(job_id);
      studio->book_.erase(job_id);
      if (row) {
        studio->end_runs_past_limit(*row);  // over elsewhere: runs here past the limit stop
      } else {
        studio->runs_past_limit_.erase(job_id);
      }
      return;
    case jobs::RowChange::GiveUp: give_up(job_id, verdict.why, verdict.stop_holder); return;
    case jobs::RowChange::GiveUpAndMirror:
      give_up(job_id, verdict.why);
      mirror(*row);
      return;
    case jobs::RowChange::CancelledElsewhere: {
      // As a cancel through this process: the holder is told to stop (when it can), its result
      // is acknowledged and dropped, and the job is let go when it comes (or when the claim
      // lapses). The process that cancelled it published the event to every process's streams:
      // nothing is published here.
      logger().info("cluster.cancelled_elsewhere",
                    {{"job_id", job_id}, {"worker_id", job->holder}});
      auto holder = studio->session_of(*job);
      studio->book_.mark_cancelled(job_id);
      studio->book_.cancel_stored(job_id);
      studio->stop_work(holder, job_id, "cancelled by a client");
      return;
    }
  }
}

void Cluster::mirror(store::JobRecord record) {
  auto studio = studio_.lock();
  if (!studio || studio->book_.find(record.id)) {
    return;
  }
  cursor_ = std::max(cursor_, record.queue_seq);
  auto job = Studio::make_active_job(std::move(record));
  if (!job) {
    logger().error("job.unreadable", {{"error", job.error().message}});
    return;
  }
  studio->enqueue(std::move(*job));
}

void Cluster::give_up(const std::string& job_id, std::string_view why, bool stop_holder) {
  auto studio = studio_.lock();
  const auto* job = studio ? studio->book_.find(job_id) : nullptr;
  if (!job) {
    return;
  }
  logger().info("cluster.job_given_up",
                {{"job_id", job_id}, {"worker_id", job->holder}, {"why", why}});
  const auto holder = studio->session_of(*job);
  if (stop_holder) {
    studio->stop_work(holder, job_id, std::string(why));
  }
  studio->free_session_slot(job_id, holder);
  studio->execute(studio->book_.let_go(job_id));
  studio->book_.erase(job_id);
  studio->request_dispatch();
}

void Cluster::verify_held() {
  auto studio = studio_.lock();
  if (!studio || stopped_) {
    return;
  }
  for (const auto& id : studio->book_.held_ids()) {
    jobs_to_read_.insert(id);
  }
  read_jobs();
}

void Cluster::renew_and_adopt() {
  auto studio = studio_.lock();
  if (!studio || stopped_) {
    return;
  }
  struct Swept {
    bool lease_lost = false;
    std::vector<store::JobRecord> adopted;
  };
  const auto local_now = studio->unix_millis();
  studio->db_->call<Swept>(
      [id = process_id_, local_now, timing = timing_](store::StudioStore& s) -> Result<Swept> {
        Swept swept;
        // Leases are written and compared on the database's clock: the processes' own clocks may
        // disagree (several hosts).
        auto shared = s.shared_clock();
        if (!shared) {
          return fail(std::move(shared).error());
        }
        const auto now = shared->value_or(local_now);
        auto renewed = s.renew_process_lease(id, now + timing.lease.count());
        if (!renewed) {
          return fail(std::move(renewed).error());
        }
        if (!*renewed) {
          swept.lease_lost = true;
          SW_TRY(s.register_process(process_record(id, now, timing)));
        }
        auto adopted = s.adopt_orphaned_claims(now);
        if (!adopted) {
          return fail(std::move(adopted).error());
        }
        swept.adopted = std::move(*adopted);
        return swept;
      },
      [weak = weak_from_this()](Result<Swept> swept) {
        auto self = weak.lock();
        auto live = self ? self->studio_.lock() : nullptr;
        if (!live || self->stopped_) {
          return;
        }
        if (!swept) {
          logger().warn("cluster.lease_failed", {{"error", swept.error().message}});
          return;
        }
        if (swept->lease_lost) {
          logger().warn("cluster.lease_lost", {{"process_id", self->process_id_}});
          self->verify_held();
        }
        for (auto& record : swept->adopted) {
          const std::string id = record.id;
          if (const auto* known = live->book_.find(id)) {
            if (known->phase != jobs::Phase::Queued) {
              continue;  // cannot happen: adoption skips our own claims
            }
            live->scheduler_.remove(id);
            live->book_.erase(id);
          }
          logger().info("cluster.adopted", {{"job_id", id},
                                            {"worker_id", record.worker_id.value_or("")},
                                            {"grace_ms", live->config_.claim_grace.count()}});
          auto job = Studio::make_active_job(std::move(record));
          if (!job) {
            logger().error("job.unreadable", {{"error", job.error().message}});
            continue;
          }
          live->execute(live->book_.restore_claimed(
              std::move(*job), live->steady_now(), live->config_.claim_grace,
              "the studio restarted or the studio process that held it died"));
        }
      });
}

void Cluster::poll_queue() {
  auto studio = studio_.lock();
  if (!studio || stopped_ || poll_running_) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_rescan_) {
    cursor_ = 0;  // a sequence value taken earlier may have committed after a later one
    next_rescan_ = now + timing_.rescan_every;
  }
  poll_running_ = true;
  studio->db_->call<std::vector<store::JobRecord>>(
      [after = cursor_](store::StudioStore& s) { return s.queued_after(after, kPollPage); },
      [weak = weak_from_this()](Result<std::vector<store::JobRecord>> queued) {
        auto self = weak.lock();
        if (!self) {
          return;
        }
        self->poll_running_ = false;
        if (self->stopped_) {
          return;
        }
        if (!queued) {
          logger().debug("cluster.poll_failed", {{"error", queued.error().message}});
          return;
        }
        const bool full_page = queued->size() == static_cast<std::size_t>(kPollPage);
        for (auto& record : *queued) {
          self->cursor_ = std::max(self->cursor_, record.queue_seq);
          self->mirror(std::move(record));
        }
        if (full_page) {
          self->poll_queue();  // more behind this page
        }
      });
}

void Cluster::take_over(const std::shared_ptr<WorkerSession>& session, const std::string& job_id) {
  auto studio = studio_.lock();
  if (!studio || stopped_ || !taking_over_.insert(job_id).second) {
    return;
  }
  using Row = std::optional<store::JobRecord>;
  studio->db_->call<Row>(
      [job_id, worker = session->worker_id_](store::StudioStore& s) -> Result<Row> {
        auto moved = s.take_over_claim(job_id, worker);
        if (!moved) {
          return fail(std::move(moved).error());
        }
        if (!*moved) {
          return Row();
        }
        return s.find_job(job_id);
      },
      [weak = weak_from_this(), session, job_id](Result<Row> row) {
        auto self = weak.lock();
        auto live = self ? self->studio_.lock() : nullptr;
        if (!live) {
          return;
        }
        self->taking_over_.erase(job_id);
        if (!row || !*row) {
          logger().debug("cluster.take_over_refused",
                         {{"job_id", job_id},
                          {"worker_id", session->worker_id_},
                          {"error", row ? std::string("not claimed by it") : row.error().message}});
          return;
        }
        if (const auto* known = live->book_.find(job_id)) {
          if (known->phase != jobs::Phase::Queued) {
            return;  // held here after all (adopted meanwhile): the heartbeat reattaches it
          }
          live->scheduler_.remove(job_id);
          live->book_.erase(job_id);
        }
        auto job = Studio::make_active_job(std::move(**row));
        if (!job) {
          logger().error("job.unreadable", {{"error", job.error().message}});
          return;
        }
        logger().info("cluster.took_over",
                      {{"job_id", job_id}, {"worker_id", session->worker_id_}});
        const auto now = live->steady_now();
        live->execute(live->book_.restore_claimed(std::move(*job), now, live->config_.claim_grace));
        live->reattach_reported_job(session, job_id);
      });
}

// ---- caches ----

void Cluster::reload_caches() {
  auto studio = studio_.lock();
  if (!studio || stopped_) {
    return;
  }
  if (reload_running_) {
    reload_again_ = true;
    return;
  }
  reload_running_ = true;
  struct Caches {
    std::vector<store::WorkerRecord> workers;
    std::vector<store::ApiKeyRecord> keys;
    std::vector<store::ModelRecord> models;
    std::optional<std::string> admin_hash;
  };
  studio->db_->call<Caches>(
      [](store::StudioStore& s) -> Result<Caches> {
        Caches caches;
        auto workers = s.list_workers();
        auto keys = workers ? s.list_api_keys() : fail(workers.error());
        auto models = keys ? s.list_models() : fail(keys.error());
        auto admin = models ? s.setting(kAdminTokenSetting) : fail(models.error());
        if (!admin) {
          return fail(std::move(admin).error());
        }
        caches.workers = std::move(*workers);
        caches.keys = std::move(*keys);
        caches.models = std::move(*models);
        caches.admin_hash = std::move(*admin);
        return caches;
      },
      [weak = weak_from_this()](Result<Caches> caches) {
        auto self = weak.lock();
        auto live = self ? self->studio_.lock() : nullptr;
        if (!live) {
          return;
        }
        self->reload_running_ = false;
        if (self->reload_again_) {
          self->reload_again_ = false;
          self->reload_caches();
        }
        if (!caches || self->stopped_) {
          if (!caches) {
            logger().debug("cluster.reload_failed", {{"error", caches.error().message}});
          }
          return;
        }
        auto& registry = live->registry_;
        for (const auto& id : registry.replace_workers(caches->workers)) {
          if (live->sessions_.contains(id) || !live->book_.detached_claims_of(id).empty()) {
            live->revoke_worker(id, "worker " + id + " was deleted by the operator");
          }
        }
        registry.replace_api_keys(caches->keys);
        registry.replace_models(std::move(caches->models), [](const std::string& id,
                                                              const Error& error) {
          logger().warn("cluster.model_unreadable", {{"model_id", id}, {"error", error.message}});
        });
        if (!live->config_.admin_token && caches->admin_hash) {
          registry.set_admin_token_hash(*caches->admin_hash);
        }
      });
}

// ---- events ----

void Cluster::relay_event(const std::string& chunk) {
  auto studio = studio_.lock();
  if (!studio || stopped_) {
    return;
  }
  if (chunk.size() > kEventPayloadLimit) {
    logger().debug("cluster.event_too_large", {{"bytes", chunk.size()}});
    return;
  }
  if (events_out_.size() + chunk.size() > kEventPayloadLimit) {
    flush_events();
  }
  events_out_ += chunk;
  if (!events_scheduled_) {
    events_scheduled_ = true;
    asio::post(studio->loop_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->events_scheduled_ = false;
        self->flush_events();
      }
    });
  }
}

void Cluster::flush_events() {
  auto studio = studio_.lock();
  if (!studio || events_out_.empty() || !studio->db_) {
    return;
  }
  std::string payload = process_id_ + "\n" + std::move(events_out_);
  events_out_.clear();
  studio->db_->call<bool>(
      [payload = std::move(payload)](store::StudioStore& s) -> Result<bool> {
        SW_TRY(s.notify(store::kEventsChannel, payload));
        return true;
      },
      [](Result<bool> sent) {
        if (!sent) {
          logger().debug("cluster.relay_failed", {{"error", sent.error().message}});
        }
      });
}

}  // namespace sw::studio::cluster
