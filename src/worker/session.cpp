#include "worker/session.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <limits>
#include <set>

#include "common/clock.h"
#include "common/log.h"
#include "net/ws_client.h"
#include "proto/codec.h"
#include "transfer/url_policy.h"
#include "worker/job_progress.h"
#include "worker/outbox.h"
#include "worker/run_blocking.h"
#include "worker/studio_api.h"

namespace sw::worker {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::ws::session");
  return instance;
}

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* kSubprotocol = "studio-worker-v1";
// The error of the `fail` that hands a job back at shutdown (retryable: another worker runs it).
constexpr const char* kWorkerStopping = "worker stopping";

bool announced(const std::vector<std::string>& features, std::string_view feature) {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

std::string describe_kinds(const std::vector<proto::TaskKind>& kinds) {
  std::string out;
  for (auto kind : kinds) {
    if (!out.empty()) out += ", ";
    out += proto::to_string(kind);
  }
  return out;
}

}  // namespace

struct StudioSession::Link {
  Link(std::shared_ptr<net::WsClient> socket, const asio::any_io_executor& loop)
      : ws(std::move(socket)), heartbeat_timer(loop), log_timer(loop), fail_ack_timer(loop) {}

  void end() {
    alive = false;
    heartbeat_timer.cancel();
    log_timer.cancel();
    fail_ack_timer.cancel();
  }

  std::shared_ptr<net::WsClient> ws;
  bool alive = true;
  bool welcomed = false;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer log_timer;
  asio::steady_timer fail_ack_timer;  // cancelled by every failAck (hand_back waits on it)
  std::set<std::string> fail_acks;    // jobs whose fail the studio acknowledged on this link
  // What this link was opened with: a config that no longer matches closes it.
  std::string studio_url;
  std::string worker_id;
  std::string auth_token;
  // What the studio announced in its welcome (feature "limits"); nullopt: an older studio.
  std::optional<proto::StudioLimits> limits;
  // The studio echoed "capacity": it may offer several jobs at once, and every heartbeat says
  // how many more this worker takes. Without it this worker holds one studio job at a time.
  bool capacity = false;
  // The studio echoed "progress": the jobs offered on this link send `jobProgress` frames.
  bool progress = false;
  // The studio echoed "cancel" / "uploads" (logged; a `cancel` is honoured from any studio, and
  // uploads are fetched with the token either way).
  bool cancel = false;
  bool uploads = false;
  // The slots or the held jobs changed since the last heartbeat was built: send one now.
  bool beat_again = false;
  // Heartbeats queued and heartbeatAcks read on this link (the courier's proof that the studio
  // read a completeJson: it answers each heartbeat in order).
  std::uint64_t beats_queued = 0;
  std::uint64_t beats_acked = 0;
};

namespace {

// The courier's view of a link: its socket, and the studio's multipart route with the
// credentials the link was opened with (blocking curl on the pool).
class SessionCourierLink final : public CourierLink {
 public:
  SessionCourierLink(std::shared_ptr<StudioSession::Link> link, Runtime& runtime)
      : link_(std::move(link)), runtime_(runtime) {}

  bool alive() const override { return link_->alive; }
  std::string studio_url() const override { return link_->studio_url; }
  std::string worker_id() const override { return link_->worker_id; }
  std::optional<proto::StudioLimits> limits() const override { return link_->limits; }
  std::uint64_t beats_queued() const override { return link_->beats_queued; }

  awaitable<Status> send_text(std::string text) override {
    if (!link_->alive) co_return fail(Error::unavailable("the session ended"));
    co_return co_await link_->ws->send_text(std::move(text));
  }

  awaitable<tl::expected<void, UploadFailure>> upload(
      std::shared_ptr<ResultUpload> upload) override {
    const WorkerConfig config = runtime_.config();
    StudioEndpoint studio{link_->studio_url, config.ca_file, runtime_.timings().http_timeout, {}};
    studio.cancelled = [all = runtime_.studio_calls_cancelled] { return all->load(); };
    upload->worker_id = link_->worker_id;
    upload->auth_token = link_->auth_token;
    std::function<tl::expected<void, UploadFailure>()> send = [studio, upload]() {
      return upload_result(studio, *upload);
    };
    co_return co_await run_blocking<tl::expected<void, UploadFailure>>(runtime_.pool(),
                                                                       std::move(send));
  }

 private:
  std::shared_ptr<StudioSession::Link> link_;
  Runtime& runtime_;
};

}  // namespace

struct StudioSession::HeldJob {
  std::stop_source stop;  // requested by the studio's cancel; the engine polls its token
  std::string reason;     // the cancel's reason
  bool cancelled() const { return stop.stop_requested(); }
  std::string error() const { return "cancelled by the studio: " + reason; }
};

// Frames about a job go over the link its offer came on: the studio ties a claim to it.
static awaitable<Status> send_on(std::shared_ptr<StudioSession::Link> link,
                                 proto::WorkerFrame frame) {
  if (!link->alive) co_return fail(Error::unavailable("the session ended"));
  const std::string text = proto::encode(frame);
  co_return co_await link->ws->send_text(text);
}

namespace {

// A job's progress frames go over the link its offer came on, while it lives.
class SessionProgressLink final : public ProgressLink {
 public:
  explicit SessionProgressLink(std::shared_ptr<StudioSession::Link> link)
      : link_(std::move(link)) {}
  awaitable<Status> send_text(std::string text) override {
    if (!link_->alive) co_return fail(Error::unavailable("the session ended"));
    co_return co_await link_->ws->send_text(std::move(text));
  }

 private:
  std::shared_ptr<StudioSession::Link> link_;
};

}  // namespace

struct StudioSession::Wake {
  explicit Wake(const asio::any_io_executor& executor) : timer(executor) {}
  // Waits up to `delay`; returns early when poke() is called.
  awaitable<void> wait(std::chrono::milliseconds delay) {
    timer.expires_after(delay);
    co_await timer.async_wait(kUseTuple);
  }
  void poke() { timer.cancel(); }
  asio::steady_timer timer;
};

StudioSession::StudioSession(Runtime& runtime, StatusBoard& status, JobRunner& runner,
                             Connector connect)
    : runtime_(runtime),
      status_(status),
      runner_(runner),
      connect_(connect ? std::move(connect) : Connector(&net::WsClient::connect)),
      courier_(runtime.loop(), runtime.outbox(), runtime.logs(), runner.clock(),
               CourierTimings{runtime.timings().outbox_backoff_base,
                              runtime.timings().completion_ack_wait},
               runner.metrics()),
      wake_(std::make_unique<Wake>(runtime.loop())),
      random_(std::random_device{}()) {
  // A capacity studio hears about a freed or taken slot at once, not at the next 5 s beat. The
  // gate calls on whatever thread changed it; the beat is woken on the loop.
  runtime_.gate().set_on_change(
      [loop = runtime_.loop(), weak = std::weak_ptr<StudioSession*>(self_ref_)] {
        asio::post(loop, [weak] {
          if (auto self = weak.lock()) (*self)->slots_changed();
        });
      });
}

StudioSession::~StudioSession() {
  runtime_.gate().set_on_change({});
}

void StudioSession::slots_changed() {
  if (link_ && link_->alive && link_->welcomed && link_->capacity) {
    link_->beat_again = true;
    link_->heartbeat_timer.cancel();
  }
}

void StudioSession::beat_now() {
  if (link_ && link_->alive && link_->welcomed) {
    link_->beat_again = true;
    link_->heartbeat_timer.cancel();
  }
}

void StudioSession::cancel_job(const proto::CancelJob& cancel) {
  auto it = held_.find(cancel.job_id);
  if (it == held_.end()) {
    logger().debug("session.cancel_ignored",
                   {{"job_id", cancel.job_id}, {"why", "not a job this worker holds"}});
    return;
  }
  auto& held = *it->second;
  if (held.cancelled()) return;
  held.reason = cancel.reason.empty() ? std::string("no reason given") : cancel.reason;
  runtime_.logs().ship(log::Level::Info, "job",
                       fmt::format("studio cancelled job {}: {}", cancel.job_id, held.reason),
                       cancel.job_id);
  held.stop.request_stop();
}

void StudioSession::stop() {
  if (stopped_) return;
  stopped_ = true;
  wake_->poke();
  if (link_ && link_->ws->is_open()) {
    auto ws = link_->ws;
    asio::co_spawn(runtime_.loop(), ws->close(1000, "session ended"), asio::detached);
  }
}

void StudioSession::credentials_changed() {
  wake_->poke();
  const WorkerConfig& config = runtime_.config();
  if (link_ && link_->alive && link_->ws->is_open() &&
      (link_->studio_url != config.api_base_url ||
       link_->worker_id != config.worker_id.value_or("") ||
       link_->auth_token != config.auth_token.value_or(""))) {
    runtime_.logs().ship(log::Level::Info, "ws",
                         "studio URL or credentials changed; closing the session to start over");
    auto ws = link_->ws;
    asio::co_spawn(runtime_.loop(), ws->close(1000, "credentials changed"), asio::detached);
  }
}

awaitable<std::set<std::string>> StudioSession::hand_back(std::vector<std::string> job_ids) {
  std::set<std::string> acked;
  auto link = link_;
  if (!link || !link->alive || !link->welcomed) co_return acked;
  std::set<std::string> sent_for;
  for (const auto& job_id : job_ids) {
    runtime_.logs().ship(
        log::Level::Warn, "job",
        fmt::format("handing job {} back to the studio: the worker is stopping", job_id), job_id);
    const proto::WorkerFrame frame{proto::Fail{job_id, kWorkerStopping, true}};
    if (auto sent = co_await send_on(link, frame); sent) sent_for.insert(job_id);
  }
  const auto end = std::chrono::steady_clock::now() + runtime_.timings().close_timeout;
  const auto all_acked = [&] {
    return std::all_of(sent_for.begin(), sent_for.end(),
                       [&](const std::string& id) { return link->fail_acks.contains(id); });
  };
  while (link->alive && !all_acked() && std::chrono::steady_clock::now() < end) {
    link->fail_ack_timer.expires_at(end);
    co_await link->fail_ack_timer.async_wait(kUseTuple);
  }
  Outbox* outbox = &runtime_.outbox();
  for (const auto& job_id : sent_for) {
    if (!link->fail_acks.contains(job_id)) continue;
    acked.insert(job_id);
    // A result finished but not delivered in time: the studio gave the job away, so it goes.
    if (outbox->contains(job_id)) {
      co_await courier_.settle(job_id, false, "handed back to the studio at shutdown");
    }
  }
  co_return acked;
}

awaitable<bool> StudioSession::wait_for_credentials() {
  bool announced = false;
  while (!stopped_) {
    if (runtime_.config().registered()) co_return true;
    status_.session_waiting_for_approval();
    if (!announced) {
      runtime_.logs().local(log::Level::Info, "ws",
                            "waiting for operator approval before opening the session");
      announced = true;
    }
    co_await wake_->wait(runtime_.timings().credential_poll);
  }
  co_return false;
}

void StudioSession::log_advertised(const proto::WorkerCapabilities& caps) {
  std::string models;
  for (const auto& model : caps.supported_models) {
    if (!models.empty()) models += ", ";
    models += model;
  }
  runtime_.logs().ship(
      log::Level::Info, "ws",
      fmt::format("advertising engine={}, vram={:.1f}/{:.1f}GB threshold, auto_enabled={}, "
                  "kinds=[{}], {} model(s)=[{}]",
                  caps.engine, caps.vram_total_gb, caps.vram_threshold_gb, caps.auto_enabled,
                  describe_kinds(caps.task_kinds), caps.supported_models.size(), models));
  if (caps.vram_total_gb > 0 && caps.vram_threshold_gb > caps.vram_total_gb) {
    runtime_.logs().ship(
        log::Level::Warn, "ws",
        fmt::format("vram_threshold_gb {:.1f} exceeds the detected {:.1f} GB: the studio may send "
                    "jobs that do not fit (studio-worker set-threshold {:.0f})",
                    caps.vram_threshold_gb, caps.vram_total_gb, caps.vram_total_gb));
  }
}

awaitable<void> StudioSession::run() {
  std::uint32_t attempt = 0;
  while (!stopped_) {
    if (!co_await wait_for_credentials()) break;
    const WorkerConfig config = runtime_.config();
    status_.session_connecting(attempt);
    Ending ending;
    auto url = transfer::studio_websocket_url(config.api_base_url, *config.worker_id);
    if (!url) {
      ending.cause = "api_base_url: " + url.error().message;
    } else {
      net::WsClientOptions options;
      options.url = *url;
      options.headers.push_back({"authorization", "Bearer " + *config.auth_token});
      options.subprotocol = kSubprotocol;
      options.connect_timeout = runtime_.timings().connect_timeout;
      options.read_idle_timeout = runtime_.timings().read_idle_timeout;
      options.close_timeout = runtime_.timings().close_timeout;
      options.ca_file = config.ca_file;
      options.user_agent = std::string("studio-worker/") + SW_VERSION;
      logger().info("session.connecting", {{"url", *url}, {"attempt", attempt}});
      auto connected = co_await connect_(std::move(options));
      if (!connected) {
        if (connected.error().http_status == 401) {
          ending.outcome = Outcome::AuthFailed;
          ending.cause = connected.error().error.message;
        } else {
          ending.cause = connected.error().error.message;
        }
      } else {
        link_ = std::make_shared<Link>(*connected, runtime_.loop());
        link_->studio_url = config.api_base_url;
        link_->worker_id = config.worker_id.value_or("");
        link_->auth_token = config.auth_token.value_or("");
        ending = co_await run_link(link_);
        courier_.link_ended(ending.outcome != Outcome::Stopped);
        link_->end();
        link_->ws->abort();
        link_.reset();
      }
    }
    if (stopped_) break;
    if (ending.outcome == Outcome::AuthFailed) {
      status_.session_auth_failed(ending.cause);
      runtime_.logs().ship(log::Level::Error, "ws", "ws auth failed: " + ending.cause);
      exit_code_ = ExitCode::AuthFailed;
      co_return;
    }
    if (ending.outcome == Outcome::Fatal) {
      status_.session_fatal(ending.cause);
      runtime_.logs().ship(log::Level::Error, "ws", "ws fatal: " + ending.cause);
      exit_code_ = ending.exit;
      co_return;
    }
    if (ending.welcomed) attempt = 0;
    ++attempt;
    const auto cap = runtime_.config().ws_reconnect_attempts.value_or(0);
    if (cap > 0 && attempt > cap) {
      status_.session_fatal("ws reconnect cap reached");
      runtime_.logs().ship(log::Level::Error, "ws", "ws reconnect cap reached");
      exit_code_ = ExitCode::Failure;
      co_return;
    }
    const auto delay =
        reconnect_delay(attempt, runtime_.timings().backoff_base, runtime_.timings().backoff_cap,
                        std::uniform_real_distribution<double>(0.0, 1.0)(random_));
    const std::string line =
        ending.cause.empty()
            ? fmt::format("disconnected; reconnect attempt {} in {}ms", attempt, delay.count())
            : fmt::format("session error: {}; reconnect attempt {} in {}ms", ending.cause, attempt,
                          delay.count());
    runtime_.logs().ship(log::Level::Warn, "ws", line);
    if (auto* metrics = runner_.metrics()) metrics->count_reconnect();
    status_.session_reconnecting(attempt);
    co_await wake_->wait(delay);
  }
  status_.session_stopped();
}

StudioSession::Ending StudioSession::react_to_error(const proto::ErrorFrame& error) {
  Ending ending;
  if (error.code == proto::WorkerErrorCode::AuthFailed) {
    ending.outcome = Outcome::AuthFailed;
  } else {
    ending.outcome = Outcome::Fatal;  // duplicate_worker, worker_deleted, internal_error, …
    if (error.code == proto::WorkerErrorCode::WorkerDeleted) ending.exit = ExitCode::WorkerDeleted;
    if (error.code == proto::WorkerErrorCode::DuplicateWorker) {
      ending.exit = ExitCode::DuplicateWorker;
    }
  }
  ending.cause = fmt::format("{}: {}", proto::to_string(error.code), error.message);
  return ending;
}

awaitable<StudioSession::Ending> StudioSession::run_link(std::shared_ptr<Link> link) {
  Ending ending;
  const auto caps = runtime_.capabilities();
  log_advertised(caps);
  // Announces the extensions this worker understands; a studio that knows none ignores the key.
  const std::string hello = proto::encode(proto::WorkerFrame{
      proto::Hello{*runtime_.config().auth_token,
                   caps,
                   {std::string(proto::kFeatureLimits), std::string(proto::kFeatureCapacity),
                    std::string(proto::kFeatureProgress), std::string(proto::kFeatureCancel),
                    std::string(proto::kFeatureUploads)}}});
  if (auto sent = co_await link->ws->send_text(hello); !sent) {
    ending.cause = "hello could not be sent: " + sent.error().message;
    co_return ending;
  }
  while (true) {
    auto message = co_await link->ws->read();
    if (stopped_) {
      ending.outcome = Outcome::Stopped;
      co_return ending;
    }
    if (!message) {
      ending.cause = message.error().code == Code::Timeout
                         ? fmt::format("no frame from the studio for {} ms",
                                       runtime_.timings().read_idle_timeout.count())
                         : message.error().message;
      co_return ending;
    }
    if (message->kind == net::WsMessage::Kind::Closed) {
      if (message->close_code == 4001) {
        ending.outcome = Outcome::AuthFailed;
        ending.cause = fmt::format("server closed 4001: {}", message->close_reason);
      } else {
        logger().info("session.closed_by_studio",
                      {{"code", message->close_code}, {"reason", message->close_reason}});
      }
      co_return ending;
    }
    if (message->kind == net::WsMessage::Kind::Binary) {
      ending.cause = "protocol violation: binary frame from the studio";
      const std::string reason = "protocol violation";
      co_await link->ws->close(1000, reason);
      co_return ending;
    }
    auto frame = proto::decode_studio_frame(message->data);
    if (!frame) {
      ending.cause = "protocol violation: " + frame.error().message;
      const std::string reason = "protocol violation";
      co_await link->ws->close(1000, reason);
      co_return ending;
    }
    if (auto* error = std::get_if<proto::ErrorFrame>(&*frame)) {
      if (error->code == proto::WorkerErrorCode::ProtocolViolation) {
        // The studio's answer to a completeJson for a job that is no longer ours: the result is
        // dropped, and the session starts over (the cause is gone, so this is not fatal).
        if (auto disowned = courier_.disowned_by(error->message)) {
          std::string note = "the studio answered protocol_violation: " + error->message;
          co_await courier_.settle(*disowned, false, std::move(note));
          ending.cause = "protocol violation over job " + *disowned + ": " + error->message;
          const std::string reason = "session ended";
          co_await link->ws->close(1000, reason);
          co_return ending;
        }
      }
      auto reaction = react_to_error(*error);
      reaction.welcomed = ending.welcomed;
      const std::string reason =
          reaction.outcome == Outcome::AuthFailed ? "auth failed" : "session ended";
      co_await link->ws->close(1000, reason);
      co_return reaction;
    }
    if (!ending.welcomed) {
      if (auto* welcome = std::get_if<proto::Welcome>(&*frame)) {
        ending.welcomed = true;
        status_.session_connected();
        runtime_.logs().ship(log::Level::Info, "ws",
                             fmt::format("server welcomed {} server_time={}", welcome->worker_id,
                                         welcome->server_time));
        link->welcomed = true;
        link->limits = welcome->limits;
        link->capacity = announced(welcome->features, proto::kFeatureCapacity);
        link->progress = announced(welcome->features, proto::kFeatureProgress);
        link->cancel = announced(welcome->features, proto::kFeatureCancel);
        link->uploads = announced(welcome->features, proto::kFeatureUploads);
        if (!welcome->features.empty()) {
          std::string features;
          for (const auto& feature : welcome->features) {
            if (!features.empty()) features += ',';
            features += feature;
          }
          logger().info("session.studio_features", {{"features", features}});
        }
        if (welcome->limits) {
          logger().info("session.studio_limits",
                        {{"max_frame_bytes", welcome->limits->max_frame_bytes},
                         {"max_upload_bytes", welcome->limits->max_upload_bytes}});
        }
        asio::co_spawn(runtime_.loop(), heartbeat_pump(this, link), asio::detached);
        asio::co_spawn(runtime_.loop(), log_pump(this, link), asio::detached);
        asio::co_spawn(runtime_.loop(),
                       courier_.run(std::make_shared<SessionCourierLink>(link, runtime_)),
                       asio::detached);
      } else {
        // The studio must welcome first; anything else now is dropped (an offer too).
        runtime_.logs().local(
            log::Level::Warn, "ws",
            fmt::format("{} frame before welcome dropped", proto::frame_type(*frame)));
      }
      continue;
    }
    std::visit(
        [&](auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, proto::Offer>) {
            handle_offer(link, std::move(value.claim));
          } else if constexpr (std::is_same_v<T, proto::CompleteAck>) {
            courier_.complete_acked(value.job_id);
          } else if constexpr (std::is_same_v<T, proto::FailAck>) {
            link->fail_acks.insert(value.job_id);
            link->fail_ack_timer.cancel();
            runtime_.logs().ship(log::Level::Info, "ws",
                                 "studio confirmed failure of job " + value.job_id, value.job_id);
          } else if constexpr (std::is_same_v<T, proto::Welcome>) {
            logger().debug("session.second_welcome_ignored");
          } else if constexpr (std::is_same_v<T, proto::HeartbeatAck>) {
            courier_.heartbeat_acked(++link->beats_acked);
          } else if constexpr (std::is_same_v<T, proto::CancelJob>) {
            cancel_job(value);
          }
        },
        *frame);
  }
}

awaitable<void> StudioSession::heartbeat_pump(StudioSession* self, std::shared_ptr<Link> link) {
  Runtime& runtime = self->runtime_;
  while (link->alive) {
    proto::Heartbeat beat{runtime.capabilities(), runtime.current_studio_job()};
    link->beat_again = false;
    if (link->capacity) {
      const bool closed = runtime.paused() || self->status_.view().stopping;
      beat.capacity = proto::WorkerCapacity{
          closed ? 0u : static_cast<std::uint32_t>(self->runner_.gate().room()),
          runtime.studio_jobs()};
    }
    const std::string text = proto::encode(proto::WorkerFrame{std::move(beat)});
    ++link->beats_queued;  // queued in this order by send_text before it first suspends
    auto sent = co_await link->ws->send_text(text);
    self->status_.heartbeat_sent(static_cast<bool>(sent),
                                 sent ? std::string() : sent.error().message,
                                 format_rfc3339_millis(unix_millis_now()));
    if (!sent || !link->alive) co_return;
    // The next beat carries what the model cache holds by then (scanned on the pool).
    runtime.refresh_advertised();
    if (link->beat_again) continue;  // slots changed while this one was sent
    link->heartbeat_timer.expires_after(runtime.timings().heartbeat_interval);
    co_await link->heartbeat_timer.async_wait(kUseTuple);
  }
}

awaitable<void> StudioSession::log_pump(StudioSession* self, std::shared_ptr<Link> link) {
  Runtime& runtime = self->runtime_;
  while (link->alive) {
    link->log_timer.expires_after(runtime.timings().log_flush_interval);
    co_await link->log_timer.async_wait(kUseTuple);
    if (!link->alive) co_return;
    auto batch = runtime.logs().take_batch();
    if (batch.empty()) continue;
    const std::string text = proto::encode(proto::WorkerFrame{proto::LogBatch{batch}});
    if (auto sent = co_await link->ws->send_text(text); !sent) {
      runtime.logs().requeue_front(std::move(batch));
      co_return;
    }
  }
}

awaitable<void> StudioSession::send_and_forget(std::shared_ptr<Link> link, std::string text,
                                               std::string what, Runtime* runtime) {
  if (auto sent = co_await link->ws->send_text(std::move(text)); !sent) {
    runtime->logs().ship(log::Level::Warn, "ws",
                         fmt::format("{} could not be sent: {}", what, sent.error().message));
  }
}

void StudioSession::handle_offer(const std::shared_ptr<Link>& link, proto::JobOfferClaim claim) {
  auto& logs = runtime_.logs();
  logs.ship(log::Level::Info, "ws",
            fmt::format("offer received {} game={} asset={} model={} vram={}", claim.job_id,
                        claim.game_id, claim.asset_name, claim.model, claim.vram_gb_estimate),
            claim.job_id);
  auto reject = [&](std::string reason, std::optional<proto::RejectCode> code) {
    logs.ship(log::Level::Info, "ws", fmt::format("rejected {}: {}", claim.job_id, reason),
              claim.job_id);
    const std::string text =
        proto::encode(proto::WorkerFrame{proto::Reject{claim.job_id, std::move(reason), code}});
    asio::co_spawn(runtime_.loop(), send_and_forget(link, text, "reject", &runtime_),
                   asio::detached);
  };
  if (status_.view().stopping) {
    // No new work during the stop grace: the studio offers it elsewhere without counting it.
    reject(kWorkerStopping, proto::RejectCode::Busy);
    return;
  }
  if (runtime_.paused()) {
    reject("worker paused by operator", proto::RejectCode::Paused);
    return;
  }
  if (runtime_.config().only_when_idle) {
    // No presence probe on this platform yet: presence is unknown, which holds the worker back.
    reject("worker only runs jobs while its user is idle (presence unknown)",
           proto::RejectCode::Paused);
    return;
  }
  // An offer for an engine this worker lacks (a race with the advertisement, an old studio): a
  // reject without a code, so that the studio gives the job to a worker that has the engine
  // rather than it failing here for good.
  {
    const engines::DispatchRequest request{claim.model, claim.task, claim.model_source,
                                           claim.job_id};
    if (auto refusal = runtime_.engine().routing_refusal(request)) {
      reject(std::move(*refusal), std::nullopt);
      return;
    }
  }
  if (runtime_.outbox().full()) {
    // Results that cannot be kept are GPU time thrown away: take no more until delivery catches
    // up (the studio offers the job to another worker meanwhile).
    const auto summary = runtime_.outbox().summary();
    reject(fmt::format("result outbox is full ({} results, {} MiB awaiting delivery)",
                       summary.entries, summary.bytes >> 20),
           proto::RejectCode::Busy);
    return;
  }
  // The same job offered again while this worker still runs it or still holds its result (a
  // studio whose run limit passed requeued it): a second run would only race the first, whose
  // result is on its way. Refused without a code: the job, not the worker, is the reason, so the
  // studio keeps this job off this worker for a while and others get it (issue 18).
  if (held_.contains(claim.job_id) || runtime_.outbox().contains(claim.job_id)) {
    reject(fmt::format("worker already runs job {} or holds its result", claim.job_id),
           std::nullopt);
    return;
  }
  // One studio job at a time unless the studio announced "capacity" (the reference's rule).
  auto ticket = runner_.try_reserve(claim.job_id, link->capacity ? runner_.gate().max_jobs() : 1);
  if (!ticket) {
    reject(std::move(ticket).error(), proto::RejectCode::Busy);
    return;
  }
  auto held = std::make_shared<HeldJob>();
  held_[claim.job_id] = held;
  asio::co_spawn(runtime_.loop(),
                 run_job(this, link, std::move(claim), std::move(*ticket), std::move(held)),
                 asio::detached);
}

awaitable<void> StudioSession::run_job(StudioSession* self, std::shared_ptr<Link> link,
                                       proto::JobOfferClaim claim, SharedTicket ticket,
                                       std::shared_ptr<HeldJob> held) {
  // `ticket` holds the job gate while the engine runs; `held` is what a cancel reaches, until
  // this job's fail is sent or its result is in the outbox.
  Runtime& runtime = self->runtime_;
  auto& logs = runtime.logs();
  const std::string job_id = claim.job_id;
  // Weak: a frame destroyed with the loop after the session must not reach into it.
  struct Release {
    std::weak_ptr<StudioSession*> session;
    std::string job_id;
    const HeldJob* held;
    ~Release() {
      auto alive = session.lock();
      if (!alive) return;
      auto& jobs = (*alive)->held_;
      auto it = jobs.find(job_id);
      if (it != jobs.end() && it->second.get() == held) jobs.erase(it);
    }
  } release{self->self_ref_, job_id, held.get()};
  engines::DispatchRequest request{claim.model, claim.task, claim.model_source, job_id};
  request.stop = held->stop.get_token();
  // Uploads under this studio are read with this link's credentials (issue 20).
  request.studio =
      engines::StudioAccess{link->studio_url, link->auth_token, runtime.config().ca_file};
  JobRunner& runner = self->runner_;
  // Memory admission before accepting, so that a job this worker cannot hold goes to another
  // worker at once. Named locals: GCC 12 double-destroys temporaries inside a co_await.
  engines::DispatchRequest asked = request;
  SharedTicket admitted = ticket;
  auto refused = co_await runner.admit(std::move(asked), claim.vram_gb_estimate, admitted);
  admitted.reset();  // only `ticket` holds the slot: the runner frees it when the engine is done
  if (held->cancelled()) {
    // Cancelled while it was being admitted: answered like any cancelled job, nothing ran.
    ticket.reset();
    logs.ship(log::Level::Info, "job", fmt::format("job {} {}", job_id, held->error()), job_id);
    const proto::WorkerFrame frame{proto::Fail{job_id, held->error(), false}};
    if (auto sent = co_await send_on(link, frame); !sent) {
      logs.ship(log::Level::Warn, "ws",
                fmt::format("fail for {} could not be sent: {}", job_id, sent.error().message),
                job_id);
    }
    self->beat_now();
    co_return;
  }
  std::optional<std::string> refusal;
  std::optional<proto::RejectCode> code;
  if (refused) {
    refusal = std::move(refused->reason);
    // Room beside the running jobs is a passing state: the studio offers it again later.
    if (refused->busy) code = proto::RejectCode::Busy;
  }
  if (!refusal && self->status_.view().stopping) {  // stopped while admitting: not this job's fault
    refusal = kWorkerStopping;
    code = proto::RejectCode::Busy;
  }
  if (refusal) {
    ticket.reset();
    logs.ship(log::Level::Info, "ws", fmt::format("rejected {}: {}", job_id, *refusal), job_id);
    const proto::WorkerFrame reject{proto::Reject{job_id, *refusal, code}};
    auto sent = co_await send_on(link, reject);
    if (!sent) {
      logs.ship(log::Level::Warn, "ws",
                fmt::format("reject for {} could not be sent: {}", job_id, sent.error().message),
                job_id);
    }
    co_return;
  }
  const std::string accept = proto::encode(proto::WorkerFrame{proto::Accept{job_id}});
  if (auto sent = co_await link->ws->send_text(accept); !sent) {
    logs.ship(log::Level::Error, "ws",
              fmt::format("accept for {} could not be sent; job abandoned: {}", job_id,
                          sent.error().message),
              job_id);
    co_return;
  }
  const std::string prompt = prompt_for(claim.task);
  runtime.job_started(
      JobRecord{job_id, claim.task.kind(), claim.model, prompt, "studio", {}, {}, {}, {}});
  // A capacity studio counts this worker's slots as the jobs it lists plus its room: until a beat
  // lists this job, the studio would count one slot too few and hold back the next offer.
  self->slots_changed();

  // A studio that welcomed "progress" hears how the job gets on (job_progress.h).
  std::shared_ptr<ProgressRelay> relay;
  if (link->progress) {
    relay = std::make_shared<ProgressRelay>(runtime.loop(), job_id,
                                            std::make_shared<SessionProgressLink>(link));
    relay->start();
    request.observer = relay;
  }

  // The runner frees the gate as soon as the engine is done, so that the offer a studio sends as
  // soon as it has the result is not refused as busy.
  auto outcome = co_await runner.run(std::move(request), std::move(ticket));
  // Every delta goes before the job's completeJson or fail (both are queued after this).
  if (relay) co_await relay->finish();
  auto& result = outcome.result;
  if (!result || held->cancelled()) {
    // A cancel wins over whatever the engine made of the job meanwhile: the studio gave it up.
    const bool cancelled = held->cancelled();
    const std::string error = cancelled ? held->error() : result.error().message;
    const bool retryable = !cancelled && engines::is_retryable(result.error());
    logs.ship(cancelled ? log::Level::Info : log::Level::Error, "job",
              fmt::format("job {} failed: {}", job_id, error), job_id);
    const proto::WorkerFrame frame{proto::Fail{job_id, error, retryable}};
    auto sent = co_await send_on(link, frame);
    if (!sent) {
      logs.ship(log::Level::Warn, "ws",
                fmt::format("fail for {} could not be sent: {}", job_id, sent.error().message),
                job_id);
    }
    runtime.job_finished(job_id, false, error);
    if (cancelled) {
      self->beat_now();  // the slot is free again, whatever the studio announced
    } else {
      self->slots_changed();
    }
    co_return;
  }

  // Into the outbox first (fsynced): from here the result survives a dropped link or a crash.
  const auto now = runner.clock().unix_millis();  // the courier reads due times on it
  OutboxEntry entry;
  entry.job_id = job_id;
  // The identity of the link the offer came on: the courier delivers it over a link like it.
  entry.studio = link->studio_url;
  entry.worker_id = link->worker_id;
  entry.prompt = prompt;
  entry.created_at_ms = now;
  entry.next_attempt_at_ms = now;
  entry.kind = result->kind == ResultPayload::Kind::Binary ? OutboxEntry::Kind::Binary
                                                           : OutboxEntry::Kind::Json;
  entry.body = std::move(result->body);
  entry.ext = std::move(result->ext);
  // On the outbox's writer thread: the loop goes on answering offers while the disk syncs.
  const std::size_t bytes = entry.body.size();
  const bool durable = co_await runtime.outbox().keep(std::move(entry));
  logs.ship(durable ? log::Level::Info : log::Level::Error, "job",
            fmt::format("result of job {} kept for delivery ({} bytes{})", job_id, bytes,
                        durable ? "" : ", in memory only: the disk refused it"),
            job_id);
  runtime.job_finished(job_id, true, {});
  self->slots_changed();
  self->courier_.poke();
}

}  // namespace sw::worker
