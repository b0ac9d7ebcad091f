#pragma once
// The daemon's shared state: live config, pause flag, the job gate, jobs in flight and the
// recent-jobs rings, breadcrumbs. Owned by the Daemon; the session, the registrar and the local
// API hold a reference. The session's and registration's live states are not here: they are the
// StatusBoard's (status.h), handed to whoever changes them. Loop-thread only, except the members
// marked thread-safe (logs, gate, engine).

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engines/engine.h"
#include "proto/types.h"
#include "worker/config.h"
#include "worker/job_gate.h"
#include "worker/log_hub.h"

namespace sw::worker {

using namespace std::chrono_literals;

// Every timing constant of reference-worker.md §3.11 that the runtime uses; tests scale them.
struct RuntimeTimings {
  std::chrono::milliseconds heartbeat_interval = 5s;
  std::chrono::milliseconds log_flush_interval = 1s;
  std::chrono::milliseconds connect_timeout = 15s;
  std::chrono::milliseconds read_idle_timeout = 20s;
  std::chrono::milliseconds close_timeout = 5s;
  std::chrono::milliseconds credential_poll = 1s;
  // Registration polls (ours, issue 17; the reference polls every 30 s): at least this long from
  // the start of one poll to the next, and each asks the studio to hold it up to
  // registration_wait until the operator decides (studio-server does; others answer at once, and
  // are then polled once per registration_poll). Failures back off, doubling up to backoff_cap.
  std::chrono::milliseconds registration_poll = 1s;
  std::chrono::milliseconds registration_wait = 25s;
  std::chrono::milliseconds backoff_base = 1s;
  std::chrono::milliseconds backoff_cap = 30s;
  std::chrono::milliseconds outbox_backoff_base = 1s;  // first retry of a failed delivery
  std::chrono::milliseconds shutdown_grace = 5s;
  std::chrono::milliseconds http_timeout = 60s;
  // A completeJson not acknowledged within this is delivered again (ours, issue 7).
  std::chrono::milliseconds completion_ack_wait = 10s;
};

// Every timing multiplied by `factor` (rehearsals and chaos tests run the protocol faster).
RuntimeTimings scaled(const RuntimeTimings& timings, double factor);

// A job as GET /daemon/status and GET /jobs show it (JobWire, §6.2).
struct JobRecord {
  std::string job_id;
  proto::TaskKind kind = proto::TaskKind::Image;
  std::string model;
  std::string prompt;
  std::string source = "studio";  // studio | local
  std::string status = "running";  // running | completed | failed
  std::string reason;
  std::string started_at;
  std::string finished_at;
};

// The full prompt of a task, as completeJson.prompt and the upload's `prompt` part carry it
// (§1.3): image/video prompt, TTS text, the last message of a chat, an STT job's inputUrl.
std::string prompt_for(const proto::Task& task);

// The backoff before reconnect attempt `attempt` (1-based): base × 2^(attempt−1) capped at `cap`,
// then spread by `unit_random` ∈ [0, 1) over [½, 1½) of that, so that a fleet that lost its
// studio at once does not come back in lockstep.
std::chrono::milliseconds reconnect_delay(std::uint32_t attempt, std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap, double unit_random);

class Outbox;

class Runtime {
 public:
  static constexpr std::size_t kRecentJobs = 50;

  Runtime(boost::asio::any_io_executor loop, boost::asio::any_io_executor pool,
          std::filesystem::path config_path, WorkerConfig config, engines::Engine& engine,
          RuntimeTimings timings, double vram_total_gb);

  boost::asio::any_io_executor loop() const { return loop_; }
  boost::asio::any_io_executor pool() const { return pool_; }
  const std::filesystem::path& config_path() const { return config_path_; }
  const WorkerConfig& config() const { return config_; }
  // Saves first, then applies: a config that could not be written is not used either. Only what
  // changed is written (save_changes): the state to state.toml, settings to config.toml.
  Status update_config(WorkerConfig next);
  const RuntimeTimings& timings() const { return timings_; }
  engines::Engine& engine() { return engine_; }  // thread-safe
  LogHub& logs() { return logs_; }                // thread-safe
  const LogHub& logs() const { return logs_; }
  // The durable result outbox (owned by the daemon; set before the session starts).
  Outbox& outbox() const { return *outbox_; }  // thread-safe
  void attach_outbox(Outbox& outbox) { outbox_ = &outbox; }
  JobGate& gate() { return gate_; }  // thread-safe
  const JobGate& gate() const { return gate_; }
  double vram_total_gb() const { return vram_total_gb_; }
  // The engine's own names per kind (`llama-cpp:*`, `synthetic-llm`, …), read once: they are
  // fixed for the process.
  const engines::Capabilities& engine_capabilities() const { return engine_capabilities_; }

  // The capability snapshot, rebuilt from the live config on every call (§1.5). Its per-kind
  // lists are the latest advertised ones (the engines' names plus the model ids the cache holds):
  // engine_capabilities() until a scan has run.
  proto::WorkerCapabilities capabilities() const;

  // Where the advertised per-kind lists come from: blocking (it reads the model cache), so it
  // runs on the pool, except once here, synchronously, so that the first hello carries it. Call
  // before the loop runs.
  void set_advertised_scan(std::function<engines::Capabilities()> scan);
  // Starts a scan on the pool unless one is running; its result replaces the advertised lists on
  // the loop. The session calls it once per heartbeat, so the cache is read at most that often.
  void refresh_advertised();

  bool paused() const { return paused_; }
  // Logs the transition once (§1.10); returns the new value.
  bool set_paused(bool paused);

  // Jobs: started, then finished into the recent ring of their source.
  void job_started(JobRecord record);
  void job_finished(const std::string& job_id, bool ok, std::string reason);
  std::vector<JobRecord> active_jobs() const;
  const std::deque<JobRecord>& recent_jobs() const { return recent_jobs_; }
  const std::deque<JobRecord>& local_jobs() const { return local_jobs_; }
  std::string next_local_job_id();
  // The oldest studio job running now (heartbeat currentJobId), if any.
  std::optional<std::string> current_studio_job() const {
    if (studio_jobs_.empty()) return std::nullopt;
    return studio_jobs_.front();
  }
  // Every studio job running now, oldest first (heartbeat capacity.jobIds, feature "capacity").
  const std::vector<std::string>& studio_jobs() const { return studio_jobs_; }

  // Wakes whoever waits for credentials (the session) after registration or a config change.
  std::function<void()> on_credentials_changed;
  // Called after every job_finished (the daemon's shutdown waits on it).
  std::function<void()> on_job_finished;
  // Asks the daemon to shut down (local API /daemon/shutdown).
  std::function<void()> on_shutdown_requested;
  // Registration reset from the local API: the registrar starts over.
  std::function<void()> on_registration_reset;
  // Set once by the daemon's stop, after the grace and the session's close: every studio HTTP
  // call still on the pool (StudioEndpoint::cancelled) ends within about a second, so that the
  // pool's join, and with it the process, does not wait out a held poll or an upload. Thread-safe.
  const std::shared_ptr<std::atomic<bool>> studio_calls_cancelled =
      std::make_shared<std::atomic<bool>>(false);

 private:
  boost::asio::any_io_executor loop_;
  boost::asio::any_io_executor pool_;
  std::filesystem::path config_path_;
  WorkerConfig config_;
  engines::Engine& engine_;
  RuntimeTimings timings_;
  double vram_total_gb_;
  engines::Capabilities engine_capabilities_;
  engines::Capabilities advertised_;
  std::function<engines::Capabilities()> advertised_scan_;
  bool scan_running_ = false;
  std::string machine_name_;
  std::string username_;
  bool paused_ = false;
  LogHub logs_;
  JobGate gate_;
  Outbox* outbox_ = nullptr;
  std::map<std::string, JobRecord> active_;
  std::vector<std::string> studio_jobs_;
  std::deque<JobRecord> recent_jobs_;
  std::deque<JobRecord> local_jobs_;
  std::uint64_t local_counter_ = 0;
};

}  // namespace sw::worker
