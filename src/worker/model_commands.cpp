#include "worker/model_commands.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "models/gguf.h"
#include "models/model_cache.h"
#include "proto/codec.h"

namespace sw::worker {
namespace {

std::string mib(std::uint64_t bytes) {
  return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0));
}

// "[##########----------]  50%  12.0/24.0 MiB  310.2 MiB/s", redrawn in place.
std::string progress_line(const transfer::DownloadProgress& p) {
  constexpr int kWidth = 30;
  std::string line = "[";
  if (p.bytes_total && *p.bytes_total > 0) {
    double fraction =
        std::min(1.0, static_cast<double>(p.bytes_done) / static_cast<double>(*p.bytes_total));
    int filled = static_cast<int>(fraction * kWidth);
    line += std::string(static_cast<std::size_t>(filled), '#') +
            std::string(static_cast<std::size_t>(kWidth - filled), '-');
    line +=
        fmt::format("] {:3.0f}%  {}/{}", fraction * 100, mib(p.bytes_done), mib(*p.bytes_total));
  } else {
    line += std::string(kWidth, '?') + fmt::format("] {}", mib(p.bytes_done));
  }
  line += fmt::format("  {:.1f} MiB/s", p.bytes_per_second / (1024.0 * 1024.0));
  return line;
}

}  // namespace

std::filesystem::path default_models_root() {
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::filesystem::path(home) / "models";
  }
  return std::filesystem::temp_directory_path() / "studio-worker-models";
}

Status fetch_model(const FetchOptions& options, std::ostream& out, std::ostream& progress_out) {
  std::ifstream in(options.source_json);
  if (!in) return fail(Error::not_found("cannot read {}", options.source_json.string()));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  auto source = proto::decode_model_source(text);
  if (!source) {
    return fail(
        Error::invalid_argument("{}: {}", options.source_json.string(), source.error().message));
  }
  if (source->files.empty()) {
    return fail(Error::invalid_argument("{}: the model source lists no files",
                                        options.source_json.string()));
  }
  models::CacheConfig config;
  config.root = options.models_root;
  config.max_bytes = options.cache_max_bytes;
  models::ModelCache cache(config);
  transfer::ProgressFn progress;
  if (options.progress_bar) {
    progress = [&progress_out](const transfer::DownloadProgress& p) {
      progress_out << "\r" << progress_line(p) << std::flush;
      return true;
    };
  }
  auto files = cache.ensure_files(options.model_id, *source, progress);
  if (options.progress_bar) progress_out << "\n";
  if (!files) return fail(files.error());
  for (const models::CachedFile& file : *files) {
    out << fmt::format("{:<16} {}  {}  {}\n", file.role, file.path.string(), mib(file.bytes),
                       file.downloaded ? "downloaded" : "reused");
  }
  return {};
}

Status inspect_gguf(const std::filesystem::path& path, std::optional<std::uint32_t> context,
                    std::ostream& out) {
  auto info = models::read_gguf(path);
  if (!info) return fail(info.error());
  auto show = [](const std::optional<std::uint64_t>& v) {
    return v ? std::to_string(*v) : std::string("(not set)");
  };
  const std::uint32_t ctx = models::pick_context(*info, context);
  out << fmt::format("file:            {}\n", path.string());
  out << fmt::format("gguf version:    {}\n", info->version);
  out << fmt::format("architecture:    {}\n", info->architecture);
  if (info->name) out << fmt::format("name:            {}\n", *info->name);
  out << fmt::format("context length:  {} (training)\n", show(info->context_length));
  out << fmt::format("layers:          {}\n", show(info->block_count));
  out << fmt::format("embedding:       {}\n", show(info->embedding_length));
  out << fmt::format("heads / kv:      {} / {}\n", show(info->head_count),
                     show(info->head_count_kv));
  out << fmt::format("vocabulary:      {}\n", show(info->vocab_size));
  out << fmt::format("chat template:   {}\n",
                     info->chat_template
                         ? fmt::format("yes ({} bytes)", info->chat_template->size())
                         : std::string("no"));
  out << fmt::format("tensors:         {} ({})\n", info->tensor_count, mib(info->tensor_bytes));
  for (const auto& [type, bytes] : info->bytes_per_type) {
    out << fmt::format("  {:<8}       {}\n", type, mib(bytes));
  }
  out << fmt::format("run context:     {}\n", ctx);
  out << fmt::format("memory estimate: {} at context {}\n",
                     mib(models::estimate_memory_bytes(*info, ctx)), ctx);
  return {};
}

}  // namespace sw::worker
