#include "worker/cli_commands.h"

#include <cmath>
#include <sstream>

#include "transfer/url_policy.h"
#include "worker/config.h"
#include "worker/vram_probe.h"

namespace sw::worker {

namespace {

std::string with_inert_note(std::string_view key, std::string value) {
  if (auto why = inert_reason(key)) value += fmt::format(" (inert: {})", *why);
  return value;
}

}  // namespace

Status print_status(const std::filesystem::path& config_path, std::ostream& out) {
  auto loaded = load_config(config_path, LoadMode::ReadOnly);
  if (!loaded) return fail(loaded.error());
  const WorkerConfig& config = loaded->config;
  std::string registration;
  if (config.registered()) {
    registration = "approved as " + *config.worker_id;
  } else if (config.registration_rejected) {
    registration = "rejected by the studio operator: " + *config.registration_rejected +
                   " (`studio-worker register --reset` to ask again)";
  } else if (config.registration_request_id) {
    registration = "pending operator approval (request " + *config.registration_request_id + ")";
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

Status register_command(const std::filesystem::path& config_path,
                        const std::optional<std::string>& api_base_url, bool reset,
                        std::ostream& out) {
  // Migrate: a reference-style config.toml's registration moves to state.toml before either file
  // is rewritten, so that neither the reset nor a new URL loses it by accident.
  auto loaded = load_config(config_path, LoadMode::Migrate, memoised_vram_total_gib());
  if (!loaded) return fail(loaded.error());
  WorkerConfig config = loaded->config;
  if (api_base_url) {
    if (auto base = transfer::studio_base_url(*api_base_url); !base) {
      return fail(Error::invalid_argument("--api-base-url: {}", base.error().message));
    }
    config.api_base_url = *api_base_url;
  }
  if (reset) config.reset_registration();
  SW_TRY(validate_config(config));
  if (api_base_url) SW_TRY(save_config(config_path, config));
  if (reset) SW_TRY(save_state(loaded->state_path, config.state()));
  if (api_base_url) out << "api_base_url set to " << config.api_base_url << "\n";
  if (reset) out << "registration cleared; the daemon will ask the studio again on next launch\n";
  if (!api_base_url && !reset) {
    if (config.api_base_url.empty()) {
      out << "nothing to change; no studio URL is set: run `studio-worker register "
             "--api-base-url URL`\n";
    } else {
      out << "nothing to change; the daemon registers itself with " << config.api_base_url
          << " on launch\n";
    }
  }
  return {};
}

Status set_threshold(const std::filesystem::path& config_path, double gigabytes,
                     std::ostream& out) {
  if (!std::isfinite(gigabytes) || gigabytes < 0) {
    return fail(Error::invalid_argument("threshold must be >= 0"));
  }
  auto loaded = load_config(config_path, LoadMode::Migrate, memoised_vram_total_gib());
  if (!loaded) return fail(loaded.error());
  WorkerConfig config = loaded->config;
  config.vram_threshold_gb = gigabytes;
  SW_TRY(save_config(config_path, config));
  out << "vram_threshold_gb set to " << gigabytes << "\n";
  const double detected = memoised_vram_total_gib();
  if (detected > 0 && gigabytes > detected) {
    out << "warning: the threshold exceeds the detected " << detected
        << " GB of VRAM; jobs that large will not fit\n";
  }
  return {};
}

Status print_config(const std::filesystem::path& config_path, std::ostream& out) {
  auto loaded = load_config(config_path, LoadMode::ReadOnly);
  if (!loaded) return fail(loaded.error());
  WorkerConfig config = loaded->config;
  const std::string redacted = "<redacted>";
  if (config.auth_token) config.auth_token = redacted;
  if (config.registration_secret) config.registration_secret = redacted;
  if (config.local_api_token) config.local_api_token = redacted;
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
