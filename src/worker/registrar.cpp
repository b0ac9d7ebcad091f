#include "worker/registrar.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <utility>

#include "common/clock.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "worker/run_blocking.h"
#include "worker/studio_api.h"

namespace sw::worker {

namespace asio = boost::asio;
using asio::awaitable;

struct Registrar::Wake {
  explicit Wake(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
};

std::string rejection_guidance(const std::string& reason) {
  if (reason.starts_with(kJoinTokenRefusedPrefix)) {
    return fmt::format(
        "{}.  Ask the studio's operator for a new one (`studio-server join-token create`), then "
        "run `studio-worker register --reset --join-token NEW` and start the worker again.",
        reason);
  }
  return fmt::format(
      "registration rejected by the studio operator: {}.  Run `studio-worker register --reset`, "
      "then start the worker again, to ask again.",
      reason.empty() ? std::string("no reason given") : reason);
}

Registrar::Registrar(Runtime& runtime, StatusBoard& status)
    : runtime_(runtime), status_(status), wake_(std::make_unique<Wake>(runtime.loop())) {}

Registrar::~Registrar() = default;

void Registrar::stop() {
  stopped_ = true;
  calls_cancelled_->store(true);
  wake_->timer.cancel();
}

bool Registrar::restart() {
  status_.registration_pristine();
  if (running_) wake_->timer.cancel();
  return running_;
}

awaitable<void> Registrar::run() {
  // Cleared at each return, not by a destructor: a frame destroyed with the stopped loop runs
  // after this Registrar is gone.
  running_ = true;
  const auto& timings = runtime_.timings();
  std::chrono::milliseconds backoff{0};  // after failures: doubling from registration_poll
  while (!stopped_) {
    if (runtime_.config().registered()) {
      status_.registration_approved();
      running_ = false;
      co_return;
    }
    const auto started = std::chrono::steady_clock::now();
    const bool answered = co_await tick();
    if (runtime_.config().registered() || stopped_) continue;
    // Rejected: permanent until `register --reset`; the daemon exits with
    // ExitCode::RegistrationRejected (issue 17).
    if (status_.view().registration.phase == RegistrationPhase::Rejected) break;
    if (std::exchange(poll_now_, false)) continue;
    backoff = answered ? std::chrono::milliseconds(0)
                       : std::min(timings.backoff_cap,
                                  std::max(timings.registration_poll, backoff * 2));
    // The next poll, paced from the start of this one: a studio that held the poll is asked
    // again at once, one that answered at once not before registration_poll has passed.
    wake_->timer.expires_at(started + std::max(timings.registration_poll, backoff));
    co_await wake_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  running_ = false;
}

awaitable<bool> Registrar::tick() {
  auto& logs = runtime_.logs();
  WorkerConfig config = runtime_.config();
  StudioEndpoint studio{config.api_base_url, config.ca_file, runtime_.timings().http_timeout, {}};
  studio.cancelled = [mine = calls_cancelled_, all = runtime_.studio_calls_cancelled] {
    return mine->load() || all->load();
  };

  if (!config.registration_request_id) {
    // Saved before any HTTP, so that a crash cannot orphan a request the studio knows about.
    bool changed = false;
    if (!config.install_id) {
      config.install_id = random_uuid();
      changed = true;
    }
    if (!config.registration_secret) {
      config.registration_secret = random_hex(32);
      changed = true;
    }
    if (changed) {
      if (auto saved = runtime_.update_config(config); !saved) {
        logs.local(log::Level::Error, "register",
                   "cannot save the registration state: " + saved.error().message);
        co_return false;
      }
    }
    // The join token (issue 22) goes only with a request of a worker given one.
    proto::RegisterRequest request{*config.install_id,
                                   sha256_hex(*config.registration_secret),
                                   runtime_.capabilities(),
                                   std::string("studio-worker/") + SW_VERSION,
                                   std::nullopt,
                                   config.join_token};
    // Named locals: GCC 12 double-destroys temporaries inside a co_await expression.
    std::function<Result<RegisterOutcome>()> work = [studio, request]() {
      return post_register_request(studio, request);
    };
    const auto pool = runtime_.pool();
    auto outcome = co_await run_blocking<Result<RegisterOutcome>>(pool, std::move(work));
    if (stopped_) co_return true;
    if (!outcome) {
      logs.local(log::Level::Warn, "register", outcome.error().message);
      co_return false;
    }
    config = runtime_.config();
    if (const auto* refused = std::get_if<JoinTokenRefused>(&*outcome)) {
      // Permanent for this token: kept like a rejection, so a restart exits 10 again instead of
      // asking again with it.
      const std::string reason = std::string(kJoinTokenRefusedPrefix) + refused->reason;
      config.join_token.reset();
      config.registration_secret.reset();
      config.registration_rejected = reason;
      (void)runtime_.update_config(config);
      status_.registration_rejected(reason);
      logs.local(log::Level::Warn, "register", rejection_guidance(reason));
      co_return true;
    }
    const auto& response = std::get<proto::RegisterResponse>(*outcome);
    config.registration_request_id = response.request_id;
    if (auto saved = runtime_.update_config(config); !saved) {
      logs.local(log::Level::Error, "register",
                 "cannot save the registration request id: " + saved.error().message);
    }
    status_.registration_pending(response.request_id, format_rfc3339_millis(unix_millis_now()));
    if (response.status == "approved") {
      // Approved by its join token: collect the credentials now rather than a poll period later.
      poll_now_ = true;
      logs.local(log::Level::Info, "register",
                 fmt::format("joined with a join token (request {}); collecting credentials",
                             response.request_id));
    } else {
      logs.local(log::Level::Info, "register",
                 fmt::format("registration requested; waiting for operator approval (request {})",
                             response.request_id));
    }
    co_return true;
  }

  const std::string request_id = *config.registration_request_id;
  const std::string secret = config.registration_secret.value_or("");
  const auto wait = runtime_.timings().registration_wait;
  std::function<Result<PollOutcome>()> work = [studio, request_id, secret, wait]() {
    return poll_registration(studio, request_id, secret, wait);
  };
  const auto pool = runtime_.pool();
  auto polled = co_await run_blocking<Result<PollOutcome>>(pool, std::move(work));
  if (stopped_) co_return true;
  // Reset while the poll was held: its answer is about a request this worker gave up.
  if (runtime_.config().registration_request_id != request_id) co_return true;
  if (!polled) {
    logs.local(log::Level::Warn, "register", polled.error().message);
    if (status_.view().registration.phase != RegistrationPhase::Pending) {
      status_.registration_pending(request_id, format_rfc3339_millis(unix_millis_now()));
    }
    co_return false;
  }
  config = runtime_.config();
  if (std::holds_alternative<RegistrationUnknown>(*polled)) {
    config.registration_request_id.reset();
    config.registration_secret.reset();
    (void)runtime_.update_config(config);
    status_.registration_pristine();
    logs.local(log::Level::Warn, "register",
               fmt::format("the studio does not know request {}; asking again", request_id));
    co_return true;
  }
  const auto& poll = std::get<proto::RegistrationPoll>(*polled);
  if (std::holds_alternative<proto::RegistrationPending>(poll)) {
    const auto& current = status_.view().registration;
    if (current.phase != RegistrationPhase::Pending || current.request_id != request_id) {
      // `since` is the first time this request was seen pending; later polls keep it.
      status_.registration_pending(request_id, format_rfc3339_millis(unix_millis_now()));
    }
    co_return true;
  }
  if (const auto* approved = std::get_if<proto::RegistrationApproved>(&poll)) {
    config.worker_id = approved->worker_id;
    config.auth_token = approved->auth_token;
    config.registration_request_id.reset();
    config.registration_secret.reset();
    const bool by_token = config.join_token.has_value();
    config.join_token.reset();
    if (auto saved = runtime_.update_config(config); !saved) {
      logs.local(log::Level::Error, "register",
                 "approved, but the credentials could not be saved: " + saved.error().message);
      co_return true;
    }
    status_.registration_approved();
    logs.ship(log::Level::Info, "register",
              fmt::format("approved {} as {}",
                          by_token ? "through its join token" : "by the studio operator",
                          approved->worker_id));
    co_return true;
  }
  const auto& rejected = std::get<proto::RegistrationRejected>(poll);
  config.registration_request_id.reset();
  config.registration_secret.reset();
  // Kept, so that a restart before `register --reset` exits again instead of asking again.
  config.registration_rejected = rejected.reason.empty() ? "no reason given" : rejected.reason;
  (void)runtime_.update_config(config);
  status_.registration_rejected(rejected.reason);
  logs.local(log::Level::Warn, "register", rejection_guidance(rejected.reason));
  // Flowing off the end of a value coroutine is undefined (GCC 12 does not warn); UBSan in
  // the asan preset caught a garbage bool here.
  co_return true;
}

}  // namespace sw::worker
