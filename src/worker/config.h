#pragma once
// The worker's config.toml (reference-worker.md §5.1–§5.2): keys, defaults, validation, atomic
// 0600 writes, and the operator-editable subset served by GET/PUT /daemon/config.
//
// Loading: a missing file yields the defaults (and is created by the commands that write); a
// file that is not TOML at all is "corrupt" (a crash mid-write, a disk error) and, when the
// caller allows repair, is renamed `config.toml.corrupt-<unix ts>` and replaced by defaults: never
// overwritten in place. A file that parses but holds a bad value or an unknown key is refused
// with a message naming the key, and is left as it is for the operator to fix. Removed legacy
// keys are ignored. Secrets (auth_token, registration_secret, local_api_token) never appear in
// logs or error messages. Plain values: thread-compatible.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace sw::worker {

inline constexpr const char* kDefaultApiBaseUrl = "https://studio.minis.gg/";
inline constexpr const char* kDefaultAutoUpdateFeed =
    "https://api.github.com/repos/webbertakken/studio-worker/releases";
inline constexpr std::uint16_t kDefaultLocalApiPort = 4787;
inline constexpr std::uint16_t kDefaultStreamPort = 4798;

// Ours (issue 14): the `[engines]` table.
struct EnginesConfig {
  // The synthetic engine (deterministic stand-ins for every kind). false: a box that should only
  // do real work neither advertises nor runs it. Read at start.
  bool synthetic = true;
  bool operator==(const EnginesConfig&) const = default;
};

struct WorkerConfig {
  std::string api_base_url = kDefaultApiBaseUrl;
  std::optional<std::string> worker_id;
  std::optional<std::string> auth_token;  // secret
  double vram_threshold_gb = 12.0;
  bool auto_start = true;
  bool start_minimised = true;
  bool only_when_idle = false;
  bool auto_update_enabled = true;
  std::uint64_t auto_update_interval_secs = 1800;
  std::string auto_update_feed = kDefaultAutoUpdateFeed;
  bool auto_update_prerelease = false;
  std::string models_root;  // as written ("~/models" allowed); see resolved_models_root()
  std::optional<std::uint32_t> ws_reconnect_attempts;  // unset or 0: retry forever
  std::optional<std::uint16_t> local_api_port;  // unset: 4787; 0: an ephemeral port
  std::optional<std::string> local_api_token;   // secret
  std::optional<std::uint16_t> stream_port;
  std::optional<std::string> install_id;
  std::optional<std::string> registration_request_id;
  std::optional<std::string> registration_secret;  // secret
  std::optional<std::string> ca_file;  // ours: extra CA (PEM) for a studio with a private CA
  // Ours (issue 6): runner programs, each else $STUDIO_WORKER_<NAME> else PATH.
  std::optional<std::string> llama_server_path;
  std::optional<std::string> sd_cli_path;
  std::optional<std::string> sd_server_path;
  std::optional<std::string> whisper_server_path;
  // A resident runner with no job for this long is stopped (frees its memory).
  std::uint64_t runner_idle_unload_secs = 600;
  // Ours (issue 7): the durable result outbox's bounds. While it holds this many results or
  // bytes awaiting delivery, offers are declined as busy: no GPU time goes to results that could
  // not be kept.
  std::uint64_t outbox_max_entries = 1000;
  std::uint64_t outbox_max_mb = 4096;
  EnginesConfig engines;  // `[engines]`, written only when not the default

  bool registered() const {
    return worker_id && !worker_id->empty() && auth_token && !auth_token->empty();
  }
  // models_root with a leading `~` expanded; the reference default when empty.
  std::filesystem::path resolved_models_root() const;
  // Clears every registration field (install id included): `register --reset`.
  void reset_registration();
  bool operator==(const WorkerConfig&) const = default;
};

// Where config.toml lives: $XDG_CONFIG_HOME/minis-studio-worker/config.toml, else
// ~/.config/minis-studio-worker/config.toml.
std::filesystem::path default_config_path();

// Parses TOML text. `source` names the file in messages. Errors: InvalidArgument, naming the key
// (or the line and column of a syntax error, never the text around it: it could be a token).
// A syntax error carries Code::Protocol so that callers can tell "corrupt" from "invalid".
Result<WorkerConfig> parse_config(std::string_view toml_text, std::string_view source);

// The TOML text of a config, keys in the reference's order, unset keys left out.
std::string format_config(const WorkerConfig& config);

enum class LoadMode {
  ReadOnly,  // a missing file gives defaults, a corrupt one an error; nothing is written
  Repair,    // a missing file is created, a corrupt one quarantined and replaced by defaults
};

struct LoadedConfig {
  WorkerConfig config;
  std::filesystem::path path;
  bool created = false;                                // the file did not exist
  std::optional<std::filesystem::path> quarantined;    // where a corrupt file was moved
};

// Loads `path`. A fresh config's vram_threshold_gb is clamped to `detected_vram_gb` when that is
// known (> 0), so that a new worker never advertises more than its card holds.
Result<LoadedConfig> load_config(const std::filesystem::path& path, LoadMode mode,
                                 double detected_vram_gb = 0);

// Atomic write (temporary sibling, fsync, rename) with mode 0600; creates the directory (0700).
Status save_config(const std::filesystem::path& path, const WorkerConfig& config);

// Makes the worker's state private (issue 16, kind 6): the config file's directory 0700, and the
// files the worker keeps there 0600 (the config and its .corrupt-* copies: tokens; outbox.db and
// its -wal/-shm/.corrupt-*: prompts and results; daemon.lock; local-api.json: the local token).
// Narrows what an older version left looser and logs each change once; other files in the
// directory (models.json) are the operator's. See make_private_dir for directories left alone.
Status make_state_private(const std::filesystem::path& config_path);

// ---- EditableConfig: the camelCase JSON of GET/PUT /daemon/config (§5.2) ----

// {"apiBaseUrl", "vramThresholdGb", "autoStart", "startMinimised", "onlyWhenIdle",
//  "autoUpdateEnabled", "autoUpdateIntervalSecs", "autoUpdateFeed", "autoUpdatePrerelease",
//  "modelsRoot"}
std::string editable_config_json(const WorkerConfig& config);

// Applies a PUT body onto `config`: every key optional (absent keys keep their value), unknown
// keys refused. Errors are InvalidArgument "<field>: <problem>" (invalid_config), or
// Code::Protocol for a body that is not a JSON object (bad_request).
Result<WorkerConfig> apply_editable_config(const WorkerConfig& config, std::string_view json);

// Checks the values the operator may set; "<field>: <problem>".
Status validate_config(const WorkerConfig& config);

// The settings this build parses but cannot honour. `only_when_idle` needs a probe of the user's
// presence (reference-worker.md §1.5: input idle time ≥ 120 s); this build has none, so the gate
// would hold every job back forever. `run` and PUT /daemon/config refuse it (InvalidArgument
// naming the setting) rather than start a worker that silently never works. Loading a file that
// sets it is not an error (the file is kept, `status` and `config` still read it).
Status check_runnable(const WorkerConfig& config);

}  // namespace sw::worker
