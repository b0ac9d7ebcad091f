#include "engines/sdcpp/sd_engine.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>

#include "common/file_io.h"
#include "common/log.h"
#include "engines/runner/child_process.h"
#include "engines/runner/input_fetch.h"
#include "engines/runner/model_files.h"
#include "engines/sdcpp/sd_mapping.h"
#include "media/decoders.h"
#include "media/encoders.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::sdcpp");
const log::Logger kOutput("studio_worker::runner::output");
constexpr std::uint64_t kMaxInputImageBytes = 64ull << 20;
constexpr auto kRunTimeout = std::chrono::minutes(60);

// A directory removed with everything in it when the job ends, however it ends.
class ScratchDir {
 public:
  static Result<ScratchDir> create(const std::filesystem::path& root) {
    static std::atomic<std::uint64_t> counter{0};
    const auto nanos = std::chrono::steady_clock::now().time_since_epoch().count();
    auto dir = root / fmt::format("job-{}-{}-{}", ::getpid(), nanos, counter++);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Error::io("cannot create scratch dir {}: {}", dir.string(), ec.message()));
    return ScratchDir(std::move(dir));
  }
  ScratchDir(ScratchDir&& other) noexcept : dir_(std::exchange(other.dir_, {})) {}
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    if (dir_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& path() const { return dir_; }

 private:
  explicit ScratchDir(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

Result<std::filesystem::path> fetch_image(const std::string& url, std::string_view what,
                                          const std::filesystem::path& dir, bool local) {
  auto bytes = fetch_input(url, {local, kMaxInputImageBytes, what});
  if (!bytes) return fail(bytes.error());
  const std::string_view ext = sniff_extension(*bytes);
  if (ext != "png" && ext != "jpg" && ext != "webp" && ext != "bmp" && ext != "gif") {
    return fail(Error::invalid_argument("{} is not an image (png, jpg, webp, bmp or gif)", what));
  }
  std::string stem(what);
  std::replace(stem.begin(), stem.end(), ' ', '-');
  auto path = dir / fmt::format("{}.{}", stem, ext);
  if (auto written = write_file_atomically(path, std::string(bytes->begin(), bytes->end()),
                                           Durability::RenameOnly);
      !written) {
    return fail(written.error());
  }
  return path;
}

}  // namespace

SdCppEngine::SdCppEngine(std::filesystem::path sd_cli, std::shared_ptr<models::ModelCache> cache,
                         std::filesystem::path scratch_root)
    : cli_(std::move(sd_cli)), cache_(std::move(cache)), scratch_root_(std::move(scratch_root)) {}

Capabilities SdCppEngine::capabilities() const {
  return {{proto::TaskKind::Image, {"sd-cpp:*"}}};
}

Result<TaskResult> SdCppEngine::dispatch(const DispatchRequest& request) {
  const auto* task = std::get_if<proto::ImageParams>(&request.task.params);
  if (task == nullptr) return fail(cannot_serve(name(), request.task.kind()));
  auto source = require_source(request.source, name());
  if (!source) return fail(source.error());
  if (task->prompt.empty()) return fail(Error::invalid_argument("image prompt is empty"));
  if (task->ext != "webp" && task->ext != "png") {
    return fail(Error::invalid_argument("image ext `{}` is not supported by sd-cpp (webp, png)",
                                        task->ext));
  }

  auto files = cache_->ensure_files(request.model, **source);
  if (!files) return fail(files.error());
  sdcpp::SdModelFiles roles;
  for (const models::CachedFile& file : *files) {
    if (file.role == "diffusion-model") roles.diffusion_model = file.path;
    else if (file.role == "model") roles.full_model = file.path;
    else if (file.role == "vae") roles.vae = file.path;
    else if (file.role == "text-encoder") roles.text_encoder = file.path;
    else if (file.role == "text-encoder-vision") roles.text_encoder_vision = file.path;
    else if (file.role == "lora") roles.loras.push_back(file.path);
  }
  if (!roles.diffusion_model && !roles.full_model) {
    return fail(Error::invalid_argument(
        "model `{}` lists no file of role `diffusion-model` or `model` for sd-cpp", request.model));
  }

  auto scratch = ScratchDir::create(scratch_root_);
  if (!scratch) return fail(scratch.error());
  sdcpp::SdJobInputs inputs;
  const std::string* base_image_url = task->ref_image_url ? &*task->ref_image_url
                                : task->init_image_url ? &*task->init_image_url
                                                       : nullptr;
  if (task->ref_image_url) {
    auto path = fetch_image(*task->ref_image_url, "reference image", scratch->path(), request.local);
    if (!path) return fail(path.error());
    inputs.ref_image = *path;
  } else if (task->init_image_url) {
    auto path = fetch_image(*task->init_image_url, "init image", scratch->path(), request.local);
    if (!path) return fail(path.error());
    inputs.init_image = *path;
  }
  if (task->mask_url && base_image_url != nullptr) {  // a mask means nothing without a base image
    auto path = fetch_image(*task->mask_url, "mask", scratch->path(), request.local);
    if (!path) return fail(path.error());
    inputs.mask = *path;
  }
  const auto output = scratch->path() / "out.png";
  ChildSpec spec;
  spec.executable = cli_;
  spec.args = sdcpp::cli_args(*task, (*source)->cli_defaults, roles, inputs, output);
  // Release archives put libstable-diffusion.so beside sd-cli.
  const auto dir = cli_.parent_path();
  if (std::filesystem::exists(dir / "libstable-diffusion.so")) {
    const char* existing = std::getenv("LD_LIBRARY_PATH");
    spec.extra_env.push_back(fmt::format("LD_LIBRARY_PATH={}{}{}", dir.string(),
                                         existing && *existing ? ":" : "",
                                         existing ? existing : ""));
  }
  spec.on_line = [job = request.job_id, model = request.model](std::string_view line) {
    kOutput.info("runner.output",
                 {{"program", "sd-cli"}, {"model", model}, {"job_id", job}, {"line", line}});
  };
  const auto started = std::chrono::steady_clock::now();
  auto child = ChildProcess::start(std::move(spec));
  if (!child) return fail(child.error());
  auto exit = (*child)->wait_for(kRunTimeout);
  if (!exit) {
    (*child)->stop();
    return fail(Error::make(Code::Timeout, "sd-cli ran longer than {} minutes and was stopped",
                            std::chrono::duration_cast<std::chrono::minutes>(kRunTimeout).count()));
  }
  if (exit->code != 0 || exit->signal != 0) {
    const auto lines = (*child)->last_lines();
    std::string last = "(no output)";
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      if (!it->empty()) {
        last = *it;
        break;
      }
    }
    return fail(Error::unavailable("sd-cli exited with {}: {}", exit->describe(), last));
  }
  auto bytes = read_file(output);
  if (!bytes) return fail(Error::internal("sd-cli exited 0 but wrote no image: {}", bytes.error().message));
  auto image = media::decode_png(std::span(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()));
  if (!image) return fail(Error::internal("sd-cli's output: {}", image.error().message));
  const auto settings = sdcpp::resolve_settings(*task, (*source)->cli_defaults);
  if (image->width != settings.width || image->height != settings.height) {
    return fail(Error::internal("sd-cli made a {}x{} image; {}x{} was asked", image->width,
                                image->height, settings.width, settings.height));
  }
  auto encoded = task->ext == "png" ? media::encode_png(*image) : media::encode_webp(*image);
  if (!encoded) return fail(encoded.error());
  kLog.info("image.done", {{"job_id", request.job_id},
                           {"model", request.model},
                           {"width", image->width},
                           {"height", image->height},
                           {"elapsed_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - started).count()}});
  return TaskResult{ImageResult{std::move(*encoded), task->ext}};
}

}  // namespace sw::engines
