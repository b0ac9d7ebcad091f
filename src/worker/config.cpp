#include "worker/config.h"

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/file_io.h"
#include "common/json_text.h"
#include "common/log.h"
#include "transfer/url_policy.h"

namespace sw::worker {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::config");
  return instance;
}

// Keys the reference once wrote and has since removed: ignored when present (§5.2). `engines` is
// ours again as a table (`[engines]`); any other value of it is the reference's legacy key.
constexpr std::string_view kLegacyKeys[] = {"engine",
                                            "engines",
                                            "gradio_endpoint_url",
                                            "supported_models_override",
                                            "auto_enabled",
                                            "label",
                                            "bootstrap_token"};

bool is_legacy_key(std::string_view key) {
  for (auto legacy : kLegacyKeys) {
    if (legacy == key) return true;
  }
  return false;
}

Error bad_key(std::string_view source, std::string_view key, std::string_view problem) {
  return Error::invalid_argument("{}: {}: {}", source, key, problem);
}

Result<std::string> as_string(std::string_view source, std::string_view key,
                              const toml::node& node) {
  if (auto value = node.value<std::string>(); value && node.is_string()) return *value;
  return fail(bad_key(source, key, "must be a string"));
}

Result<bool> as_bool(std::string_view source, std::string_view key, const toml::node& node) {
  if (node.is_boolean()) return *node.value<bool>();
  return fail(bad_key(source, key, "must be true or false"));
}

// `[engines]`: synthetic = true|false. Unknown keys are refused like top-level ones.
Status parse_engines(std::string_view source, const toml::table& table, EnginesConfig& out) {
  for (auto&& entry : table) {
    const std::string key = "engines." + std::string(entry.first.str());
    if (entry.first.str() == "synthetic") {
      auto value = as_bool(source, key, entry.second);
      if (!value) return fail(value.error());
      out.synthetic = *value;
    } else {
      return fail(bad_key(source, key, "unknown key (a typo?)"));
    }
  }
  return {};
}

Result<double> as_number(std::string_view source, std::string_view key, const toml::node& node) {
  if (node.is_floating_point() || node.is_integer()) return *node.value<double>();
  return fail(bad_key(source, key, "must be a number"));
}

Result<std::int64_t> as_integer(std::string_view source, std::string_view key,
                                const toml::node& node, std::int64_t min, std::int64_t max) {
  if (!node.is_integer()) return fail(bad_key(source, key, "must be a whole number"));
  const auto value = *node.value<std::int64_t>();
  if (value < min || value > max) {
    return fail(bad_key(source, key, fmt::format("must be between {} and {}", min, max)));
  }
  return value;
}

std::string toml_string(const std::string& value) {
  std::ostringstream out;
  out << toml::value<std::string>(value);
  return out.str();
}

std::string toml_number(double value) {
  std::ostringstream out;
  out << toml::value<double>(value);
  return out.str();
}

// A TOML syntax error as "<file>:<line>:<column>: not valid TOML: <what>" (the form editors jump
// to). The description only: the parser's excerpt could echo a token.
Error syntax_error(const toml::parse_error& error, std::string_view source) {
  const auto& begin = error.source().begin;
  return Error::make(Code::Protocol, "{}:{}:{}: not valid TOML: {}", source, begin.line,
                     begin.column, error.description());
}

bool is_state_key(std::string_view key) {
  for (auto state_key : kReferenceStateKeys) {
    if (state_key == key) return true;
  }
  return false;
}

struct ParsedConfig {
  WorkerConfig config;
  std::vector<std::string> state_keys;  // kReferenceStateKeys the text holds
  std::vector<std::string> inert_keys;  // kInertSettings the text holds
};

Result<ParsedConfig> parse_config_text(std::string_view toml_text, std::string_view source);
Status check_supported(const WorkerConfig& config);

bool is_http_url(const std::string& url) {
  return transfer::studio_base_url(url).has_value();
}

}  // namespace

std::filesystem::path WorkerConfig::resolved_models_root() const {
  if (models_root.empty()) {
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      return std::filesystem::path(home) / "models";
    }
    return std::filesystem::temp_directory_path() / "studio-worker-models";
  }
  if (models_root == "~" || models_root.starts_with("~/")) {
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      return std::filesystem::path(home) / models_root.substr(models_root.size() > 1 ? 2 : 1);
    }
  }
  return models_root;
}

void WorkerState::reset_registration() {
  worker_id.reset();
  auth_token.reset();
  registration_request_id.reset();
  registration_secret.reset();
  registration_rejected.reset();
  install_id.reset();
  join_token.reset();
}

Status WorkerState::set_join_token(std::string token) {
  if (token.empty() || token.size() > 200 || std::any_of(token.begin(), token.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      })) {
    return fail(Error::invalid_argument(
        "join token: expected the token `studio-server join-token create` printed (1 to 200 "
        "characters, no spaces)"));
  }
  if (registered()) {
    return fail(Error::invalid_argument(
        "this worker is approved already (as {}); a join token is for one that is not: "
        "`studio-worker register --reset --join-token T` joins again as a new worker",
        worker_id.value_or("?")));
  }
  join_token = std::move(token);
  registration_request_id.reset();
  registration_secret.reset();
  registration_rejected.reset();
  return {};
}

std::optional<std::string_view> inert_reason(std::string_view key) {
  for (const auto& setting : kInertSettings) {
    if (setting.key == key) return setting.why;
  }
  return std::nullopt;
}

std::filesystem::path default_config_path() {
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    base = std::filesystem::path(home) / ".config";
  } else {
    base = std::filesystem::temp_directory_path();
  }
  return base / "minis-studio-worker" / "config.toml";
}

Result<WorkerConfig> parse_config(std::string_view toml_text, std::string_view source) {
  auto parsed = parse_config_text(toml_text, source);
  if (!parsed) return fail(parsed.error());
  return std::move(parsed->config);
}

namespace {

Result<ParsedConfig> parse_config_text(std::string_view toml_text, std::string_view source) {
  toml::table table;
  try {
    table = toml::parse(toml_text, source);
  } catch (const toml::parse_error& error) {
    return fail(syntax_error(error, source));
  }
  ParsedConfig parsed;
  WorkerConfig& config = parsed.config;
  for (auto&& entry : table) {
    // Named, not structured bindings: lambdas below capture them (clang 14, the fuzz build).
    const std::string_view key = entry.first.str();
    auto& node = entry.second;
    if (is_state_key(key)) parsed.state_keys.emplace_back(key);
    if (inert_reason(key)) parsed.inert_keys.emplace_back(key);
    auto optional_string = [&](std::optional<std::string>& out) -> Status {
      auto value = as_string(source, key, node);
      if (!value) return fail(value.error());
      if (value->empty()) {
        out.reset();
      } else {
        out = std::move(*value);
      }
      return {};
    };
    if (key == "api_base_url") {
      auto value = as_string(source, key, node);
      if (!value) return fail(value.error());
      config.api_base_url = *value;
    } else if (key == "worker_id") {
      SW_TRY(optional_string(config.worker_id));
    } else if (key == "auth_token") {
      SW_TRY(optional_string(config.auth_token));
    } else if (key == "vram_threshold_gb") {
      auto value = as_number(source, key, node);
      if (!value) return fail(value.error());
      config.vram_threshold_gb = *value;
    } else if (key == "auto_start") {
      auto value = as_bool(source, key, node);
      if (!value) return fail(value.error());
      config.auto_start = *value;
    } else if (key == "start_minimised") {
      auto value = as_bool(source, key, node);
      if (!value) return fail(value.error());
      config.start_minimised = *value;
    } else if (key == "only_when_idle") {
      auto value = as_bool(source, key, node);
      if (!value) return fail(value.error());
      config.only_when_idle = *value;
    } else if (key == "auto_update_enabled") {
      auto value = as_bool(source, key, node);
      if (!value) return fail(value.error());
      config.auto_update_enabled = *value;
    } else if (key == "auto_update_interval_secs") {
      // Inert: any whole number (nothing reads it).
      auto value = as_integer(source, key, node, std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::max());
      if (!value) return fail(value.error());
      config.auto_update_interval_secs = *value;
    } else if (key == "auto_update_feed") {
      auto value = as_string(source, key, node);
      if (!value) return fail(value.error());
      config.auto_update_feed = *value;
    } else if (key == "auto_update_prerelease") {
      auto value = as_bool(source, key, node);
      if (!value) return fail(value.error());
      config.auto_update_prerelease = *value;
    } else if (key == "models_root") {
      auto value = as_string(source, key, node);
      if (!value) return fail(value.error());
      config.models_root = *value;
    } else if (key == "ws_reconnect_attempts") {
      auto value = as_integer(source, key, node, 0, 1'000'000);
      if (!value) return fail(value.error());
      config.ws_reconnect_attempts = static_cast<std::uint32_t>(*value);
    } else if (key == "local_api_port") {
      auto value = as_integer(source, key, node, 0, 65535);
      if (!value) return fail(value.error());
      config.local_api_port = static_cast<std::uint16_t>(*value);
    } else if (key == "stream_port") {
      // Inert: any whole number (no listener uses it).
      auto value = as_integer(source, key, node, std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::max());
      if (!value) return fail(value.error());
      config.stream_port = *value;
    } else if (key == "local_api_token") {
      SW_TRY(optional_string(config.local_api_token));
    } else if (key == "install_id") {
      SW_TRY(optional_string(config.install_id));
    } else if (key == "registration_request_id") {
      SW_TRY(optional_string(config.registration_request_id));
    } else if (key == "registration_secret") {
      SW_TRY(optional_string(config.registration_secret));
    } else if (key == "ca_file") {
      SW_TRY(optional_string(config.ca_file));
    } else if (key == "llama_server_path") {
      SW_TRY(optional_string(config.llama_server_path));
    } else if (key == "sd_cli_path") {
      SW_TRY(optional_string(config.sd_cli_path));
    } else if (key == "sd_server_path") {
      SW_TRY(optional_string(config.sd_server_path));
    } else if (key == "whisper_server_path") {
      SW_TRY(optional_string(config.whisper_server_path));
    } else if (key == "runner_idle_unload_secs") {
      auto value = as_integer(source, key, node, 1, 7LL * 24 * 3600);
      if (!value) return fail(value.error());
      config.runner_idle_unload_secs = static_cast<std::uint64_t>(*value);
    } else if (key == "runner_load_stall_secs") {
      auto value = as_integer(source, key, node, 1, 24LL * 3600);
      if (!value) return fail(value.error());
      config.runner_load_stall_secs = static_cast<std::uint64_t>(*value);
    } else if (key == "runner_inference_stall_secs") {
      auto value = as_integer(source, key, node, 1, 24LL * 3600);
      if (!value) return fail(value.error());
      config.runner_inference_stall_secs = static_cast<std::uint64_t>(*value);
    } else if (key == "outbox_max_entries") {
      auto value = as_integer(source, key, node, 1, 1'000'000);
      if (!value) return fail(value.error());
      config.outbox_max_entries = static_cast<std::uint64_t>(*value);
    } else if (key == "max_concurrent_jobs") {
      auto value = as_integer(source, key, node, 1, 16);
      if (!value) return fail(value.error());
      config.max_concurrent_jobs = static_cast<std::uint64_t>(*value);
    } else if (key == "outbox_max_mb") {
      auto value = as_integer(source, key, node, 1, 16LL * 1024 * 1024);
      if (!value) return fail(value.error());
      config.outbox_max_mb = static_cast<std::uint64_t>(*value);
    } else if (key == "engines" && node.is_table()) {
      SW_TRY(parse_engines(source, *node.as_table(), config.engines));
    } else if (is_legacy_key(key)) {
      logger().info("config.legacy_key_ignored", {{"key", key}, {"file", source}});
    } else {
      return fail(bad_key(source, key, "unknown key (a typo?)"));
    }
  }
  if (auto valid = validate_config(config, KeyNames::Toml); !valid) {
    return fail(Error::invalid_argument("{}: {}", source, valid.error().message));
  }
  return parsed;
}

}  // namespace

Status validate_config(const WorkerConfig& config, KeyNames names) {
  const bool toml = names == KeyNames::Toml;
  if (!config.api_base_url.empty()) {
    if (auto base = transfer::studio_base_url(config.api_base_url); !base) {
      return fail(Error::invalid_argument("{}: {}", toml ? "api_base_url" : "apiBaseUrl",
                                          base.error().message));
    }
  }
  if (!std::isfinite(config.vram_threshold_gb) || config.vram_threshold_gb < 0) {
    return fail(Error::invalid_argument("{}: must be a finite number >= 0",
                                        toml ? "vram_threshold_gb" : "vramThresholdGb"));
  }
  // Inert settings (kInertSettings) are not checked: nothing reads them, so no value of theirs
  // may stop the daemon. PUT /daemon/config checks the fields a body sets (apply_editable_config).
  return {};
}

std::string format_config(const WorkerConfig& config) {
  const WorkerConfig defaults;
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += fmt::format("{} = {}\n", key, value);
  };
  auto flag = [](bool value) { return std::string(value ? "true" : "false"); };
  auto optional = [&](std::string_view key, const std::optional<std::string>& value) {
    if (value) line(key, toml_string(*value));
  };
  if (!config.api_base_url.empty()) line("api_base_url", toml_string(config.api_base_url));
  line("vram_threshold_gb", toml_number(config.vram_threshold_gb));
  // Inert settings (kInertSettings) only when the operator changed them: a fresh file names no
  // feature this build does not have.
  if (config.auto_start != defaults.auto_start) line("auto_start", flag(config.auto_start));
  if (config.start_minimised != defaults.start_minimised) {
    line("start_minimised", flag(config.start_minimised));
  }
  line("only_when_idle", flag(config.only_when_idle));
  if (config.auto_update_enabled != defaults.auto_update_enabled) {
    line("auto_update_enabled", flag(config.auto_update_enabled));
  }
  if (config.auto_update_interval_secs != defaults.auto_update_interval_secs) {
    line("auto_update_interval_secs", std::to_string(config.auto_update_interval_secs));
  }
  if (config.auto_update_feed != defaults.auto_update_feed) {
    line("auto_update_feed", toml_string(config.auto_update_feed));
  }
  if (config.auto_update_prerelease != defaults.auto_update_prerelease) {
    line("auto_update_prerelease", flag(config.auto_update_prerelease));
  }
  if (!config.models_root.empty()) line("models_root", toml_string(config.models_root));
  if (config.ws_reconnect_attempts) {
    line("ws_reconnect_attempts", std::to_string(*config.ws_reconnect_attempts));
  }
  if (config.local_api_port) line("local_api_port", std::to_string(*config.local_api_port));
  if (config.stream_port) line("stream_port", std::to_string(*config.stream_port));
  optional("ca_file", config.ca_file);
  optional("llama_server_path", config.llama_server_path);
  optional("sd_cli_path", config.sd_cli_path);
  optional("sd_server_path", config.sd_server_path);
  optional("whisper_server_path", config.whisper_server_path);
  if (config.runner_idle_unload_secs != defaults.runner_idle_unload_secs) {
    line("runner_idle_unload_secs", std::to_string(config.runner_idle_unload_secs));
  }
  if (config.runner_load_stall_secs != defaults.runner_load_stall_secs) {
    line("runner_load_stall_secs", std::to_string(config.runner_load_stall_secs));
  }
  if (config.runner_inference_stall_secs != defaults.runner_inference_stall_secs) {
    line("runner_inference_stall_secs", std::to_string(config.runner_inference_stall_secs));
  }
  if (config.outbox_max_entries != defaults.outbox_max_entries) {
    line("outbox_max_entries", std::to_string(config.outbox_max_entries));
  }
  if (config.outbox_max_mb != defaults.outbox_max_mb) {
    line("outbox_max_mb", std::to_string(config.outbox_max_mb));
  }
  if (config.max_concurrent_jobs != defaults.max_concurrent_jobs) {
    line("max_concurrent_jobs", std::to_string(config.max_concurrent_jobs));
  }
  // Tables last: every key after a table header belongs to it.
  if (config.engines != EnginesConfig{}) {
    out += "\n[engines]\n";
    line("synthetic", flag(config.engines.synthetic));
  }
  return out;
}

std::filesystem::path state_path_for(const std::filesystem::path& config_path) {
  return config_path.parent_path() / "state.toml";
}

std::string format_state(const WorkerState& state) {
  std::string out =
      "# studio-worker's own state: written by the daemon and `studio-worker register`.\n"
      "# Settings belong in config.toml beside this file.\n";
  auto optional = [&out](std::string_view key, const std::optional<std::string>& value) {
    if (value) out += fmt::format("{} = {}\n", key, toml_string(*value));
  };
  optional("install_id", state.install_id);
  optional("registration_request_id", state.registration_request_id);
  optional("registration_secret", state.registration_secret);
  optional("registration_rejected", state.registration_rejected);
  optional("worker_id", state.worker_id);
  optional("auth_token", state.auth_token);
  optional("local_api_token", state.local_api_token);
  optional("join_token", state.join_token);
  return out;
}

Result<WorkerState> parse_state(std::string_view toml_text, std::string_view source) {
  toml::table table;
  try {
    table = toml::parse(toml_text, source);
  } catch (const toml::parse_error& error) {
    return fail(syntax_error(error, source));
  }
  WorkerState state;
  std::pair<std::string_view, std::optional<std::string>*> fields[] = {
      {"worker_id", &state.worker_id},
      {"auth_token", &state.auth_token},
      {"install_id", &state.install_id},
      {"registration_request_id", &state.registration_request_id},
      {"registration_secret", &state.registration_secret},
      {"registration_rejected", &state.registration_rejected},
      {"local_api_token", &state.local_api_token},
      {"join_token", &state.join_token}};
  for (auto&& entry : table) {
    const std::string_view key = entry.first.str();
    std::optional<std::string>* field = nullptr;
    for (auto& [name, target] : fields) {
      if (name == key) field = target;
    }
    if (field == nullptr) {
      logger().info("state.unknown_key_ignored", {{"key", key}, {"file", source}});
      continue;
    }
    auto value = as_string(source, key, entry.second);
    if (!value) return fail(value.error());
    if (value->empty()) {
      field->reset();
    } else {
      *field = std::move(*value);
    }
  }
  return state;
}

namespace {

// The whole file, or nullopt when it does not exist.
Result<std::optional<std::string>> read_text(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) return fail(Error::io("cannot read {}: {}", path.string(), ec.message()));
    return std::optional<std::string>();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::io("cannot read {}: {}", path.string(), std::strerror(errno)));
  return std::optional<std::string>(
      std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()});
}

}  // namespace

Result<std::optional<WorkerState>> load_state(const std::filesystem::path& state_path) {
  auto text = read_text(state_path);
  if (!text) return fail(text.error());
  if (!*text) return std::optional<WorkerState>();
  auto state = parse_state(**text, state_path.string());
  if (!state) return fail(state.error());
  return std::optional<WorkerState>(std::move(*state));
}

Result<std::optional<std::filesystem::path>> set_aside_unusable_state(
    const std::filesystem::path& config_path) {
  // config.toml first: when it is what cannot be used, state.toml stays where it is.
  auto text = read_text(config_path);
  if (!text) return fail(text.error());
  if (*text) {
    auto parsed = parse_config_text(**text, config_path.string());
    if (!parsed) return fail(parsed.error());
  }
  const auto state_path = state_path_for(config_path);
  auto state = load_state(state_path);
  if (state || state.error().code == Code::IoError) return std::optional<std::filesystem::path>();
  const std::string why = state.error().message;
  const auto stamp = std::to_string(static_cast<long long>(std::time(nullptr)));
  auto aside = state_path;
  aside += ".broken-" + stamp;
  std::error_code ec;
  // A free name: an earlier copy (a second reset within the second) is never overwritten.
  for (int n = 1; std::filesystem::exists(aside, ec); ++n) {
    aside = state_path;
    aside += ".broken-" + stamp + "-" + std::to_string(n);
  }
  std::filesystem::rename(state_path, aside, ec);
  if (ec) {
    return fail(Error::io("cannot move {} aside to {}: {}", state_path.string(), aside.string(),
                          ec.message()));
  }
  std::filesystem::permissions(
      aside, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  if (ec) {
    return fail(Error::io("cannot make {} private: {}", aside.string(), ec.message()));
  }
  logger().warn("state.set_aside",
                {{"from", state_path.string()}, {"to", aside.string()}, {"error", why}});
  return std::optional<std::filesystem::path>(aside);
}

Result<LoadedConfig> load_config(const std::filesystem::path& path, LoadMode mode,
                                 double detected_vram_gb) {
  LoadedConfig loaded;
  loaded.path = path;
  loaded.state_path = state_path_for(path);
  auto text = read_text(path);
  if (!text) return fail(text.error());
  if (!*text) {
    loaded.created = true;
    loaded.config.models_root = "~/models";
    if (detected_vram_gb > 0 && loaded.config.vram_threshold_gb > detected_vram_gb) {
      loaded.config.vram_threshold_gb = detected_vram_gb;
    }
  } else {
    auto parsed = parse_config_text(**text, path.string());
    if (!parsed) return fail(parsed.error());
    loaded.config = std::move(parsed->config);
    loaded.state_keys_in_config = std::move(parsed->state_keys);
    loaded.inert_keys = std::move(parsed->inert_keys);
  }
  auto state = load_state(loaded.state_path);
  if (!state) return fail(state.error());
  if (*state) {
    // The state file wins over whatever state keys config.toml still holds.
    loaded.state_file = true;
    loaded.config.state() = std::move(**state);
  }
  if (mode == LoadMode::Migrate) SW_TRY(migrate_state(loaded));
  return loaded;
}

Status migrate_state(LoadedConfig& loaded) {
  if (loaded.state_file || loaded.state_keys_in_config.empty()) return {};
  SW_TRY(save_state(loaded.state_path, loaded.config.state()));
  loaded.state_file = true;
  loaded.migrated = true;
  std::string keys;
  for (const auto& key : loaded.state_keys_in_config) {
    keys += (keys.empty() ? "" : ",") + key;
  }
  logger().info("state.migrated", {{"from", loaded.path.string()},
                                   {"to", loaded.state_path.string()},
                                   {"keys", keys},
                                   {"note", "config.toml is left as it is; state.toml wins"}});
  return {};
}

// The config's directory made 0700, saying so when an older install had it looser.
static Status make_dir_private_and_log(const std::filesystem::path& dir) {
  auto made = make_private_dir(dir);
  if (!made) return fail(made.error());
  if (*made) {
    logger().warn("permissions.tightened",
                  {{"path", dir.string()}, {"from", fmt::format("{:04o}", **made)}, {"to", "0700"}});
  }
  return {};
}

Status save_config(const std::filesystem::path& path, const WorkerConfig& config) {
  const auto dir = path.parent_path();
  if (!dir.empty()) {
    SW_TRY(make_dir_private_and_log(dir));
  }
  auto written =
      write_file_atomically(path, format_config(config), Durability::Fsync, kPrivateFileMode);
  if (!written) {
    return fail(Error::io("cannot save {}: {}", path.string(), written.error().message));
  }
  logger().debug("config.saved", {{"path", path.string()}});
  return {};
}

Status save_state(const std::filesystem::path& state_path, const WorkerState& state) {
  const auto dir = state_path.parent_path();
  if (!dir.empty()) {
    SW_TRY(make_dir_private_and_log(dir));
  }
  auto written =
      write_file_atomically(state_path, format_state(state), Durability::Fsync, kPrivateFileMode);
  if (!written) {
    return fail(Error::io("cannot save {}: {}", state_path.string(), written.error().message));
  }
  logger().debug("state.saved", {{"path", state_path.string()}});
  return {};
}

Status save_changes(const std::filesystem::path& config_path, const WorkerConfig& before,
                    const WorkerConfig& after) {
  if (before.state() != after.state()) {
    SW_TRY(save_state(state_path_for(config_path), after.state()));
  }
  // The settings alone: `after` with `before`'s state.
  WorkerConfig settings = after;
  settings.state() = before.state();
  if (settings != before) SW_TRY(save_config(config_path, after));
  return {};
}

Status make_state_private(const std::filesystem::path& config_path) {
  // A bare file name lives in the working directory, which is not ours to narrow.
  const bool own_dir = !config_path.parent_path().empty();
  const auto dir = own_dir ? config_path.parent_path() : std::filesystem::path(".");
  if (own_dir) {
    SW_TRY(make_dir_private_and_log(dir));
  }
  const std::string prefixes[] = {config_path.filename().string(), "state.toml", "outbox.db",
                                  "daemon.lock", "local-api.json"};
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    bool ours = false;
    for (const auto& prefix : prefixes) ours = ours || name.rfind(prefix, 0) == 0;
    if (!ours || !entry.is_regular_file(ec)) continue;
    auto narrowed = tighten_private_file(entry.path());
    if (!narrowed) return fail(narrowed.error());
    if (*narrowed) {
      logger().warn("permissions.tightened", {{"path", entry.path().string()},
                                              {"from", fmt::format("{:04o}", **narrowed)},
                                              {"to", "0600"}});
    }
  }
  if (ec) return fail(Error::io("cannot list {}: {}", dir.string(), ec.message()));
  return {};
}

std::string editable_config_json(const WorkerConfig& config) {
  nlohmann::json json = {
      {"apiBaseUrl", config.api_base_url},
      {"vramThresholdGb", config.vram_threshold_gb},
      {"autoStart", config.auto_start},
      {"startMinimised", config.start_minimised},
      {"onlyWhenIdle", config.only_when_idle},
      {"autoUpdateEnabled", config.auto_update_enabled},
      {"autoUpdateIntervalSecs", config.auto_update_interval_secs},
      {"autoUpdateFeed", config.auto_update_feed},
      {"autoUpdatePrerelease", config.auto_update_prerelease},
      {"modelsRoot", config.models_root.empty() ? config.resolved_models_root().string()
                                                : config.models_root},
  };
  return json.dump();
}

Result<WorkerConfig> apply_editable_config(const WorkerConfig& config, std::string_view body) {
  auto parsed = parse_json(body, "request body", JsonLimits{1u << 20, kJsonMaxDepth});
  if (!parsed) return fail(Error::protocol("{}", parsed.error().message));
  const nlohmann::json& json = *parsed;
  if (!json.is_object()) {
    return fail(Error::protocol("body must be a JSON object"));
  }
  WorkerConfig next = config;
  for (const auto& item : json.items()) {
    const std::string key = item.key();
    const auto& value = item.value();
    auto need = [&](bool ok, std::string_view what) -> Status {
      if (!ok) return fail(Error::invalid_argument("{}: must be {}", key, what));
      return {};
    };
    if (key == "apiBaseUrl") {
      SW_TRY(need(value.is_string() && !value.get<std::string>().empty(),
                  "an http(s) URL with a host"));
      next.api_base_url = value.get<std::string>();
    } else if (key == "vramThresholdGb") {
      SW_TRY(need(value.is_number(), "a number"));
      next.vram_threshold_gb = value.get<double>();
    } else if (key == "autoStart") {
      SW_TRY(need(value.is_boolean(), "true or false"));
      next.auto_start = value.get<bool>();
    } else if (key == "startMinimised") {
      SW_TRY(need(value.is_boolean(), "true or false"));
      next.start_minimised = value.get<bool>();
    } else if (key == "onlyWhenIdle") {
      SW_TRY(need(value.is_boolean(), "true or false"));
      next.only_when_idle = value.get<bool>();
    } else if (key == "autoUpdateEnabled") {
      SW_TRY(need(value.is_boolean(), "true or false"));
      next.auto_update_enabled = value.get<bool>();
    } else if (key == "autoUpdateIntervalSecs") {
      // The reference's rule for the API (§5.2), though the setting is inert here.
      SW_TRY(need(value.is_number_unsigned() && value.get<std::uint64_t>() >= 60 &&
                      value.get<std::uint64_t>() <=
                          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                  "a whole number of seconds >= 60"));
      next.auto_update_interval_secs = static_cast<std::int64_t>(value.get<std::uint64_t>());
    } else if (key == "autoUpdateFeed") {
      SW_TRY(need(value.is_string() && is_http_url(value.get<std::string>()),
                  "an http(s) URL with a host"));
      next.auto_update_feed = value.get<std::string>();
    } else if (key == "autoUpdatePrerelease") {
      SW_TRY(need(value.is_boolean(), "true or false"));
      next.auto_update_prerelease = value.get<bool>();
    } else if (key == "modelsRoot") {
      SW_TRY(need(value.is_string() && !value.get<std::string>().empty(), "a non-empty path"));
      next.models_root = value.get<std::string>();
    } else {
      return fail(Error::invalid_argument("{}: unknown field", key));
    }
  }
  SW_TRY(validate_config(next));
  SW_TRY(check_supported(next));
  return next;
}

namespace {

// The settings this build parses but cannot honour (check_runnable).
Status check_supported(const WorkerConfig& config) {
  if (config.only_when_idle) {
    return fail(Error::invalid_argument(
        "only_when_idle (onlyWhenIdle): not supported by this build: it has no probe of the "
        "user's presence (input idle time), so the worker would never run a job; set it to "
        "false"));
  }
  return {};
}

}  // namespace

Status check_runnable(const WorkerConfig& config) {
  if (config.api_base_url.empty()) {
    return fail(Error::invalid_argument(
        "api_base_url: no studio URL is configured (there is no default studio); run "
        "`studio-worker register --api-base-url URL` first"));
  }
  return check_supported(config);
}

}  // namespace sw::worker
