#pragma once
// One supervised child program (a runner such as llama-server, or a one-shot sd-cli).
//
// The child gets its own process group and a parent-death signal (SIGKILL), so it never outlives
// the worker even when the worker is killed with -9. Its stdout and stderr are read line by line
// and handed to `on_line` (the runner's log, tagged with the job in flight); any bytes at all are
// reported to `on_output` (progress deadlines count them as signs of life). stop() sends SIGTERM
// to the group, waits `grace`, then SIGKILL. The destructor stops and reaps.
// Thread-safe: every method may be called from any thread; `on_line` runs on the reader thread.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace sw::engines {

struct ChildSpec {
  std::filesystem::path executable;
  std::vector<std::string> args;
  // Extra environment entries ("NAME=value") on top of the worker's own.
  std::vector<std::string> extra_env;
  std::function<void(std::string_view line)> on_line;  // may be empty
  // Called on the reader thread whenever the child writes anything (before a line is complete:
  // a progress bar redrawn with '\r' or a row of dots is a sign of life too). May be empty.
  std::function<void()> on_output;
};

// How a child ended: exit code, or the signal that killed it.
struct ChildExit {
  int code = 0;
  int signal = 0;  // non-zero when killed by a signal
  std::string describe() const;  // "exit code 1" / "signal 9 (Killed)"
};

class ChildProcess {
 public:
  // Starts the program. Errors (NotFound, Internal) name the program and the cause.
  static Result<std::unique_ptr<ChildProcess>> start(ChildSpec spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const;
  bool running() const;
  // The exit, once the child has ended (reaped) and its output has been read to the end (or a
  // second has passed, when a helper of its group keeps the pipe open).
  std::optional<ChildExit> exit_status() const;
  // Blocks until the child ends or `timeout` passes; the exit if it ended.
  std::optional<ChildExit> wait_for(std::chrono::milliseconds timeout) const;
  // SIGTERM to the process group, `grace`, then SIGKILL; returns once the child is reaped.
  ChildExit stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // The last lines it wrote (at most 50), oldest first, for error messages.
  std::vector<std::string> last_lines() const;
  // Bytes the child has had fetched from storage so far (/proc/<pid>/io `read_bytes`), a sign
  // of life while a model is read from a slow disk or paged in; nullopt when the kernel does not
  // say (no task I/O accounting, the child has ended).
  std::optional<std::uint64_t> storage_read_bytes() const;

  struct State;

 private:
  explicit ChildProcess(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Where a runner program was found, for operators (`studio-worker engines`).
struct ProgramLocation {
  enum class Via { Config, Environment, Path };
  std::filesystem::path path;
  Via via = Via::Path;
};
std::string_view to_string(ProgramLocation::Via via);  // "config", "environment", "PATH"

// The program to run for a runner: the configured path when set, else $`env_var`, else `name` on
// PATH; a configured or environment path that is not an executable file is an error, not a reason
// to look further (InvalidArgument: the operator named a program that is not there, a typo to
// report loudly); NotFound names where it looked and what to install.
Result<ProgramLocation> find_program(const std::optional<std::string>& configured,
                                     const char* env_var, std::string_view name);
// find_program's path alone.
Result<std::filesystem::path> locate_program(const std::optional<std::string>& configured,
                                             const char* env_var, std::string_view name);

// A TCP port on 127.0.0.1 that was free a moment ago (bound and released).
Result<std::uint16_t> pick_free_loopback_port();

}  // namespace sw::engines
