#include "worker/cli_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sstream>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file_io.h"
#include "common/json_text.h"
#include "transfer/http_client.h"
#include "transfer/url_policy.h"
#include "worker/config.h"
#include "worker/daemon.h"
#include "worker/registrar.h"
#include "worker/vram_probe.h"

namespace sw::worker {

using nlohmann::json;

namespace {

// config.toml or state.toml cannot be used: the code `run` exits with for the same file.
CommandError file_error(Error error) {
  const ExitCode exit = exit_code_for_start_error(error);
  return CommandError(exit, std::move(error));
}

std::string with_inert_note(std::string_view key, std::string value) {
  if (auto why = inert_reason(key)) value += fmt::format(" (inert: {})", *why);
  return value;
}

// How long a command waits for a daemon that holds its lock to write local-api.json (it writes it
// right after its local API binds, a moment after it takes the lock).
constexpr auto kDiscoveryWait = std::chrono::seconds(5);
constexpr auto kCallTimeout = std::chrono::seconds(10);

// "none", or "llama-server (model m, pid 123, in use), …".
std::string runners_line(const json& runners) {
  std::string line;
  for (const auto& runner : runners) {
    if (!line.empty()) line += ", ";
    line += runner.value("program", std::string("?")) + " (model " +
            runner.value("model", std::string("?")) + ", pid " +
            std::to_string(runner.value("pid", 0)) +
            (runner.value("inUse", false) ? ", in use)" : ", idle)");
  }
  return line.empty() ? "none" : line;
}

std::string describe(const RunningDaemon& daemon) {
  return daemon.pid.empty() ? std::string("the running daemon")
                            : "the running daemon (pid " + daemon.pid + ")";
}

// An answer of the daemon's local API: 2xx → the JSON body; else an error naming the daemon and
// the API's own message (400 → InvalidArgument, so that the command exits 2 as for a bad value).
Result<json> call_daemon(const RunningDaemon& daemon, std::string method, const std::string& path,
                         std::string body = {}) {
  transfer::HttpCall call;
  call.method = std::move(method);
  call.url = daemon.url + path;
  call.bearer = daemon.token;
  call.body = std::move(body);
  call.timeout = kCallTimeout;
  auto reply = transfer::http_call(call);
  if (!reply) {
    return fail(Error::unavailable(
        "{} holds the lock of this config directory, but its local API at {} does not answer: {}",
        describe(daemon), daemon.url, reply.error().message));
  }
  auto parsed = parse_json(reply->body, "local API answer");
  if (reply->status < 200 || reply->status >= 300) {
    std::string message = reply->body;
    if (parsed && parsed->is_object() && parsed->contains("message")) {
      message = parsed->value("message", message);
    }
    const Code code = reply->status == 400 ? Code::InvalidArgument : Code::Unavailable;
    return fail(Error::make(code, "{} refused {} {}: {} {}", describe(daemon), call.method, path,
                            reply->status, message));
  }
  if (!parsed) {
    return fail(Error::protocol("{} answered {} {} with something that is not JSON: {}",
                                describe(daemon), call.method, path, parsed.error().message));
  }
  return std::move(*parsed);
}

std::string text_of(const json& value, const char* key, std::string fallback = "") {
  const auto it = value.find(key);
  return it != value.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// The live daemon's status (GET /daemon/status), one `key: value` line each.
void print_live_status(const std::filesystem::path& config_path, const RunningDaemon& daemon,
                       const json& status, std::ostream& out) {
  const json config = status.value("config", json::object());
  const json session = status.value("session", json::object());
  const json registration = status.value("registration", json::object());
  const json outbox = status.value("outbox", json::object());
  const json catalog = status.value("catalog", json::object());
  std::string session_line = text_of(session, "state", "unknown");
  if (session_line == "connected") {
    session_line = "connected";
  } else if (session_line == "reconnecting") {
    session_line =
        "not connected: reconnecting (attempt " + std::to_string(session.value("attempt", 0)) + ")";
  } else if (session.contains("reason")) {
    session_line = "not connected: " + session_line + ": " + text_of(session, "reason");
  } else {
    session_line = "not connected: " + session_line;
  }
  const std::string state = text_of(registration, "state");
  std::string registration_line;
  if (state == "approved" || status.value("registered", false)) {
    registration_line = "approved as " + text_of(status, "workerId", "?");
  } else if (state == "pending") {
    registration_line = "pending operator approval (request " + text_of(registration, "requestId") +
                        ", since " + text_of(registration, "since") + ")";
  } else if (state == "rejected") {
    registration_line = "rejected: " + text_of(registration, "reason");
  } else {
    registration_line = "not registered yet (" + (state.empty() ? "pristine" : state) + ")";
  }
  std::string job_line = "none";
  const std::string current = text_of(status, "currentJobId");
  if (!current.empty()) {
    job_line = current;
    for (const auto& job : status.value("activeJobs", json::array())) {
      if (text_of(job, "jobId") == current) {
        job_line += " (" + text_of(job, "kind") + ", model " + text_of(job, "model") + ")";
      }
    }
  }
  out << "config path: " << config_path.string() << "\n"
      << "daemon: running (pid " << status.value("pid", 0) << ", local API " << daemon.url << ")\n"
      << "studio: " << text_of(config, "apiBaseUrl") << "\n"
      << "session: " << session_line << "\n"
      << "registration: " << registration_line << "\n"
      << "paused: "
      << (status.value("paused", false)
              ? (status.value("runnersUnloaded", false) ? "true (runners unloaded)" : "true")
              : "false")
      << "\n"
      << "runners: " << runners_line(status.value("runners", json::array())) << "\n"
      << "busy: " << (status.value("busy", false) ? "true" : "false") << "\n"
      << "current job: " << job_line << "\n"
      << "outbox: " << outbox.value("entries", std::uint64_t{0}) << " results, "
      << outbox.value("bytes", std::uint64_t{0}) << " bytes awaiting delivery\n"
      << (catalog.contains("error") && catalog["error"].is_string()
              ? "models.json: ignored, it does not validate: " +
                    catalog["error"].get<std::string>() + "\n"
              : std::string())
      << "vram_threshold_gb: " << config.value("vramThresholdGb", 0.0) << "\n"
      << "auto_start: "
      << with_inert_note("auto_start", config.value("autoStart", false) ? "true" : "false") << "\n"
      << "models_root: " << text_of(config, "modelsRoot") << "\n"
      << "auto_update: "
      << with_inert_note("auto_update_enabled",
                         config.value("autoUpdateEnabled", false) ? "true" : "false")
      << "\n"
      << "update_interval: "
      << with_inert_note(
             "auto_update_interval_secs",
             std::to_string(config.value("autoUpdateIntervalSecs", std::int64_t{0})) + "s")
      << "\n";
}

}  // namespace

Result<std::optional<RunningDaemon>> find_running_daemon(const std::filesystem::path& config_path) {
  const auto dir = config_path.parent_path();
  const auto lock_path = dir / "daemon.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!lock.valid()) {
    if (errno == ENOENT) return std::optional<RunningDaemon>();
    return fail(Error::io("cannot open {}: {}", lock_path.string(), std::strerror(errno)));
  }
  // A shared lock we can take means no daemon holds its exclusive one; it is let go at once.
  if (::flock(lock.get(), LOCK_SH | LOCK_NB) == 0) {
    (void)::flock(lock.get(), LOCK_UN);
    return std::optional<RunningDaemon>();
  }
  if (errno != EWOULDBLOCK) {
    return fail(Error::io("cannot test the lock {}: {}", lock_path.string(), std::strerror(errno)));
  }
  RunningDaemon daemon;
  if (auto pid = read_file(lock_path, 64); pid) {
    daemon.pid = *pid;
    while (!daemon.pid.empty() && (daemon.pid.back() == '\n' || daemon.pid.back() == ' ')) {
      daemon.pid.pop_back();
    }
  }
  const auto discovery = discovery_file_for(config_path);
  const auto deadline = std::chrono::steady_clock::now() + kDiscoveryWait;
  std::string why;
  while (true) {
    auto text = read_file(discovery, 1 << 16);
    if (text) {
      auto parsed = parse_json(*text, discovery.string());
      if (parsed && parsed->is_object()) {
        daemon.url = text_of(*parsed, "url");
        daemon.token = text_of(*parsed, "token");
        if (!daemon.url.empty() && !daemon.token.empty()) return std::optional(daemon);
      }
      why = "it names no url and token";
    } else {
      why = text.error().message;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // written by another process
  }
  return fail(Error::unavailable("{} holds {}, but its local API cannot be found: {}: {}",
                                 describe(daemon), lock_path.string(), discovery.string(), why));
}

CommandStatus print_status(const std::filesystem::path& config_path, std::ostream& out) {
  auto running = find_running_daemon(config_path);
  if (!running) return fail(running.error());
  if (*running) {
    auto status = call_daemon(**running, "GET", "/daemon/status");
    if (!status) return fail(status.error());
    print_live_status(config_path, **running, *status, out);
    return {};
  }
  auto loaded = load_config(config_path, LoadMode::ReadOnly);
  if (!loaded) return tl::make_unexpected(file_error(loaded.error()));
  const WorkerConfig& config = loaded->config;
  std::string registration;
  if (config.registered()) {
    registration = "approved as " + *config.worker_id;
  } else if (config.registration_rejected &&
             config.registration_rejected->starts_with(kJoinTokenRefusedPrefix)) {
    registration = *config.registration_rejected +
                   " (`studio-worker register --reset --join-token NEW` with a new token)";
  } else if (config.registration_rejected) {
    registration = "rejected by the studio operator: " + *config.registration_rejected +
                   " (`studio-worker register --reset` to ask again)";
  } else if (config.registration_request_id) {
    registration = "pending operator approval (request " + *config.registration_request_id + ")";
  } else if (config.join_token) {
    registration = "not registered (joins with a join token on next launch)";
  } else {
    registration = "not registered (will auto-register on next launch)";
  }
  std::string state = loaded->state_path.string();
  if (!loaded->state_file) {
    state += loaded->state_keys_in_config.empty()
                 ? " (not written yet)"
                 : " (not written yet: the registration is read from config.toml and moves "
                   "here on the next run)";
  }
  out << "config path: " << config_path.string() << (loaded->created ? " (not created yet)" : "")
      << "\n"
      << "state path: " << state << "\n"
      << "daemon: not running (settings below are from the file)\n"
      << "api_base_url: "
      << (config.api_base_url.empty()
              ? std::string("(none; run `studio-worker register --api-base-url URL`)")
              : config.api_base_url)
      << "\n"
      << "registration: " << registration << "\n"
      << "vram_threshold_gb: " << config.vram_threshold_gb << "\n"
      << "auto_start: " << with_inert_note("auto_start", config.auto_start ? "true" : "false")
      << "\n"
      << "models_root: " << config.resolved_models_root().string() << "\n"
      << "auto_update: "
      << with_inert_note("auto_update_enabled", config.auto_update_enabled ? "true" : "false")
      << "\n"
      << "update_interval: "
      << with_inert_note("auto_update_interval_secs",
                         std::to_string(config.auto_update_interval_secs) + "s")
      << "\n";
  return {};
}

CommandStatus register_command(const std::filesystem::path& config_path,
                               const std::optional<std::string>& api_base_url, bool reset,
                               const std::optional<std::string>& join_token, std::ostream& out) {
  if (api_base_url) {
    if (auto base = transfer::studio_base_url(*api_base_url); !base) {
      return fail(Error::invalid_argument("--api-base-url: {}", base.error().message));
    }
  }
  auto running = find_running_daemon(config_path);
  if (!running) return fail(running.error());
  if (*running && (api_base_url || reset || join_token)) {
    json body = json::object();
    if (api_base_url) body["apiBaseUrl"] = *api_base_url;
    if (reset) body["reset"] = true;
    if (join_token) body["joinToken"] = *join_token;
    auto answer = call_daemon(**running, "POST", "/daemon/register", body.dump());
    if (!answer) return fail(answer.error());
    if (api_base_url) {
      out << "api_base_url set to " << text_of(*answer, "apiBaseUrl") << " by "
          << describe(**running) << "\n";
    }
    if (reset && !join_token) {
      out << "registration cleared by " << describe(**running)
          << "; it asks the studio for approval again now\n";
    }
    if (join_token && text_of(*answer, "joinToken") == "not_needed") {
      out << "approved already as " << text_of(*answer, "workerId")
          << "; the join token is not needed and was not kept (`register --reset --join-token T` "
             "joins again as a new worker)\n";
    } else if (join_token) {
      out << "join token kept by " << describe(**running)
          << "; it asks the studio to join with it now\n";
    }
    return {};
  }
  if (reset) {
    // The operator asked for a fresh registration: a state.toml that cannot be used is moved
    // aside (kept, 0600) rather than making them hand-edit the daemon's file.
    auto aside = set_aside_unusable_state(config_path);
    if (!aside) {
      return tl::make_unexpected(aside.error().code == Code::IoError ? CommandError(aside.error())
                                                                     : file_error(aside.error()));
    }
    if (*aside) {
      out << "state.toml could not be used; moved aside to " << (*aside)->string()
          << " (kept; a fresh state is written)\n";
    }
  }
  auto loaded = load_config(config_path, LoadMode::Migrate, memoised_vram_total_gib());
  if (!loaded) return tl::make_unexpected(file_error(loaded.error()));
  WorkerConfig config = loaded->config;
  if (api_base_url) config.api_base_url = *api_base_url;
  if (reset) config.reset_registration();
  // A provisioning script run twice gives the token to a worker it approved already: nothing to
  // do, said, and not an error (the URL given with it is still set).
  const bool token_not_needed = join_token && !reset && config.registered();
  if (join_token && !token_not_needed) SW_TRY(config.set_join_token(*join_token));
  SW_TRY(validate_config(config));
  if (api_base_url) SW_TRY(save_config(config_path, config));
  if (reset || (join_token && !token_not_needed)) {
    SW_TRY(save_state(loaded->state_path, config.state()));
  }
  if (api_base_url) out << "api_base_url set to " << config.api_base_url << "\n";
  if (reset && !join_token) {
    out << "registration cleared; the daemon will ask the studio again on next launch\n";
  }
  if (token_not_needed) {
    out << "approved already as " << config.worker_id.value_or("?")
        << "; the join token is not needed and was not kept (`register --reset --join-token T` "
           "joins again as a new worker)\n";
  } else if (join_token) {
    out << "join token kept in " << loaded->state_path.string() << " (0600); the daemon joins "
        << (config.api_base_url.empty() ? std::string("the studio (set --api-base-url)")
                                        : config.api_base_url)
        << " with it on next launch\n";
  }
  if (!api_base_url && !reset && !join_token) {
    if (config.api_base_url.empty()) {
      out << "nothing to change; no studio URL is set: run `studio-worker register "
             "--api-base-url URL`\n";
    } else {
      out << "nothing to change; the daemon registers itself with " << config.api_base_url
          << (*running ? "" : " on launch") << "\n";
    }
  }
  return {};
}

CommandStatus set_threshold(const std::filesystem::path& config_path, double gigabytes,
                            std::ostream& out) {
  if (!std::isfinite(gigabytes) || gigabytes < 0) {
    return fail(Error::invalid_argument("threshold must be >= 0"));
  }
  auto running = find_running_daemon(config_path);
  if (!running) return fail(running.error());
  if (*running) {
    const json body = {{"vramThresholdGb", gigabytes}};
    auto answer = call_daemon(**running, "PUT", "/daemon/config", body.dump());
    if (!answer) return fail(answer.error());
    out << "vram_threshold_gb set to " << answer->value("vramThresholdGb", gigabytes) << " by "
        << describe(**running) << "\n";
  } else {
    auto loaded = load_config(config_path, LoadMode::Migrate, memoised_vram_total_gib());
    if (!loaded) return tl::make_unexpected(file_error(loaded.error()));
    WorkerConfig config = loaded->config;
    config.vram_threshold_gb = gigabytes;
    SW_TRY(save_config(config_path, config));
    out << "vram_threshold_gb set to " << gigabytes << "\n";
  }
  const double detected = memoised_vram_total_gib();
  if (detected > 0 && gigabytes > detected) {
    out << "warning: the threshold exceeds the detected " << detected
        << " GB of VRAM; jobs that large will not fit\n";
  }
  return {};
}

CommandStatus pause_command(const std::filesystem::path& config_path, bool pause, bool unload,
                            std::ostream& out) {
  auto running = find_running_daemon(config_path);
  if (!running) return fail(running.error());
  if (!*running) {
    return fail(Error::unavailable(
        "no daemon runs for {}: pausing applies to a running worker (start it with `run`)",
        config_path.string()));
  }
  const std::string body = pause && unload ? json{{"unload", true}}.dump() : std::string();
  auto answer = call_daemon(**running, "POST", pause ? "/daemon/pause" : "/daemon/resume", body);
  if (!answer) return fail(answer.error());
  if (!pause) {
    out << "resumed: " << describe(**running) << " takes offers again\n";
  } else if (unload) {
    out << "paused: " << describe(**running) << " refuses offers; "
        << answer->value("runnersStopped", 0) << " idle runner(s) stopped, runners stay "
        << "unloaded until resume\n";
  } else {
    out << "paused: " << describe(**running) << " refuses offers\n";
  }
  return {};
}

CommandStatus set_config_value(const std::filesystem::path& config_path, const std::string& key,
                               const std::string& value, std::ostream& out) {
  // The TOML spelling (vram_threshold_gb) or the JSON one (vramThresholdGb).
  std::string field;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '_' && i + 1 < key.size()) {
      field += static_cast<char>(std::toupper(static_cast<unsigned char>(key[++i])));
    } else {
      field += key[i];
    }
  }
  auto running = find_running_daemon(config_path);
  if (!running) return fail(running.error());
  std::optional<LoadedConfig> loaded;
  json current;
  if (*running) {
    auto live = call_daemon(**running, "GET", "/daemon/config");
    if (!live) return fail(live.error());
    current = std::move(*live);
  } else {
    auto file = load_config(config_path, LoadMode::Migrate, memoised_vram_total_gib());
    if (!file) return tl::make_unexpected(file_error(file.error()));
    loaded = std::move(*file);
    current = json::parse(editable_config_json(loaded->config));
  }
  const auto it = current.find(field);
  if (!current.is_object() || it == current.end()) {
    std::string keys;
    for (const auto& [name, ignored] : current.items()) keys += (keys.empty() ? "" : ", ") + name;
    return fail(
        Error::invalid_argument("{}: not a setting that can be changed here ({})", key, keys));
  }
  // The value takes the setting's type.
  json typed;
  if (it->is_boolean()) {
    if (value != "true" && value != "false") {
      return fail(Error::invalid_argument("{}: must be true or false", key));
    }
    typed = value == "true";
  } else if (it->is_number()) {
    auto number = parse_json(value, key);
    if (!number || !number->is_number()) {
      return fail(Error::invalid_argument("{}: must be a number", key));
    }
    typed = std::move(*number);
  } else {
    typed = value;
  }
  const json body = {{field, typed}};
  if (*running) {
    auto answer = call_daemon(**running, "PUT", "/daemon/config", body.dump());
    if (!answer) return fail(answer.error());
    out << key << " set to " << (*answer)[field].dump() << " by " << describe(**running) << "\n";
    return {};
  }
  auto next = apply_editable_config(loaded->config, body.dump());
  if (!next) return fail(next.error());
  SW_TRY(validate_config(*next));
  SW_TRY(save_config(config_path, *next));
  out << key << " set to " << typed.dump() << "\n";
  return {};
}

CommandStatus print_config(const std::filesystem::path& config_path, std::ostream& out) {
  auto loaded = load_config(config_path, LoadMode::ReadOnly);
  if (!loaded) return tl::make_unexpected(file_error(loaded.error()));
  WorkerConfig config = loaded->config;
  const std::string redacted = "<redacted>";
  if (config.auth_token) config.auth_token = redacted;
  if (config.registration_secret) config.registration_secret = redacted;
  if (config.local_api_token) config.local_api_token = redacted;
  if (config.join_token) config.join_token = redacted;
  out << "# " << config_path.string() << (loaded->created ? " (not created yet)" : "") << "\n";
  // Inert settings say so on their line.
  std::istringstream settings(format_config(config));
  for (std::string line; std::getline(settings, line);) {
    const auto why = inert_reason(line.substr(0, line.find(" = ")));
    out << line << (why ? fmt::format("  # inert: {}", *why) : std::string()) << "\n";
  }
  if (loaded->state_file && !loaded->state_keys_in_config.empty()) {
    std::string keys;
    for (const auto& key : loaded->state_keys_in_config) keys += (keys.empty() ? "" : ", ") + key;
    out << "# also in this file, not read (state.toml wins): " << keys << "\n";
  }
  out << "\n# " << loaded->state_path.string()
      << (loaded->state_file ? ""
          : loaded->state_keys_in_config.empty()
              ? " (not written yet)"
              : " (not written yet: read from config.toml; the next run moves it here)")
      << "\n"
      << format_state(config.state());
  return {};
}

}  // namespace sw::worker
