#include "engines/runner/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "common/file_io.h"
#include "common/log.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::runner::process");
constexpr std::size_t kKeptLines = 50;
constexpr std::chrono::seconds kOutputDrain{1};

// Everything the child needs, built before the fork: between fork and exec the child of a
// multithreaded process may make only async-signal-safe calls (fork(2), POSIX). A lock another
// thread held at the fork (the allocator's, the logger's) stays held for ever in the child, so a
// malloc there can hang the start. Boost.Process v2 (1.81) allocates there (its launcher copies
// the io_context's services into a std::vector in notify_fork), which hung runner starts under
// ASan, whose allocator has no fork handler: hence this launcher, which only makes system calls.
struct ExecPlan {
  std::vector<std::string> strings;  // owns argv's and envp's characters
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string path;
  pid_t parent = 0;
  int stdin_fd = -1;   // /dev/null
  int output_fd = -1;  // stdout and stderr
};

// The child's side: a process group of its own (so stop() reaches its helpers too), a SIGKILL when
// the worker dies, default signal dispositions and mask (ignored signals survive exec), every
// inherited descriptor above stderr closed at exec (the worker's sockets and locks must not leak
// into a model server). System calls only.
// `report_fd` is close-on-exec: EOF tells the parent exec happened, an int is the errno that
// stopped it.
[[noreturn]] void report_and_exit(int report_fd, int error) {
  ssize_t ignored = ::write(report_fd, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void exec_child(const ExecPlan& plan, int report_fd) {
  auto fail_with = [report_fd](int error) { report_and_exit(report_fd, error); };
  if (::dup2(plan.stdin_fd, STDIN_FILENO) < 0 || ::dup2(plan.output_fd, STDOUT_FILENO) < 0 ||
      ::dup2(plan.output_fd, STDERR_FILENO) < 0) {
    fail_with(errno);
  }
  if (::setpgid(0, 0) != 0) fail_with(errno);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_with(errno);
  if (::getppid() != plan.parent) ::_exit(127);  // the worker died before prctl took effect
  struct sigaction defaults {};
  defaults.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &defaults, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execve(plan.path.c_str(), plan.argv.data(), plan.envp.data());
  report_and_exit(report_fd, errno);
}

// Forks and execs `plan`; the child's pid, or the errno that kept it from running the program.
Result<pid_t> fork_exec(const ExecPlan& plan, const std::string& name) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    return fail(Error::io("cannot create a pipe for {}: {}", name, std::strerror(errno)));
  }
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return fail(Error::unavailable("cannot fork for {}: {}", name, std::strerror(errno)));
  if (pid == 0) exec_child(plan, report_write.get());
  report_write.reset();
  int child_errno = 0;
  ssize_t got;
  do {
    got = ::read(report_read.get(), &child_errno, sizeof child_errno);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return pid;  // the report pipe closed at exec: the program runs
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got != static_cast<ssize_t>(sizeof child_errno)) {
    return fail(Error::unavailable("{} did not start (exit status {})", name, status));
  }
  return fail(Error::unavailable("{}", std::strerror(child_errno)));
}

// PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the process. Children are
// therefore forked from one thread that lives as long as the process, never from a pool thread
// that might be retired.
class SpawnThread {
 public:
  static SpawnThread& instance() {
    static SpawnThread* thread = new SpawnThread();  // never destroyed: children die with us
    return *thread;
  }
  template <typename F>
  auto run(F&& work) -> decltype(work()) {
    using R = decltype(work());
    std::packaged_task<R()> task(std::forward<F>(work));
    auto future = task.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back([&task] { task(); });
    }
    wake_.notify_one();
    return future.get();
  }

 private:
  SpawnThread() {
    std::thread([this] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock lock(mutex_);
          wake_.wait(lock, [this] { return !queue_.empty(); });
          job = std::move(queue_.front());
          queue_.pop_front();
        }
        job();
      }
    }).detach();
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
};

ChildExit exit_from_status(int status) {
  ChildExit exit;
  if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
    exit.code = 128 + exit.signal;
  } else if (WIFEXITED(status)) {
    exit.code = WEXITSTATUS(status);
  }
  return exit;
}

}  // namespace

std::string ChildExit::describe() const {
  if (signal != 0) return fmt::format("signal {} ({})", signal, ::strsignal(signal));
  return fmt::format("exit code {}", code);
}

struct ChildProcess::State {
  int pid = 0;
  std::string name;
  std::function<void(std::string_view)> on_line;
  std::function<void()> on_output;

  mutable std::mutex mutex;
  mutable std::condition_variable ended;
  std::optional<ChildExit> exit;
  bool output_ended = false;  // the reader saw EOF on the child's stdout/stderr
  std::deque<std::string> lines;

  std::thread reader;
  std::thread waiter;
};

ChildProcess::ChildProcess(std::shared_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<ChildProcess>> ChildProcess::start(ChildSpec spec) {
  auto state = std::make_shared<State>();
  state->name = spec.executable.filename().string();
  state->on_line = std::move(spec.on_line);
  state->on_output = std::move(spec.on_output);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return fail(Error::io("cannot create a pipe for {}: {}", state->name, std::strerror(errno)));
  }
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) {
    return fail(Error::io("cannot open /dev/null for {}: {}", state->name, std::strerror(errno)));
  }

  ExecPlan plan;
  plan.path = spec.executable.string();
  plan.parent = ::getpid();
  plan.stdin_fd = dev_null.get();
  plan.output_fd = write_end.get();
  plan.strings.push_back(plan.path);
  for (std::string& arg : spec.args) plan.strings.push_back(std::move(arg));
  const std::size_t argc = plan.strings.size();
  for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view existing(*entry);
    const bool overridden = std::any_of(
        spec.extra_env.begin(), spec.extra_env.end(), [&](const std::string& extra) {
          const auto equals = extra.find('=');
          return equals != std::string::npos &&
                 existing.starts_with(std::string_view(extra).substr(0, equals + 1));
        });
    if (!overridden) plan.strings.emplace_back(existing);
  }
  for (std::string& extra : spec.extra_env) plan.strings.push_back(std::move(extra));
  for (std::size_t i = 0; i < plan.strings.size(); ++i) {
    (i < argc ? plan.argv : plan.envp).push_back(plan.strings[i].data());
  }
  plan.argv.push_back(nullptr);
  plan.envp.push_back(nullptr);

  Result<pid_t> launched = fail(Error::internal("not launched"));
  SpawnThread::instance().run([&] { launched = fork_exec(plan, state->name); });
  write_end.reset();  // the child holds its copy; EOF arrives when it (and its helpers) exit
  if (!launched) {
    return fail(Error::unavailable("cannot start {} ({}): {}", state->name,
                                   spec.executable.string(), launched.error().message));
  }
  state->pid = *launched;
  State* raw = state.get();
  kLog.info("runner.process_started",
            {{"program", state->name}, {"pid", state->pid}, {"path", spec.executable.string()}});

  state->reader = std::thread([raw, fd = std::move(read_end)]() mutable {
    std::string pending;
    char buffer[4096];
    auto emit = [raw](std::string line) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (raw->on_line) raw->on_line(line);
      std::lock_guard lock(raw->mutex);
      raw->lines.push_back(std::move(line));
      if (raw->lines.size() > kKeptLines) raw->lines.pop_front();
    };
    for (;;) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (raw->on_output) raw->on_output();
      pending.append(buffer, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        emit(pending.substr(start, nl - start));
      }
      pending.erase(0, start);
      if (pending.size() > 64 * 1024) {  // a runaway line is cut into pieces, not buffered forever
        emit(std::move(pending));
        pending.clear();
      }
    }
    if (!pending.empty()) emit(std::move(pending));
    {
      std::lock_guard lock(raw->mutex);
      raw->output_ended = true;
    }
    raw->ended.notify_all();
  });
  state->waiter = std::thread([raw] {
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(raw->pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    ChildExit exit = got == raw->pid ? exit_from_status(status) : ChildExit{.code = -1};
    {
      // The exit is published once the last words are read, so an error message built on it has
      // them (the reader can lag the reaping). A helper still holding the pipe is not waited for.
      std::unique_lock lock(raw->mutex);
      raw->ended.wait_for(lock, kOutputDrain, [raw] { return raw->output_ended; });
      raw->exit = exit;
    }
    raw->ended.notify_all();
    kLog.info("runner.process_exited",
              {{"program", raw->name}, {"pid", raw->pid}, {"exit", exit.describe()}});
  });
  return std::unique_ptr<ChildProcess>(new ChildProcess(std::move(state)));
}

ChildProcess::~ChildProcess() {
  stop();
  if (state_->waiter.joinable()) state_->waiter.join();
  if (state_->reader.joinable()) state_->reader.join();
}

int ChildProcess::pid() const {
  return state_->pid;
}

bool ChildProcess::running() const {
  std::lock_guard lock(state_->mutex);
  return !state_->exit.has_value();
}

std::optional<ChildExit> ChildProcess::exit_status() const {
  std::lock_guard lock(state_->mutex);
  return state_->exit;
}

std::optional<ChildExit> ChildProcess::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  state_->ended.wait_for(lock, timeout, [this] { return state_->exit.has_value(); });
  return state_->exit;
}

ChildExit ChildProcess::stop(std::chrono::milliseconds grace) {
  if (auto done = exit_status()) return *done;
  ::kill(-state_->pid, SIGTERM);  // the group: helpers the runner spawned go too
  if (auto done = wait_for(grace)) return *done;
  kLog.warn("runner.kill", {{"program", state_->name},
                            {"pid", state_->pid},
                            {"reason", "did not exit after SIGTERM"},
                            {"grace_ms", grace.count()}});
  ::kill(-state_->pid, SIGKILL);
  std::unique_lock lock(state_->mutex);
  state_->ended.wait(lock, [this] { return state_->exit.has_value(); });
  return *state_->exit;
}

std::vector<std::string> ChildProcess::last_lines() const {
  std::lock_guard lock(state_->mutex);
  return {state_->lines.begin(), state_->lines.end()};
}

std::optional<std::uint64_t> ChildProcess::storage_read_bytes() const {
  if (!running()) return std::nullopt;
  std::ifstream io(fmt::format("/proc/{}/io", state_->pid));
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "read_bytes:") return value;
  }
  return std::nullopt;
}

std::string_view to_string(ProgramLocation::Via via) {
  switch (via) {
    case ProgramLocation::Via::Config: return "config";
    case ProgramLocation::Via::Environment: return "environment";
    case ProgramLocation::Via::Path: return "PATH";
  }
  return "PATH";
}

Result<ProgramLocation> find_program(const std::optional<std::string>& configured,
                                     const char* env_var, std::string_view name) {
  using Via = ProgramLocation::Via;
  auto usable = [](const std::filesystem::path& path) {
    std::error_code ec;
    return std::filesystem::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
  };
  if (configured && !configured->empty()) {
    if (usable(*configured)) return ProgramLocation{*configured, Via::Config};
    return fail(Error::invalid_argument("{} is configured as {} but that is not an executable file",
                                        name, *configured));
  }
  if (const char* from_env = std::getenv(env_var); from_env != nullptr && *from_env != '\0') {
    if (usable(from_env)) return ProgramLocation{from_env, Via::Environment};
    return fail(Error::invalid_argument("{} is set to {} but that is not an executable file",
                                        env_var, from_env));
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      if (!dir.empty()) {
        auto candidate = std::filesystem::path(dir) / name;
        if (usable(candidate)) return ProgramLocation{candidate, Via::Path};
      }
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  return fail(Error::not_found("{} not found (set {} or put it on PATH)", name, env_var));
}

Result<std::filesystem::path> locate_program(const std::optional<std::string>& configured,
                                             const char* env_var, std::string_view name) {
  auto found = find_program(configured, env_var, name);
  if (!found) return fail(found.error());
  return std::move(found->path);
}

Result<std::uint16_t> pick_free_loopback_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail(Error::io("socket: {}", std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return fail(Error::io("bind 127.0.0.1:0: {}", std::strerror(errno)));
  }
  socklen_t length = sizeof address;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return fail(Error::io("getsockname: {}", std::strerror(errno)));
  }
  return ntohs(address.sin_port);
}

}  // namespace sw::engines
