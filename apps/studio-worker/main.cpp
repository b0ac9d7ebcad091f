// studio-worker: command-line wiring only (house style C.2 §14).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "engines/build_engine.h"
#include "worker/local_samples.h"
#include "worker/model_commands.h"

#include <unistd.h>

namespace {

int run_samples_command(const std::string& out_dir, const std::string& prompt) {
  auto engine = sw::engines::build_engine();
  auto outputs = sw::worker::run_samples(*engine, out_dir, prompt);
  if (!outputs) {
    std::cerr << "studio-worker samples: " << outputs.error().message << "\n";
    return 1;
  }
  std::cout << "wrote " << outputs->size() << " results to " << out_dir << ":\n";
  for (const auto& output : *outputs) {
    std::cout << "  " << sw::proto::to_string(output.kind) << " (" << output.model
              << "): " << output.path.string() << "  [" << output.description << ", "
              << output.bytes << " bytes]\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sw::log::init_from_env();
  CLI::App app{"studio-worker: pull-based generative-AI worker"};
  app.set_version_flag("--version", std::string("studio-worker ") + SW_VERSION + " (cpu)");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "Log output on stderr")
      ->check(CLI::IsMember({"text", "json"}));
  app.require_subcommand(0, 1);

  auto* samples = app.add_subcommand(
      "samples", "Run one job of every task kind locally (synthetic engine) and write the results");
  std::string out_dir;
  std::string prompt = "a lighthouse on a cliff at dawn";
  samples->add_option("--out", out_dir, "Folder to write the results into")->required();
  samples->add_option("--prompt", prompt, "Prompt or text used for every sample job");

  auto* models = app.add_subcommand("models", "Model files: fetch into the cache, inspect GGUF");
  models->require_subcommand(1);
  sw::worker::FetchOptions fetch;
  double cache_max_gb = 0;
  auto* fetch_cmd = models->add_subcommand("fetch", "Download a model's files into the cache");
  fetch_cmd->add_option("--model", fetch.model_id, "Model id (names the cache folder)")->required();
  fetch_cmd->add_option("--source", fetch.source_json, "ModelSource JSON file")
      ->required()
      ->check(CLI::ExistingFile);
  fetch.models_root = sw::worker::default_models_root();
  fetch_cmd->add_option("--models-root", fetch.models_root, "Cache root (default ~/models)");
  fetch_cmd->add_option("--cache-max-gb", cache_max_gb, "Cache budget in GB (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  std::string gguf_path;
  std::optional<std::uint32_t> context;
  auto* inspect_cmd =
      models->add_subcommand("inspect", "Print a GGUF file's metadata and memory estimate");
  inspect_cmd->add_option("file", gguf_path, "GGUF file")->required()->check(CLI::ExistingFile);
  inspect_cmd->add_option("--context", context,
                          "Context size to estimate for (default 8192, capped)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (log_format == "json") sw::log::set_format(sw::log::Format::Json);

  int rc = 0;
  if (samples->parsed()) {
    rc = run_samples_command(out_dir, prompt);
  } else if (fetch_cmd->parsed()) {
    fetch.cache_max_bytes = static_cast<std::uint64_t>(cache_max_gb * 1e9);
    fetch.progress_bar = ::isatty(STDERR_FILENO) != 0;
    auto status = sw::worker::fetch_model(fetch, std::cout, std::cerr);
    if (!status) std::cerr << "studio-worker models fetch: " << status.error().message << "\n";
    rc = status ? 0 : 1;
  } else if (inspect_cmd->parsed()) {
    auto status = sw::worker::inspect_gguf(gguf_path, context, std::cout);
    if (!status) std::cerr << "studio-worker models inspect: " << status.error().message << "\n";
    rc = status ? 0 : 1;
  } else {
    std::cerr
        << "studio-worker: a command is required (samples, models); run with --help for more\n";
    rc = 2;
  }
  sw::log::shutdown();
  return rc;
}
