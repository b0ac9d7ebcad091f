#include "worker/runtime.h"

#include <pwd.h>
#include <unistd.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/clock.h"
#include "engines/composite_engine.h"

namespace sw::worker {
namespace {

std::string machine_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) == 0 && buffer[0] != '\0') return buffer;
  return "unknown-host";
}

std::string user_name() {
  if (const passwd* entry = ::getpwuid(::geteuid()); entry != nullptr && entry->pw_name) {
    return entry->pw_name;
  }
  if (const char* user = std::getenv("USER"); user != nullptr && *user != '\0') return user;
  return "unknown-user";
}

}  // namespace

std::string prompt_for(const proto::Task& task) {
  return std::visit(
      [](const auto& params) -> std::string {
        using T = std::decay_t<decltype(params)>;
        if constexpr (std::is_same_v<T, proto::ImageParams> ||
                      std::is_same_v<T, proto::VideoParams>) {
          return params.prompt;
        } else if constexpr (std::is_same_v<T, proto::LlmParams>) {
          return params.messages.empty() ? std::string() : params.messages.back().content;
        } else if constexpr (std::is_same_v<T, proto::AudioSttParams>) {
          return params.input_url;
        } else {
          return params.text;
        }
      },
      task.params);
}

RuntimeTimings scaled(const RuntimeTimings& timings, double factor) {
  const auto scale = [factor](std::chrono::milliseconds value) {
    return std::chrono::milliseconds(std::max<std::int64_t>(
        1, static_cast<std::int64_t>(static_cast<double>(value.count()) * factor)));
  };
  RuntimeTimings out = timings;
  for (auto* field :
       {&out.heartbeat_interval, &out.log_flush_interval, &out.connect_timeout,
        &out.read_idle_timeout, &out.close_timeout, &out.credential_poll, &out.registration_poll,
        &out.registration_wait, &out.backoff_base, &out.backoff_cap, &out.outbox_backoff_base,
        &out.shutdown_grace, &out.http_timeout, &out.completion_ack_wait}) {
    *field = scale(*field);
  }
  return out;
}

std::chrono::milliseconds reconnect_delay(std::uint32_t attempt, std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap, double unit_random) {
  const std::uint32_t doublings = std::min<std::uint32_t>(attempt == 0 ? 0 : attempt - 1, 20);
  const double nominal =
      std::min(static_cast<double>(cap.count()), base.count() * std::ldexp(1.0, doublings));
  const double spread = 0.5 + std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(nominal * spread));
}

Runtime::Runtime(boost::asio::any_io_executor loop, boost::asio::any_io_executor pool,
                 std::filesystem::path config_path, WorkerConfig config, engines::Engine& engine,
                 RuntimeTimings timings, double vram_total_gb)
    : loop_(std::move(loop)),
      pool_(std::move(pool)),
      config_path_(std::move(config_path)),
      config_(std::move(config)),
      engine_(engine),
      timings_(timings),
      vram_total_gb_(vram_total_gb),
      engine_capabilities_(engine.capabilities()),
      advertised_(engine_capabilities_),
      machine_name_(machine_name()),
      username_(user_name()),
      gate_(config_.max_concurrent_jobs) {}

Status Runtime::update_config(WorkerConfig next) {
  // The state goes to state.toml; config.toml is written only when a setting changed.
  SW_TRY(save_changes(config_path_, config_, next));
  const bool credentials_changed =
      next.worker_id != config_.worker_id || next.auth_token != config_.auth_token ||
      next.api_base_url != config_.api_base_url;
  config_ = std::move(next);
  gate_.set_max_jobs(config_.max_concurrent_jobs);
  if (credentials_changed && on_credentials_changed) on_credentials_changed();
  return {};
}

proto::WorkerCapabilities Runtime::capabilities() const {
  proto::WorkerCapabilities caps;
  caps.machine_name = machine_name_;
  caps.username = username_;
  caps.agent_version = SW_VERSION;
  caps.engine = "multi";
  caps.vram_total_gb = vram_total_gb_;
  caps.vram_threshold_gb = config_.vram_threshold_gb;
  caps.auto_enabled = !paused_;
  caps.auto_start = config_.auto_start;
  caps.auto_update = config_.auto_update_enabled;
  caps.start_minimised = config_.start_minimised;
  caps.only_when_idle = config_.only_when_idle;
  caps.supported_models = engines::flatten_models(advertised_);
  caps.task_kinds = engines::task_kinds_of(advertised_);
  for (const auto& [kind, models] : advertised_) {
    // A kind no engine serves is not listed at all (§1.5).
    if (!models.empty()) caps.supported_models_per_kind[kind] = models;
  }
  return caps;
}

void Runtime::set_advertised_scan(std::function<engines::Capabilities()> scan) {
  advertised_scan_ = std::move(scan);
  if (advertised_scan_) advertised_ = advertised_scan_();
}

void Runtime::refresh_advertised() {
  if (!advertised_scan_ || scan_running_) return;
  scan_running_ = true;
  // The daemon joins the pool before this Runtime goes; a result posted after the loop stopped
  // is never run (it is dropped with the loop's queue).
  boost::asio::post(pool_, [this, scan = advertised_scan_] {
    engines::Capabilities scanned = scan();
    boost::asio::post(loop_, [this, scanned = std::move(scanned)]() mutable {
      advertised_ = std::move(scanned);
      scan_running_ = false;
    });
  });
}

bool Runtime::set_paused(bool paused) {
  if (paused != paused_) {
    paused_ = paused;
    logs_.ship(log::Level::Info, "ws",
               paused ? "claiming paused by operator; new offers are rejected until resumed"
                      : "claiming resumed by operator; accepting new offers again");
  }
  return paused_;
}

void Runtime::job_started(JobRecord record) {
  record.status = "running";
  record.started_at = format_rfc3339_millis(unix_millis_now());
  if (record.source == "studio" &&
      std::find(studio_jobs_.begin(), studio_jobs_.end(), record.job_id) == studio_jobs_.end()) {
    studio_jobs_.push_back(record.job_id);
  }
  active_[record.job_id] = std::move(record);
}

void Runtime::job_finished(const std::string& job_id, bool ok, std::string reason) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  JobRecord record = std::move(it->second);
  active_.erase(it);
  record.status = ok ? "completed" : "failed";
  record.reason = std::move(reason);
  record.finished_at = format_rfc3339_millis(unix_millis_now());
  std::erase(studio_jobs_, job_id);
  auto& ring = record.source == "studio" ? recent_jobs_ : local_jobs_;
  ring.push_front(std::move(record));
  while (ring.size() > kRecentJobs) ring.pop_back();
  if (on_job_finished) on_job_finished();
}

std::vector<JobRecord> Runtime::active_jobs() const {
  std::vector<JobRecord> out;
  for (const auto& [id, record] : active_) out.push_back(record);
  return out;
}

std::string Runtime::next_local_job_id() {
  return fmt::format("local-{}-{}", unix_millis_now(), ++local_counter_);
}

}  // namespace sw::worker
