#pragma once
// What engines this machine has, for operators (`studio-worker engines`): per engine, the program
// or library behind it, where it was found, the version it reports, and what to install when it is
// missing. Runner programs are looked up exactly as build_engines() does (find_program: config
// path, then $STUDIO_WORKER_<NAME>, then PATH); espeak-ng is the linked libespeak-ng; synthetic is
// built in.
//
// A program's version is the first meaningful line of its `--version` output (stdout and stderr
// together: llama-server prints `version: N (commit)` on stderr after backend-loading lines). The
// program runs as a supervised child (ChildProcess) and is stopped after `version_timeout`, so a
// program that ignores `--version` and starts serving cannot hang the command.
// Blocking (runs programs); thread-compatible.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "engines/runner/child_process.h"

namespace sw::engines {

struct InventoryOptions {
  // From config.toml (same keys as the worker's); unset = not configured.
  std::optional<std::string> llama_server_path;
  std::optional<std::string> whisper_server_path;
  std::optional<std::string> sd_cli_path;
  std::optional<std::string> sd_server_path;
  bool synthetic = true;  // config may switch the synthetic engine off
  bool probe_versions = true;
  std::chrono::milliseconds version_timeout{std::chrono::seconds(5)};
};

struct ProgramReport {
  std::string name;        // "llama-server"
  std::string role;        // how the engine uses it when it has two: "per job", "resident"
  std::string config_key;  // "llama_server_path"
  std::string env_var;     // "STUDIO_WORKER_LLAMA_SERVER"
  std::optional<ProgramLocation> location;  // set when found
  std::string problem;                      // why it was not found (find_program's words)
  // Named in config or the environment but not an executable file (a typo, a removed install):
  // `engines doctor` counts it as a failure, not as an engine this machine simply lacks.
  bool misconfigured = false;
  std::optional<std::string> version;       // first meaningful line of `--version`
  std::string version_problem;  // why there is no version: timeout, failed start, no such line
  // "config llama_server_path" / "$STUDIO_WORKER_LLAMA_SERVER" / "PATH"; empty when not found.
  std::string found_via() const;
};

enum class Provider { Programs, Library, BuiltIn };

struct EngineReport {
  std::string engine;  // wire name (reference-worker.md §2.1): llama-cpp, sd-cpp, …
  Provider provider = Provider::Programs;
  bool found = false;   // this machine has what the engine needs (any one of its programs)
  bool enabled = true;  // the config lets the worker use it
  std::vector<ProgramReport> programs;  // Provider::Programs
  std::string library;                  // Provider::Library: "libespeak-ng"
  std::string library_version;          // "1.51"
  std::string library_data;             // the library's data directory
  std::string problem;                  // Library: why it is unusable
  std::string hint;                     // what to install, when !found (remedy_for_missing_engine)
};

// Every engine this build knows, in a fixed order: llama-cpp, whisper-cpp, sd-cpp, espeak-ng,
// synthetic.
std::vector<EngineReport> take_inventory(const InventoryOptions& options);

// The first meaningful line of a program's `--version` output: the first non-empty line that
// mentions "version" and is not a complaint (unknown/invalid/error), trimmed; nullopt when none.
std::optional<std::string> version_line(const std::vector<std::string>& lines);

// Human-readable, one block per engine (stdout of `studio-worker engines`).
std::string format_inventory(const std::vector<EngineReport>& engines);
// `{"engines":[{"engine","found","enabled","builtIn","programs":[{"program","role","found",
// "path","foundVia" ("config"|"environment"|"PATH"),"configKey","envVar","version",
// "versionProblem","problem"}],"library":{"name","version","dataPath"}|null,"problem","hint"}]}`:
// absent values are null (`studio-worker engines --json`; operators script it).
std::string inventory_json(const std::vector<EngineReport>& engines);

}  // namespace sw::engines
