#include "engines/engine_inventory.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "engines/composite_engine.h"
#include "engines/espeak/espeak_engine.h"
#include "engines/espeak/espeak_library.h"

namespace sw::engines {
namespace {

constexpr auto kStopGrace = std::chrono::milliseconds(500);

std::string trimmed(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

ProgramReport locate(const std::optional<std::string>& configured, std::string name,
                     std::string config_key, std::string env_var, std::string role = {}) {
  ProgramReport report;
  report.name = std::move(name);
  report.role = std::move(role);
  report.config_key = std::move(config_key);
  report.env_var = std::move(env_var);
  auto found = find_program(configured, report.env_var.c_str(), report.name);
  if (found) {
    report.location = std::move(*found);
  } else {
    report.problem = found.error().message;
    report.misconfigured = found.error().code == Code::InvalidArgument;
  }
  return report;
}

// Whether a line of a program's output complains about its arguments.
bool is_complaint(const std::string& folded) {
  return folded.find("unknown") != std::string::npos ||
         folded.find("invalid") != std::string::npos || folded.find("error") != std::string::npos ||
         folded.find("unrecognized") != std::string::npos;
}

// The output of a child from its first line (ChildProcess keeps only the last ones, and a program
// that does not know --version prints its complaint first, then a long usage text).
struct CollectedLines {
  static constexpr std::size_t kMax = 400;
  std::mutex mutex;
  std::vector<std::string> lines;
  std::vector<std::string> take() {
    std::lock_guard lock(mutex);
    return lines;
  }
};

// Runs `<program> --version` under supervision and keeps its first meaningful line.
void probe_version(ProgramReport& program, std::chrono::milliseconds timeout) {
  auto collected = std::make_shared<CollectedLines>();
  ChildSpec spec;
  spec.executable = program.location->path;
  spec.args = {"--version"};
  spec.on_line = [collected](std::string_view line) {
    std::lock_guard lock(collected->mutex);
    if (collected->lines.size() < CollectedLines::kMax) collected->lines.emplace_back(line);
  };
  // As SdCppEngine runs it: release archives put libstable-diffusion.so beside sd-cli.
  const auto dir = spec.executable.parent_path();
  std::error_code ec;
  if (std::filesystem::exists(dir / "libstable-diffusion.so", ec)) {
    const char* existing = std::getenv("LD_LIBRARY_PATH");
    spec.extra_env.push_back(fmt::format("LD_LIBRARY_PATH={}{}{}", dir.string(),
                                         existing && *existing ? ":" : "",
                                         existing ? existing : ""));
  }
  auto child = ChildProcess::start(std::move(spec));
  if (!child) {
    program.version_problem = child.error().message;
    return;
  }
  const auto exit = (*child)->wait_for(timeout);
  if (!exit) (*child)->stop(kStopGrace);
  const auto lines = collected->take();
  if (auto version = version_line(lines)) {
    program.version = std::move(*version);
    return;
  }
  // What it said instead: its complaint about the argument, else its first line.
  std::string said;
  for (const auto& line : lines) {
    std::string text = trimmed(line);
    if (text.empty()) continue;
    if (said.empty()) said = text;
    if (is_complaint(lower(text))) {
      said = std::move(text);
      break;
    }
  }
  if (said.empty()) said = "(no output)";
  if (!exit) {
    program.version_problem =
        fmt::format("did not answer --version within {} ms (stopped): {}", timeout.count(), said);
  } else {
    program.version_problem =
        fmt::format("--version gave no version ({}): {}", exit->describe(), said);
  }
}

EngineReport program_engine(std::string engine, std::vector<ProgramReport> programs) {
  EngineReport report;
  report.engine = std::move(engine);
  report.provider = Provider::Programs;
  // sd-cpp runs on sd-server (resident) when it is there, else sd-cli per job: either will do.
  report.found = std::any_of(programs.begin(), programs.end(),
                             [](const ProgramReport& p) { return p.location.has_value(); });
  report.programs = std::move(programs);
  if (!report.found) report.hint = remedy_for_missing_engine(report.engine);
  return report;
}

EngineReport espeak_report() {
  EngineReport report;
  report.engine = "espeak-ng";
  report.provider = Provider::Library;
  report.library = "libespeak-ng";
  // The report loads the library (a worker loads it only for its first synthesis).
  auto library = espeak_library();
  if (!library) {
    report.problem = library.error().message;
    report.hint = remedy_for_missing_engine(report.engine);
    return report;
  }
  report.found = true;
  // Static strings of the library; only valid once it is initialised (espeak_library() above).
  const char* data = nullptr;
  const char* version = (*library)->info(&data);
  report.library_version = version != nullptr ? version : "";
  report.library_data = data != nullptr ? data : "";
  return report;
}

nlohmann::json or_null(const std::string& text) {
  return text.empty() ? nlohmann::json() : nlohmann::json(text);
}

constexpr int kEngineColumn = 13;
constexpr int kStatusColumn = 9;

}  // namespace

std::string ProgramReport::found_via() const {
  if (!location) return {};
  switch (location->via) {
    case ProgramLocation::Via::Config: return "config " + config_key;
    case ProgramLocation::Via::Environment: return "$" + env_var;
    case ProgramLocation::Via::Path: return "PATH";
  }
  return {};
}

std::optional<std::string> version_line(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    std::string text = trimmed(line);
    const std::string folded = lower(text);
    if (folded.find("version") != std::string::npos && !is_complaint(folded)) return text;
  }
  return std::nullopt;
}

std::vector<EngineReport> take_inventory(const InventoryOptions& options) {
  std::vector<EngineReport> engines;
  // Names, keys and variables as build_engines() and config.toml spell them.
  engines.push_back(
      program_engine("llama-cpp", {locate(options.llama_server_path, "llama-server",
                                          "llama_server_path", "STUDIO_WORKER_LLAMA_SERVER")}));
  engines.push_back(program_engine(
      "whisper-cpp", {locate(options.whisper_server_path, "whisper-server", "whisper_server_path",
                             "STUDIO_WORKER_WHISPER_SERVER")}));
  engines.push_back(program_engine(
      "sd-cpp",
      {locate(options.sd_cli_path, "sd-cli", "sd_cli_path", "STUDIO_WORKER_SD_CLI", "per job"),
       locate(options.sd_server_path, "sd-server", "sd_server_path", "STUDIO_WORKER_SD_SERVER",
              "resident")}));
  engines.push_back(espeak_report());
  EngineReport synthetic;
  synthetic.engine = "synthetic";
  synthetic.provider = Provider::BuiltIn;
  synthetic.found = true;
  synthetic.enabled = options.synthetic;
  engines.push_back(std::move(synthetic));

  if (options.probe_versions) {
    // Concurrently: a program that hangs costs one timeout, not one per program.
    std::vector<std::thread> probes;
    for (EngineReport& engine : engines) {
      for (ProgramReport& program : engine.programs) {
        if (!program.location) continue;
        probes.emplace_back(
            [&program, timeout = options.version_timeout] { probe_version(program, timeout); });
      }
    }
    for (std::thread& probe : probes) probe.join();
  }
  return engines;
}

std::string format_inventory(const std::vector<EngineReport>& engines) {
  std::string out;
  const std::string indent(kEngineColumn + kStatusColumn, ' ');
  for (const EngineReport& engine : engines) {
    const char* status = !engine.found ? "missing" : engine.enabled ? "found" : "disabled";
    out += fmt::format("{:<{}}{:<{}}", engine.engine, kEngineColumn, status, kStatusColumn);
    bool first = true;
    auto line = [&](const std::string& text) {
      out += first ? text : indent + text;
      out += "\n";
      first = false;
    };
    switch (engine.provider) {
      case Provider::Programs:
        for (const ProgramReport& program : engine.programs) {
          const std::string role = program.role.empty() ? "" : " (" + program.role + ")";
          if (!program.location) {
            // find_program's words name the program, or the variable that should have.
            line(program.problem.starts_with(program.name) ? program.problem
                                                           : program.name + ": " + program.problem);
            continue;
          }
          line(fmt::format("{}{} {} (from {})", program.name, role, program.location->path.string(),
                           program.found_via()));
          if (program.version) {
            line("  " + *program.version);
          } else if (!program.version_problem.empty()) {
            line("  version unknown: " + program.version_problem);
          }
        }
        break;
      case Provider::Library:
        if (engine.found) {
          line(fmt::format("{} {} (opened on first use; voice data {})", engine.library,
                           engine.library_version, engine.library_data));
        } else {
          line(engine.library + ": " + engine.problem);
        }
        break;
      case Provider::BuiltIn:
        line(engine.enabled ? "built in, enabled"
                            : "built in, switched off in config ([engines] synthetic = false)");
        break;
    }
    if (!engine.found && !engine.hint.empty()) line("to install: " + engine.hint);
  }
  return out;
}

std::string inventory_json(const std::vector<EngineReport>& engines) {
  nlohmann::json list = nlohmann::json::array();
  for (const EngineReport& engine : engines) {
    nlohmann::json programs = nlohmann::json::array();
    for (const ProgramReport& program : engine.programs) {
      nlohmann::json entry = {
          {"program", program.name},
          {"role", or_null(program.role)},
          {"found", program.location.has_value()},
          {"path",
           program.location ? nlohmann::json(program.location->path.string()) : nlohmann::json()},
          {"foundVia", program.location
                           ? nlohmann::json(std::string(to_string(program.location->via)))
                           : nlohmann::json()},
          {"configKey", program.config_key},
          {"envVar", program.env_var},
          {"version", program.version ? nlohmann::json(*program.version) : nlohmann::json()},
          {"versionProblem", or_null(program.version_problem)},
          {"problem", or_null(program.problem)},
      };
      programs.push_back(std::move(entry));
    }
    nlohmann::json library;
    if (engine.provider == Provider::Library) {
      library = {{"name", engine.library},
                 {"version", or_null(engine.library_version)},
                 {"dataPath", or_null(engine.library_data)}};
    }
    list.push_back({{"engine", engine.engine},
                    {"found", engine.found},
                    {"enabled", engine.enabled},
                    {"builtIn", engine.provider == Provider::BuiltIn},
                    {"programs", std::move(programs)},
                    {"library", std::move(library)},
                    {"problem", or_null(engine.problem)},
                    {"hint", or_null(engine.hint)}});
  }
  return nlohmann::json{{"engines", std::move(list)}}.dump(2) + "\n";
}

}  // namespace sw::engines
