#pragma once
// The config commands of `studio-worker` (reference-worker.md §5.3): status, register,
// set-threshold, config. Without a daemon they read config.toml and state.toml (config.h), write
// the one they change, and never touch the network; none repairs a file that does not parse
// (`register --reset` alone sets an unusable state.toml aside, kept).
// While a daemon runs for the config directory (it holds daemon.lock) the commands that change the
// worker, and `status`, go through its local API (local-api.json: url and token), so that the
// daemon applies the change instead of overwriting it a moment later (ours, issue 17); a daemon
// whose API cannot be found or does not answer is an error (Code::Unavailable), never a silent
// file edit. Blocking; call from the CLI's main thread.

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "common/error.h"
#include "worker/exit_codes.h"

namespace sw::worker {

// A command's failure and its exit code (exit_codes.h), the same for every command and for `run`:
// Config (78) when config.toml or state.toml cannot be used (does not parse, a bad value, an
// unknown key); Usage (2) for a bad value given on the command line (or refused by the daemon's
// API as one); Failure (1) otherwise (I/O, a daemon that does not answer). Implicit from an Error
// so that Status-returning helpers propagate: InvalidArgument is Usage, anything else Failure.
struct CommandError {
  CommandError(Error from)  // NOLINT(google-explicit-constructor): see above
      : exit(from.code == Code::InvalidArgument ? ExitCode::Usage : ExitCode::Failure),
        error(std::move(from)) {}
  CommandError(ExitCode code, Error from) : exit(code), error(std::move(from)) {}
  ExitCode exit;
  Error error;
};
using CommandStatus = tl::expected<void, CommandError>;

// A daemon found running for a config directory.
struct RunningDaemon {
  std::string pid;    // as written in daemon.lock ("" when unreadable)
  std::string url;    // its local API, e.g. http://127.0.0.1:4787
  std::string token;  // the local API's bearer token
};

// nullopt when no daemon holds <config dir>/daemon.lock (tested with a shared flock that is let
// go at once). When one does, its local-api.json is waited for (a few seconds: it is written just
// after the lock is taken); Code::Unavailable when it does not appear.
Result<std::optional<RunningDaemon>> find_running_daemon(const std::filesystem::path& config_path);

// One `key: value` line each. A running daemon: `daemon: running (pid, local API)`, studio,
// session (connected or not, and why), registration, paused (and whether runners are unloaded),
// resident runners, busy, current job (id, kind, model),
// outbox (results and bytes awaiting delivery) and the live settings. Otherwise
// `daemon: not running`, the config and state paths, and the files' api_base_url, registration and
// settings (inert ones say so).
CommandStatus print_status(const std::filesystem::path& config_path, std::ostream& out);

// Sets `api_base_url` (config.toml) and/or clears the registration (state.toml: worker id, token,
// request, secret, rejection, install id): through POST /daemon/register when a daemon runs (it
// asks for approval again at once), else in the files. Prints what it did. A reset with no daemon
// recovers from a state.toml that cannot be used: it is moved aside (set_aside_unusable_state,
// said on stdout) and a fresh one written; without --reset such a file is refused, untouched.
// `join_token` (issue 22): kept in state.toml for the next register-request (after the reset when
// both are given); refused for a worker that is approved already.
CommandStatus register_command(const std::filesystem::path& config_path,
                               const std::optional<std::string>& api_base_url, bool reset,
                               const std::optional<std::string>& join_token, std::ostream& out);

// Through PUT /daemon/config {"vramThresholdGb"} when a daemon runs, else in the file.
CommandStatus set_threshold(const std::filesystem::path& config_path, double gigabytes,
                            std::ostream& out);

// `config set KEY VALUE` (ours, issue 17): one operator setting of GET/PUT /daemon/config, named
// as in config.toml (vram_threshold_gb) or in the JSON (vramThresholdGb); the value takes the
// setting's type. Through PUT /daemon/config when a daemon runs, else in the file. Errors name the
// key (InvalidArgument; an unknown key lists the settable ones).
CommandStatus set_config_value(const std::filesystem::path& config_path, const std::string& key,
                               const std::string& value, std::ostream& out);

// `pause [--unload]` / `resume` (ours, issue 19): POST /daemon/pause ({"unload": true} with
// --unload) or /daemon/resume on the running daemon. Paused, the worker refuses studio offers;
// with --unload it also stops its idle runners now (GPU memory is freed; a runner serving a job
// finishes it and is stopped when it goes idle) and keeps none resident until resume. Prints the
// new state and how many runners were stopped. The pause lives in the daemon (it is not saved), so
// with no daemon running this is an error (Code::Unavailable).
CommandStatus pause_command(const std::filesystem::path& config_path, bool pause, bool unload,
                            std::ostream& out);

// `# <config path>` then its settings (inert ones marked), then `# <state path>` and the state,
// secrets replaced by "<redacted>".
CommandStatus print_config(const std::filesystem::path& config_path, std::ostream& out);

}  // namespace sw::worker
