#include "service/service_notify.h"

#include <systemd/sd-daemon.h>

#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace sw::service {

namespace asio = boost::asio;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::service");
  return instance;
}

}  // namespace

Notifier Notifier::from_environment() {
  Notifier notifier;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  notifier.enabled_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // > 0: WATCHDOG_USEC is set and valid and WATCHDOG_PID is unset or ours.
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    notifier.watchdog_timeout_ = std::chrono::microseconds(usec);
  }
  return notifier;
}

std::string Notifier::message(
    std::initializer_list<std::pair<std::string_view, std::string_view>> assignments) {
  std::string out;
  for (const auto& [key, value] : assignments) {
    if (!out.empty()) out += '\n';
    out += key;
    out += '=';
    for (const char c : value) out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out;
}

Status Notifier::send(const std::string& text) const {
  if (!enabled_) return {};
  const int rc = ::sd_notify(0, text.c_str());
  if (rc < 0) {
    return fail(
        Error::io("sd_notify(\"{}\"): {}", text.substr(0, text.find('\n')), std::strerror(-rc)));
  }
  return {};
}

Status Notifier::ready(std::string_view status) const {
  return send(status.empty() ? message({{"READY", "1"}})
                             : message({{"READY", "1"}, {"STATUS", status}}));
}

Status Notifier::stopping(std::string_view status) const {
  return send(status.empty() ? message({{"STOPPING", "1"}})
                             : message({{"STOPPING", "1"}, {"STATUS", status}}));
}

Status Notifier::status(std::string_view status) const {
  return send(message({{"STATUS", status}}));
}

Status Notifier::watchdog() const {
  return send(message({{"WATCHDOG", "1"}}));
}

struct WatchdogPinger::State {
  State(asio::any_io_executor executor, Notifier n, std::chrono::microseconds every)
      : timer(std::move(executor)), notifier(std::move(n)), interval(every) {}
  asio::steady_timer timer;
  Notifier notifier;
  std::chrono::microseconds interval;
  bool failing = false;  // the last ping failed: logged once until one succeeds
};

namespace {

// One tick: ping, then wait for the next. Holds the state weakly: a tick that completes after
// the pinger is gone (its timer cancelled) does nothing.
void schedule(const std::shared_ptr<WatchdogPinger::State>& state) {
  state->timer.expires_after(state->interval);
  state->timer.async_wait(
      [weak = std::weak_ptr<WatchdogPinger::State>(state)](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        if (auto sent = self->notifier.watchdog(); !sent) {
          if (!self->failing) {
            logger().warn("service.watchdog_ping_failed", {{"error", sent.error().message}});
          }
          self->failing = true;
        } else {
          self->failing = false;
        }
        schedule(self);
      });
}

}  // namespace

WatchdogPinger::WatchdogPinger(asio::any_io_executor executor, Notifier notifier) {
  const auto timeout = notifier.watchdog_timeout();
  if (!notifier.enabled() || !timeout) return;
  // Half the timeout, as sd_watchdog_enabled(3) advises: one late tick does not trip it.
  const auto every = std::max(*timeout / 2, std::chrono::microseconds(1000));
  state_ = std::make_shared<State>(std::move(executor), std::move(notifier), every);
  logger().info(
      "service.watchdog",
      {{"timeout_ms", std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count()},
       {"ping_every_ms", std::chrono::duration_cast<std::chrono::milliseconds>(every).count()}});
  schedule(state_);
}

WatchdogPinger::~WatchdogPinger() {
  stop();
}

void WatchdogPinger::stop() {
  if (!state_) return;
  state_->timer.cancel();
  state_.reset();
}

}  // namespace sw::service
