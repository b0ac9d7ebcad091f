#include "engines/runner/runner_pool.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

#include "common/job_phase.h"
#include "common/log.h"
#include "models/admission.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::runner::pool");
const log::Logger kOutput("studio_worker::runner::output");
constexpr std::chrono::minutes kFootprintRecheck{5};

using Clock = std::chrono::steady_clock;

std::string replace_port(std::string arg, std::uint16_t port) {
  const std::string placeholder = "{port}";
  for (std::size_t at; (at = arg.find(placeholder)) != std::string::npos;) {
    arg.replace(at, placeholder.size(), std::to_string(port));
  }
  return arg;
}

std::string tail_of(const std::vector<std::string>& lines, std::size_t count) {
  std::string out;
  const std::size_t from = lines.size() > count ? lines.size() - count : 0;
  for (std::size_t i = from; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (!out.empty()) out += " | ";
    out += lines[i];
  }
  return out.empty() ? std::string("(no output)") : out;
}

// "120 s", "0.3 s": a stall time as the operator configured it.
std::string seconds_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return fmt::format("{} s", duration.count() / 1000);
  return fmt::format("{:.1f} s", static_cast<double>(duration.count()) / 1000.0);
}

// The time of the last sign of life, shared with the output reader and with requests.
class Life {
 public:
  Life() { touch(); }
  void touch() { at_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed); }
  Clock::time_point at() const {
    return Clock::time_point(Clock::duration(at_.load(std::memory_order_relaxed)));
  }

 private:
  std::atomic<Clock::rep> at_{0};
};

}  // namespace

struct RunnerPool::Runner {
  RunnerLaunch launch;
  std::unique_ptr<ChildProcess> child;
  std::uint16_t port = 0;
  int starts = 0;
  int users = 0;                   // guarded by the pool's mutex
  bool death_reported = false;     // guarded by the pool's mutex
  Clock::time_point last_used{};   // guarded by the pool's mutex
  std::shared_ptr<std::string> job_id = std::make_shared<std::string>();  // tags output lines
  std::shared_ptr<std::mutex> job_mutex = std::make_shared<std::mutex>();
  std::shared_ptr<Life> life = std::make_shared<Life>();
  std::optional<std::uint64_t> seen_reads;  // storage reads at the last look (reaper / starter)
  std::optional<Error> stall;               // guarded by the pool's mutex: killed for a stall
  std::string device;                       // the GPU it is pinned to (set before it is shared)
  std::optional<Clock::time_point> measured;  // guarded by the pool's mutex: last footprint look

  // True when the child read from storage since the last look (and notes the new count).
  bool read_since_last_look() {
    const auto reads = child->storage_read_bytes();
    const bool moved = reads && seen_reads && *reads != *seen_reads;
    if (reads) seen_reads = reads;
    return moved;
  }

  std::string base_url() const { return fmt::format("http://127.0.0.1:{}", port); }
};

namespace {

// Peak resident set of a process (VmHWM in /proc/<pid>/status, kB), GiB.
std::optional<double> peak_resident_gib(int pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("VmHWM:")) continue;
    std::istringstream fields(line.substr(6));
    double kib = 0;
    if (fields >> kib && kib > 0) return kib / (1024.0 * 1024.0);
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

RunnerPool::RunnerPool(RunnerPoolOptions options) : options_(std::move(options)) {
  if (!options_.process_memory_gib) options_.process_memory_gib = peak_resident_gib;
  reaper_ = std::thread([this] { reaper_loop(); });
}

RunnerPool::~RunnerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_reaper_.notify_all();
  reaper_.join();
  stop_all();
}

void RunnerPool::reaper_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = Clock::now();
    auto next = now + options_.idle_unload;
    std::vector<std::shared_ptr<Runner>> idle;
    std::vector<std::shared_ptr<Runner>> stalled;
    for (auto it = runners_.begin(); it != runners_.end();) {
      const auto& runner = it->second;
      if (runner->users > 0) {
        // In use: the inference deadline runs from the last sign of life, not from the start.
        const auto deadline = runner->life->at() + options_.inference_stall;
        if (deadline > now) {
          next = std::min(next, deadline);
        } else if (runner->read_since_last_look()) {
          runner->life->touch();  // paging a model in is progress too
          next = std::min(next, now + options_.inference_stall);
        } else {
          runner->stall = Error::make(
              Code::Timeout,
              "{} made no progress for {} (no token, no output, no reads); it was killed and "
              "the next job starts it afresh",
              runner->launch.executable.filename().string(),
              seconds_text(options_.inference_stall));
          stalled.push_back(runner);
          it = runners_.erase(it);  // the next acquire starts a fresh one
          continue;
        }
        ++it;
        continue;
      }
      if (runner->users == 0 && runner->last_used + options_.idle_unload <= now) {
        idle.push_back(runner);
        it = runners_.erase(it);
        continue;
      }
      if (runner->users == 0) next = std::min(next, runner->last_used + options_.idle_unload);
      ++it;
    }
    if (!idle.empty() || !stalled.empty()) {
      lock.unlock();
      for (const auto& runner : stalled) {
        kLog.warn("runner.stalled", {{"model", runner->launch.model},
                                     {"program", runner->launch.executable.filename().string()},
                                     {"pid", runner->child->pid()},
                                     {"stall_ms", options_.inference_stall.count()},
                                     {"action", "kill"}});
        // Its connection closes with it, which ends the request waiting on it at once.
        runner->child->stop(options_.stop_grace);
      }
      for (const auto& runner : idle) {
        kLog.info("runner.idle_unload", {{"model", runner->launch.model},
                                         {"program", runner->launch.executable.filename().string()},
                                         {"idle_ms", options_.idle_unload.count()}});
        runner->child->stop(options_.stop_grace);
      }
      lock.lock();
      continue;
    }
    wake_reaper_.wait_until(lock, next);
  }
}

std::optional<std::string> RunnerPool::admission_refusal(const std::string& key, double needed_gib,
                                                         bool one_gpu) const {
  {
    std::lock_guard lock(mutex_);
    if (runners_.count(key) != 0) return std::nullopt;
  }
  // Read without the lock: the probe may run nvidia-smi, and status() on the loop thread waits
  // for this lock.
  std::optional<double> free;
  bool read = false;
  if (options_.gpu_devices) {
    if (auto devices = options_.gpu_devices(); !devices.empty()) {
      if (!one_gpu) {
        free = total_free(devices);
        read = true;
      } else {
        std::lock_guard lock(mutex_);
        if (runners_.count(key) != 0) return std::nullopt;
        auto placed = place_on_gpu(std::move(devices), need_gib(key, needed_gib));
        if (placed) return std::nullopt;
        return placed.error();
      }
    }
  }
  if (!read && options_.free_memory_gib) free = options_.free_memory_gib();
  std::lock_guard lock(mutex_);
  if (runners_.count(key) != 0) return std::nullopt;
  if (free) {
    for (const auto& [other_key, runner] : runners_) {
      // would be unloaded for it
      if (runner->users == 0) *free += need_of(runner->launch);
    }
  }
  auto decision = models::admit(need_gib(key, needed_gib), free);
  if (decision.admitted) return std::nullopt;
  return decision.reason;
}

std::optional<double> RunnerPool::total_free(const std::vector<GpuDevice>& devices) {
  double sum = 0;
  for (const auto& device : devices) sum += device.free_gib;
  return sum;
}

std::vector<std::shared_ptr<RunnerPool::Runner>> RunnerPool::idle_on(
    const std::string& device) const {
  std::vector<std::shared_ptr<Runner>> idle;
  for (const auto& [key, runner] : runners_) {
    if (runner->users == 0 && (device.empty() || runner->device == device)) idle.push_back(runner);
  }
  std::sort(idle.begin(), idle.end(),
            [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
  return idle;
}

tl::expected<RunnerPool::Placement, std::string> RunnerPool::place_on_gpu(
    std::vector<GpuDevice> devices, double needed) const {
  std::stable_sort(devices.begin(), devices.end(),
                   [](const auto& a, const auto& b) { return a.free_gib > b.free_gib; });
  std::string refusal;
  for (const auto& device : devices) {
    std::optional<double> free = device.free_gib;
    auto decision = models::admit(needed, free);
    std::vector<std::shared_ptr<Runner>> victims;
    const auto idle = idle_on(device.id);
    for (std::size_t i = 0; !decision.admitted && i < idle.size(); ++i) {
      *free += need_of(idle[i]->launch);
      victims.push_back(idle[i]);
      decision = models::admit(needed, free);
    }
    if (decision.admitted) return Placement{device, std::move(victims)};
    // The GPU with the most free memory came closest: its numbers make the refusal.
    if (refusal.empty()) refusal = fmt::format("{} on GPU {}", decision.reason, device.id);
  }
  return tl::unexpected(std::move(refusal));
}

std::optional<double> RunnerPool::free_memory_gib() const {
  if (options_.gpu_devices) {
    std::optional<double> most;
    for (const auto& device : options_.gpu_devices()) {
      if (!most || device.free_gib > *most) most = device.free_gib;
    }
    if (most) return most;
  }
  return options_.free_memory_gib ? options_.free_memory_gib() : std::nullopt;
}

double RunnerPool::need_gib(const std::string& key, double estimate_gib) const {
  return options_.footprints ? options_.footprints->need_gib(key, estimate_gib) : estimate_gib;
}

void RunnerPool::learn_footprint(Runner& runner) {
  if (!options_.footprints || !runner.child->running()) return;
  {
    // Once after its first request, then at most every kFootprintRecheck: on a GPU box a look
    // runs nvidia-smi (tens of ms), which every job's result would otherwise wait for.
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (runner.measured && now - *runner.measured < kFootprintRecheck) return;
    runner.measured = now;
  }
  const int pid = runner.child->pid();
  const auto gib = options_.process_memory_gib(pid);
  if (!gib) return;
  options_.footprints->record(runner.launch.footprint_id(), *gib);
}

bool RunnerPool::is_resident(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = runners_.find(key);
  return it != runners_.end() && it->second->child->running();
}

std::vector<RunnerStatus> RunnerPool::status() const {
  std::lock_guard lock(mutex_);
  std::vector<RunnerStatus> out;
  for (const auto& [key, runner] : runners_) {
    out.push_back({key, runner->launch.model, runner->launch.executable.filename().string(),
                   runner->child->pid(), runner->port, need_of(runner->launch),
                   options_.footprints
                       ? options_.footprints->learned_gib(runner->launch.footprint_id())
                       : std::nullopt,
                   runner->device, runner->starts, runner->users > 0});
  }
  return out;
}

void RunnerPool::stop_all() {
  std::map<std::string, std::shared_ptr<Runner>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(runners_);
  }
  for (auto& [key, runner] : all) {
    kLog.info("runner.stop", {{"model", runner->launch.model}, {"pid", runner->child->pid()}});
    runner->child->stop(options_.stop_grace);
  }
}

std::optional<Error> RunnerPool::stalled(const std::shared_ptr<Runner>& runner) const {
  std::lock_guard lock(mutex_);
  return runner->stall;
}

bool RunnerPool::died(const std::shared_ptr<Runner>& runner) {
  // The request saw the connection fail; the exit may reach the waiter a moment later.
  const bool dead = runner->child->wait_for(std::chrono::seconds(2)).has_value();
  if (dead) report(runner, RunnerEvent::Died);
  return dead;
}

void RunnerPool::report(const std::shared_ptr<Runner>& runner, RunnerEvent event) {
  if (event == RunnerEvent::Died) {
    std::lock_guard lock(mutex_);
    if (std::exchange(runner->death_reported, true)) return;
  }
  if (options_.on_runner_event) {
    options_.on_runner_event(runner->launch.executable.filename().string(), event);
  }
}

std::size_t RunnerPool::set_unloaded(bool on) {
  std::vector<std::shared_ptr<Runner>> idle;
  {
    std::lock_guard lock(mutex_);
    unloaded_ = on;
    if (!on) return 0;
    for (auto it = runners_.begin(); it != runners_.end();) {
      if (it->second->users == 0) {
        idle.push_back(it->second);
        it = runners_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // All at once: the caller waits for the slowest one's grace, not the sum.
  std::vector<std::thread> stopping;
  for (const auto& runner : idle) {
    kLog.info("runner.unload", {{"model", runner->launch.model},
                                {"pid", runner->child->pid()},
                                {"reason", "paused with --unload"}});
    stopping.emplace_back([runner, grace = options_.stop_grace] { runner->child->stop(grace); });
  }
  for (auto& thread : stopping) thread.join();
  return idle.size();
}

bool RunnerPool::unloaded() const {
  std::lock_guard lock(mutex_);
  return unloaded_;
}

void RunnerPool::release(const std::shared_ptr<Runner>& runner) {
  learn_footprint(*runner);  // loaded and has served a request: what it holds now is its size
  bool unload = false;
  {
    std::lock_guard lock(mutex_);
    runner->users -= 1;
    runner->last_used = Clock::now();
    // Paused with --unload: a runner that just went idle is stopped instead of kept.
    if (unloaded_ && runner->users == 0) {
      if (auto it = runners_.find(runner->launch.key);
          it != runners_.end() && it->second == runner) {
        runners_.erase(it);
        unload = true;
      }
    }
  }
  {
    std::lock_guard lock(*runner->job_mutex);
    runner->job_id->clear();
  }
  if (unload) {
    kLog.info("runner.unload", {{"model", runner->launch.model},
                                {"pid", runner->child->pid()},
                                {"reason", "went idle while paused with --unload"}});
    runner->child->stop(options_.stop_grace);
  }
  wake_reaper_.notify_all();
}

Result<RunnerPool::Checkout> RunnerPool::checkout(const RunnerLaunch& launch,
                                                  const std::string& job_id) {
  std::shared_ptr<std::mutex> start_lock;
  {
    std::lock_guard lock(mutex_);
    auto& slot = start_locks_[launch.key];
    if (!slot) slot = std::make_shared<std::mutex>();
    start_lock = slot;
  }
  std::lock_guard starting(*start_lock);  // a second job for the same model waits for the first start

  std::shared_ptr<Runner> runner;
  std::vector<std::shared_ptr<Runner>> to_unload;
  int previous_starts = 0;
  // Free memory is read before the lock (the probe may run nvidia-smi; status() on the loop
  // thread waits for this lock), and only when a start looks needed.
  std::optional<double> free_read;
  bool read_free = false;
  std::vector<GpuDevice> devices;
  if (!is_resident(launch.key)) {
    if (options_.gpu_devices) devices = options_.gpu_devices();
    if (!devices.empty() && !launch.one_gpu) {
      // Split across the GPUs: their free memory together, and no pinning.
      free_read = total_free(devices);
      read_free = true;
      devices.clear();
    } else if (devices.empty() && options_.free_memory_gib) {
      free_read = options_.free_memory_gib();
      read_free = true;
    }
  }
  std::optional<GpuDevice> pinned;
  // A runner found dead is reported once the pool's lock is let go, whatever path this takes.
  struct DeathReport {
    const RunnerPoolOptions& options;
    std::string program;
    ~DeathReport() {
      if (!program.empty() && options.on_runner_event) {
        options.on_runner_event(program, RunnerEvent::Died);
      }
    }
  } death{options_, {}};
  {
    std::lock_guard lock(mutex_);
    if (auto it = runners_.find(launch.key); it != runners_.end()) {
      if (it->second->child->running()) {
        runner = it->second;
      } else {
        const auto exit = it->second->child->exit_status();
        kLog.warn("runner.died", {{"model", launch.model},
                                  {"pid", it->second->child->pid()},
                                  {"exit", exit ? exit->describe() : std::string("unknown")},
                                  {"action", "restart"}});
        previous_starts = it->second->starts;
        if (!std::exchange(it->second->death_reported, true)) {
          death.program = launch.executable.filename().string();
        }
        runners_.erase(it);
      }
    }
    if (!runner && !devices.empty()) {
      // On a GPU: the one with the most free memory that admits it (idle runners there stopped
      // when that makes room), and the runner is pinned to it.
      auto placed = place_on_gpu(devices, need_of(launch));
      if (!placed) return fail(Error::unavailable("{}", placed.error()));
      pinned = placed->device;
      to_unload = std::move(placed->to_unload);
      for (const auto& victim : to_unload) runners_.erase(victim->launch.key);
    } else if (!runner) {
      // Admission, unloading idle runners (least recently used first) when that makes room.
      // A runner that died since the read above: read now, under the lock (rare).
      std::optional<double> free = free_read;
      if (!read_free && options_.free_memory_gib) free = options_.free_memory_gib();
      const auto idle = idle_on({});
      const double needed = need_of(launch);
      auto decision = models::admit(needed, free);
      for (std::size_t i = 0; !decision.admitted && free && i < idle.size(); ++i) {
        *free += need_of(idle[i]->launch);
        to_unload.push_back(idle[i]);
        decision = models::admit(needed, free);
      }
      if (!decision.admitted) {
        return fail(Error::unavailable("{}", decision.reason));
      }
      for (const auto& victim : to_unload) runners_.erase(victim->launch.key);
    }
    if (runner) {
      runner->users += 1;
      runner->life->touch();  // the inference deadline starts with the request
    }
  }
  wake_reaper_.notify_all();  // it watches in-use runners for stalls
  for (const auto& victim : to_unload) {
    kLog.info("runner.unload_for_memory",
              {{"model", victim->launch.model}, {"for_model", launch.model}});
    victim->child->stop(options_.stop_grace);
  }
  if (!runner) {
    RunnerLaunch placed = launch;
    if (pinned) {
      // nvidia-smi numbers GPUs by PCI bus; CUDA, unless told, fastest first.
      if (pinned->visible_env == "CUDA_VISIBLE_DEVICES") {
        placed.extra_env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
      }
      placed.extra_env.push_back(pinned->visible_env + "=" + pinned->id);
    }
    auto started = start_runner(placed, job_id, pinned ? pinned->id : std::string());
    if (!started) return fail(started.error());
    runner = *started;
    runner->starts = previous_starts + 1;
    report(runner, RunnerEvent::Started);
    std::lock_guard lock(mutex_);
    runner->users = 1;
    runner->life->touch();
    runners_[launch.key] = runner;
    wake_reaper_.notify_all();
  } else {
    kLog.debug("runner.reuse", {{"model", launch.model}, {"job_id", job_id}, {"pid", runner->child->pid()}});
  }
  {
    std::lock_guard lock(*runner->job_mutex);
    *runner->job_id = job_id;
  }
  return Checkout{runner, RunnerCall{runner->base_url(), [life = runner->life] { life->touch(); }}};
}

Result<std::shared_ptr<RunnerPool::Runner>> RunnerPool::start_runner(const RunnerLaunch& launch,
                                                                     const std::string& job_id,
                                                                     const std::string& device) {
  const std::string program = launch.executable.filename().string();
  Error last_error = Error::unavailable("{} did not start", program);
  // A port picked free can be taken before the runner binds it: one more try on another port.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto port = pick_free_loopback_port();
    if (!port) return fail(port.error());
    auto runner = std::make_shared<Runner>();
    runner->launch = launch;
    runner->device = device;
    runner->port = *port;
    *runner->job_id = job_id;
    ChildSpec spec;
    spec.executable = launch.executable;
    for (const std::string& arg : launch.args) spec.args.push_back(replace_port(arg, *port));
    spec.extra_env = launch.extra_env;
    spec.on_output = [life = runner->life] { life->touch(); };
    spec.on_line = [tag = runner->job_id, guard = runner->job_mutex, program,
                    model = launch.model](std::string_view line) {
      std::string job;
      {
        std::lock_guard lock(*guard);
        job = *tag;
      }
      kOutput.info("runner.output",
                   {{"program", program}, {"model", model}, {"job_id", job}, {"line", line}});
    };
    const auto begun = Clock::now();
    report_phase_began(JobPhase::Load);
    auto child = ChildProcess::start(std::move(spec));
    if (!child) return fail(child.error());
    runner->child = std::move(*child);
    kLog.info("runner.starting", {{"model", launch.model},
                                  {"program", program},
                                  {"pid", runner->child->pid()},
                                  {"port", *port},
                                  {"device", device.empty() ? std::string("-") : device},
                                  {"memory_gib", launch.memory_gib}});

    const std::string health_url = runner->base_url() + launch.health_path;
    runner->life->touch();
    runner->read_since_last_look();
    std::optional<std::string> last_answer;  // the health answer, while it is not ready
    bool ready = false;
    while (!ready) {
      if (auto exit = runner->child->exit_status()) {
        last_error = Error::unavailable("{} exited while starting ({}): {}", program,
                                        exit->describe(), tail_of(runner->child->last_lines(), 3));
        break;
      }
      transfer::HttpCall probe;
      probe.url = health_url;
      probe.timeout = std::chrono::seconds(2);
      auto answer = transfer::http_call(probe);
      if (answer && answer->status == 200) {
        ready = true;
        break;
      }
      // A new health answer (refused → 503 "loading" → a progress figure) or storage reads
      // are progress, as is any output (on_output); the deadline runs from the last of them.
      std::string said = answer ? fmt::format("{} {}", answer->status, answer->body)
                                : std::string(to_string(answer.error().code));
      if (said != last_answer) {
        last_answer = std::move(said);
        runner->life->touch();
      }
      if (runner->read_since_last_look()) runner->life->touch();
      if (Clock::now() - runner->life->at() >= options_.load_stall) {
        last_error = Error::make(
            Code::Timeout,
            "{} made no progress loading {} for {} (no output, no change in its health answer, "
            "no reads) and was stopped: {}",
            program, launch.model, seconds_text(options_.load_stall),
            tail_of(runner->child->last_lines(), 3));
        kLog.warn("runner.load_stalled", {{"model", launch.model},
                                          {"program", program},
                                          {"pid", runner->child->pid()},
                                          {"stall_ms", options_.load_stall.count()}});
        runner->child->stop(options_.stop_grace);
        return fail(last_error);
      }
      // The child's exit wakes this wait at once; otherwise poll again shortly.
      runner->child->wait_for(options_.health_poll);
    }
    if (ready) {
      report_phase(JobPhase::Load, Clock::now() - begun);
      kLog.info("runner.ready", {{"model", launch.model},
                                 {"program", program},
                                 {"port", *port},
                                 {"start_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  Clock::now() - begun).count()}});
      return runner;
    }
    kLog.warn("runner.start_failed", {{"model", launch.model}, {"error", last_error.message}});
  }
  return fail(last_error);
}

}  // namespace sw::engines
