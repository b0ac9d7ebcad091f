#pragma once
// The config-only commands of `studio-worker` (reference-worker.md §5.3): status, register,
// set-threshold, config. They read config.toml and state.toml (config.h), write the one they
// change, and never touch the network. None repairs a file that does not parse.

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "common/error.h"

namespace sw::worker {

// config path, state path, api_base_url, registration, vram_threshold_gb, auto_start,
// models_root, auto_update, update_interval — one `key: value` line each; inert settings say so.
Status print_status(const std::filesystem::path& config_path, std::ostream& out);

// Persists `api_base_url` (config.toml) and/or clears the registration (state.toml: worker id,
// token, request, secret, rejection, install id). Prints what it did.
Status register_command(const std::filesystem::path& config_path,
                        const std::optional<std::string>& api_base_url, bool reset,
                        std::ostream& out);

Status set_threshold(const std::filesystem::path& config_path, double gigabytes,
                     std::ostream& out);

// `# <config path>` then its settings (inert ones marked), then `# <state path>` and the state,
// secrets replaced by "<redacted>".
Status print_config(const std::filesystem::path& config_path, std::ostream& out);

}  // namespace sw::worker
