#pragma once
// The exit codes of `studio-worker run` (issue 17), one per condition a supervisor must tell
// apart: a unit file restarts the daemon on a transient failure and stops on a permanent one
// (systemd: `RestartPreventExitStatus=2 10 11 12 13 14 78`). The README's operator section lists
// them; tests pin the numbers. The other commands use Ok, Failure, Usage and Config with the same
// meanings (CommandError, cli_commands.h). The reference exits 0 when another daemon holds the lock
// and keeps the daemon up after a rejection or an auth failure (reference-worker.md §3.1, §5.3):
// issue 17 asked for distinct codes instead.

namespace sw::worker {

enum class ExitCode : int {
  // A clean stop: SIGINT/SIGTERM, POST /daemon/shutdown.
  Ok = 0,
  // Unexpected or transient: an I/O error on the config directory, the local API could not
  // listen, the session gave up after `ws_reconnect_attempts`, or the studio ended the session
  // with `internal_error` / `protocol_violation`. Restarting may help.
  Failure = 1,
  // The command line did not parse (an unknown option, a bad value).
  Usage = 2,
  // The studio operator rejected this worker's registration request, or the studio refused its
  // join token (issue 22). Permanent until `studio-worker register --reset` (with a new token);
  // a restart before that exits 10 again without asking.
  RegistrationRejected = 10,
  // The studio refused the worker's credentials (`auth_failed`: 401 on the upgrade, close 4001 or
  // the error frame): the token is not valid there. Needs `register --reset` and a new approval.
  AuthFailed = 11,
  // The studio operator deleted this worker (`worker_deleted`, close 4004). Needs
  // `register --reset` and a new approval.
  WorkerDeleted = 12,
  // A newer session for the same worker id took over (`duplicate_worker`, close 4003): two
  // machines share one identity (a copied state file). Restarting would take it back and flap.
  DuplicateWorker = 13,
  // Another daemon holds this config directory's lock (`daemon.lock`).
  AlreadyRunning = 14,
  // EX_CONFIG (sysexits.h): config.toml or state.toml does not parse, holds a bad value or an
  // unknown key, names no studio (`api_base_url`), or asks for a setting this build cannot
  // honour. Nothing was written or contacted.
  Config = 78,
};

constexpr int to_int(ExitCode code) {
  return static_cast<int>(code);
}

}  // namespace sw::worker
