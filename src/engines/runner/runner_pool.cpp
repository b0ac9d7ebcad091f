#include "engines/runner/runner_pool.h"

#include <algorithm>

#include "common/log.h"
#include "models/admission.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::runner::pool");
const log::Logger kOutput("studio_worker::runner::output");

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

}  // namespace

struct RunnerPool::Runner {
  RunnerLaunch launch;
  std::unique_ptr<ChildProcess> child;
  std::uint16_t port = 0;
  int starts = 0;
  int users = 0;                   // guarded by the pool's mutex
  Clock::time_point last_used{};   // guarded by the pool's mutex
  std::shared_ptr<std::string> job_id = std::make_shared<std::string>();  // tags output lines
  std::shared_ptr<std::mutex> job_mutex = std::make_shared<std::mutex>();

  std::string base_url() const { return fmt::format("http://127.0.0.1:{}", port); }
};

RunnerPool::RunnerPool(RunnerPoolOptions options) : options_(std::move(options)) {
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
    for (auto it = runners_.begin(); it != runners_.end();) {
      const auto& runner = it->second;
      if (runner->users == 0 && runner->last_used + options_.idle_unload <= now) {
        idle.push_back(runner);
        it = runners_.erase(it);
        continue;
      }
      if (runner->users == 0) next = std::min(next, runner->last_used + options_.idle_unload);
      ++it;
    }
    if (!idle.empty()) {
      lock.unlock();
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

std::optional<std::string> RunnerPool::admission_refusal(const std::string& key,
                                                         double needed_gib) const {
  std::lock_guard lock(mutex_);
  if (runners_.count(key) != 0) return std::nullopt;
  std::optional<double> free = options_.free_memory_gib ? options_.free_memory_gib() : std::nullopt;
  if (free) {
    for (const auto& [other_key, runner] : runners_) {
      if (runner->users == 0) *free += runner->launch.memory_gib;  // would be unloaded for it
    }
  }
  auto decision = models::admit(needed_gib, free);
  if (decision.admitted) return std::nullopt;
  return decision.reason;
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
                   runner->child->pid(), runner->port, runner->launch.memory_gib, runner->starts,
                   runner->users > 0});
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

bool RunnerPool::died(const std::shared_ptr<Runner>& runner) const {
  // The request saw the connection fail; the exit may reach the waiter a moment later.
  return runner->child->wait_for(std::chrono::seconds(2)).has_value();
}

void RunnerPool::release(const std::shared_ptr<Runner>& runner) {
  {
    std::lock_guard lock(mutex_);
    runner->users -= 1;
    runner->last_used = Clock::now();
  }
  {
    std::lock_guard lock(*runner->job_mutex);
    runner->job_id->clear();
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
        runners_.erase(it);
      }
    }
    if (!runner) {
      // Admission, unloading idle runners (least recently used first) when that makes room.
      std::optional<double> free =
          options_.free_memory_gib ? options_.free_memory_gib() : std::nullopt;
      std::vector<std::shared_ptr<Runner>> idle;
      for (const auto& [key, other] : runners_) {
        if (other->users == 0) idle.push_back(other);
      }
      std::sort(idle.begin(), idle.end(),
                [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
      auto decision = models::admit(launch.memory_gib, free);
      for (std::size_t i = 0; !decision.admitted && free && i < idle.size(); ++i) {
        *free += idle[i]->launch.memory_gib;
        to_unload.push_back(idle[i]);
        decision = models::admit(launch.memory_gib, free);
      }
      if (!decision.admitted) {
        return fail(Error::unavailable("{}", decision.reason));
      }
      for (const auto& victim : to_unload) runners_.erase(victim->launch.key);
    }
    if (runner) runner->users += 1;
  }
  for (const auto& victim : to_unload) {
    kLog.info("runner.unload_for_memory",
              {{"model", victim->launch.model}, {"for_model", launch.model}});
    victim->child->stop(options_.stop_grace);
  }
  if (!runner) {
    auto started = start_runner(launch, job_id);
    if (!started) return fail(started.error());
    runner = *started;
    runner->starts = previous_starts + 1;
    std::lock_guard lock(mutex_);
    runner->users = 1;
    runners_[launch.key] = runner;
  } else {
    kLog.debug("runner.reuse", {{"model", launch.model}, {"job_id", job_id}, {"pid", runner->child->pid()}});
  }
  {
    std::lock_guard lock(*runner->job_mutex);
    *runner->job_id = job_id;
  }
  return Checkout{runner, runner->base_url()};
}

Result<std::shared_ptr<RunnerPool::Runner>> RunnerPool::start_runner(const RunnerLaunch& launch,
                                                                     const std::string& job_id) {
  const std::string program = launch.executable.filename().string();
  Error last_error = Error::unavailable("{} did not start", program);
  // A port picked free can be taken before the runner binds it: one more try on another port.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto port = pick_free_loopback_port();
    if (!port) return fail(port.error());
    auto runner = std::make_shared<Runner>();
    runner->launch = launch;
    runner->port = *port;
    *runner->job_id = job_id;
    ChildSpec spec;
    spec.executable = launch.executable;
    for (const std::string& arg : launch.args) spec.args.push_back(replace_port(arg, *port));
    spec.extra_env = launch.extra_env;
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
    auto child = ChildProcess::start(std::move(spec));
    if (!child) return fail(child.error());
    runner->child = std::move(*child);
    kLog.info("runner.starting", {{"model", launch.model},
                                  {"program", program},
                                  {"pid", runner->child->pid()},
                                  {"port", *port},
                                  {"memory_gib", launch.memory_gib}});

    const std::string health_url = runner->base_url() + launch.health_path;
    const auto deadline = begun + launch.start_timeout;
    bool ready = false;
    while (!ready) {
      if (auto exit = runner->child->exit_status()) {
        last_error = Error::unavailable("{} exited while starting ({}): {}", program,
                                        exit->describe(), tail_of(runner->child->last_lines(), 3));
        break;
      }
      if (Clock::now() >= deadline) {
        last_error = Error::make(Code::Timeout, "{} was not ready within {} s: {}", program,
                                 std::chrono::duration_cast<std::chrono::seconds>(
                                     launch.start_timeout).count(),
                                 tail_of(runner->child->last_lines(), 3));
        runner->child->stop(options_.stop_grace);
        return fail(last_error);
      }
      transfer::HttpCall probe;
      probe.url = health_url;
      probe.timeout = std::chrono::seconds(2);
      auto answer = transfer::http_call(probe);
      if (answer && answer->status == 200) {
        ready = true;
        break;
      }
      // The child's exit wakes this wait at once; otherwise poll again shortly.
      runner->child->wait_for(options_.health_poll);
    }
    if (ready) {
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
