#include "worker/cli_commands.h"

#include <cmath>

#include "transfer/url_policy.h"
#include "worker/config.h"
#include "worker/vram_probe.h"

namespace sw::worker {

Status print_status(const std::filesystem::path& config_path, std::ostream& out) {
  auto loaded = load_config(config_path, LoadMode::ReadOnly);
  if (!loaded) return fail(loaded.error());
  const WorkerConfig& config = loaded->config;
  std::string registration;
  if (config.registered()) {
    registration = "approved as " + *config.worker_id;
  } else if (config.registration_request_id) {
    registration = "pending operator approval (request " + *config.registration_request_id + ")";
  } else {
    registration = "not registered (will auto-register on next launch)";
  }
  out << "config path: " << config_path.string() << (loaded->created ? " (not created yet)" : "")
      << "\n"
      << "api_base_url: " << config.api_base_url << "\n"
      << "registration: " << registration << "\n"
      << "vram_threshold_gb: " << config.vram_threshold_gb << "\n"
      << "auto_start: " << (config.auto_start ? "true" : "false") << "\n"
      << "models_root: " << config.resolved_models_root().string() << "\n"
      << "auto_update: " << (config.auto_update_enabled ? "true" : "false") << "\n"
      << "update_interval: " << config.auto_update_interval_secs << "s\n";
  return {};
}

Status register_command(const std::filesystem::path& config_path,
                        const std::optional<std::string>& api_base_url, bool reset,
                        std::ostream& out) {
  auto loaded = load_config(config_path, LoadMode::Repair, memoised_vram_total_gib());
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
  SW_TRY(save_config(config_path, config));
  if (api_base_url) out << "api_base_url set to " << config.api_base_url << "\n";
  if (reset) out << "registration cleared; the daemon will ask the studio again on next launch\n";
  if (!api_base_url && !reset) {
    out << "nothing to change; the daemon registers itself with " << config.api_base_url
        << " on launch\n";
  }
  return {};
}

Status set_threshold(const std::filesystem::path& config_path, double gigabytes,
                     std::ostream& out) {
  if (!std::isfinite(gigabytes) || gigabytes < 0) {
    return fail(Error::invalid_argument("threshold must be >= 0"));
  }
  auto loaded = load_config(config_path, LoadMode::Repair, memoised_vram_total_gib());
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
  out << "# " << config_path.string() << "\n" << format_config(config);
  return {};
}

}  // namespace sw::worker
