// studio-worker: command-line wiring only (house style C.2 §14).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "engines/build_engine.h"
#include "worker/local_samples.h"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (log_format == "json") sw::log::set_format(sw::log::Format::Json);

  int rc = 0;
  if (samples->parsed()) {
    rc = run_samples_command(out_dir, prompt);
  } else {
    std::cerr << "studio-worker: a command is required (samples); run with --help for more\n";
    rc = 2;
  }
  sw::log::shutdown();
  return rc;
}
