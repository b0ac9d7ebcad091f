#include "engines/sdcpp/sd_engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "common/file_io.h"
#include "common/json_text.h"
#include "common/log.h"
#include "engines/runner/child_process.h"
#include "engines/runner/input_fetch.h"
#include "engines/runner/model_files.h"
#include "engines/sdcpp/sd_mapping.h"
#include "media/decoders.h"
#include "media/encoders.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::sdcpp");
const log::Logger kOutput("studio_worker::runner::output");
constexpr std::uint64_t kMaxInputImageBytes = 64ull << 20;
// sd-server's answers: not the deadline that matters (the pool's inference_stall is), a bound on
// a server that trickles for ever.
constexpr auto kRunTimeout = std::chrono::hours(6);
constexpr double kGib = 1024.0 * 1024.0 * 1024.0;
// Loading a multi-GB diffusion model plus its text encoder from a slow disk takes minutes and
// sd-server binds its port only afterwards: its start is bounded by the pool's load_stall (no
// output, no reads), not by a total.
// A 2048² PNG as base64 is ~20 MB; leave room.
constexpr std::uint64_t kMaxServerAnswerBytes = 256ull << 20;

using Clock = std::chrono::steady_clock;

// A directory removed with everything in it when the job ends, however it ends.
class ScratchDir {
 public:
  static Result<ScratchDir> create(const std::filesystem::path& root) {
    static std::atomic<std::uint64_t> counter{0};
    const auto nanos = Clock::now().time_since_epoch().count();
    auto dir = root / fmt::format("job-{}-{}-{}", ::getpid(), nanos, counter++);
    // 0700: it holds the job's input images and prompt-derived outputs (issue 16).
    auto made = make_private_dir(dir);
    if (!made) {
      return fail(Error::io("cannot create scratch dir: {}", made.error().message));
    }
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

struct FetchedImage {
  media::Bytes bytes;
  std::string ext;  // sniffed from the bytes, never from the URL
};

Result<FetchedImage> fetch_image(const std::string& url, std::string_view what,
                                 const DispatchRequest& request) {
  const StudioAccess* studio = request.studio ? &*request.studio : nullptr;
  auto bytes = fetch_input(url, {request.local, kMaxInputImageBytes, what, studio});
  if (!bytes) return fail(bytes.error());
  const std::string_view ext = sniff_extension(*bytes);
  if (ext != "png" && ext != "jpg" && ext != "webp" && ext != "bmp" && ext != "gif") {
    return fail(Error::invalid_argument("{} is not an image (png, jpg, webp, bmp or gif)", what));
  }
  return FetchedImage{std::move(*bytes), std::string(ext)};
}

// The job's images: a reference image wins over an init image (§4.3); a mask means nothing without
// one of them and is not even fetched.
struct FetchedInputs {
  std::optional<FetchedImage> init_image;
  std::optional<FetchedImage> mask;
  std::optional<FetchedImage> ref_image;
};

Result<FetchedInputs> fetch_inputs(const proto::ImageParams& task, const DispatchRequest& request) {
  FetchedInputs inputs;
  if (task.ref_image_url) {
    auto image = fetch_image(*task.ref_image_url, "reference image", request);
    if (!image) return fail(image.error());
    inputs.ref_image = std::move(*image);
  } else if (task.init_image_url) {
    auto image = fetch_image(*task.init_image_url, "init image", request);
    if (!image) return fail(image.error());
    inputs.init_image = std::move(*image);
  }
  if (task.mask_url && (inputs.ref_image || inputs.init_image)) {
    auto image = fetch_image(*task.mask_url, "mask", request);
    if (!image) return fail(image.error());
    inputs.mask = std::move(*image);
  }
  return inputs;
}

Result<sdcpp::SdModelFiles> model_roles(const std::vector<models::CachedFile>& files,
                                        const std::string& model) {
  sdcpp::SdModelFiles roles;
  for (const models::CachedFile& file : files) {
    if (file.role == "diffusion-model")
      roles.diffusion_model = file.path;
    else if (file.role == "model")
      roles.full_model = file.path;
    else if (file.role == "vae")
      roles.vae = file.path;
    else if (file.role == "text-encoder")
      roles.text_encoder = file.path;
    else if (file.role == "text-encoder-vision")
      roles.text_encoder_vision = file.path;
    else if (file.role == "lora")
      roles.loras.push_back(file.path);
  }
  if (!roles.diffusion_model && !roles.full_model) {
    return fail(Error::invalid_argument(
        "model `{}` lists no file of role `diffusion-model` or `model` for sd-cpp", model));
  }
  return roles;
}

bool lists_a_base_model(const proto::ModelSource& source) {
  return std::any_of(source.files.begin(), source.files.end(), [](const proto::ModelFile& file) {
    return file.role == "diffusion-model" || file.role == "model";
  });
}

// The resident runner's identity: the same files under the same per-model switches are the same
// sd-server (its argv is a function of exactly these).
std::string runner_key(const std::string& model, const proto::ModelSource& source) {
  std::string key = "sd-server|" + model;
  for (const proto::ModelFile& file : source.files) key += "|" + file.role + "=" + file.filename;
  const auto& defaults = source.cli_defaults;
  key += fmt::format("|flow={}|zero_cond_t={}|offload={}",
                     defaults.flow_shift ? fmt::format("{}", *defaults.flow_shift) : "-",
                     defaults.zero_cond_t.value_or(false), defaults.offload_to_cpu.value_or(false));
  return key;
}

// The program's PNG, checked against the asked size and re-encoded in the asked ext.
Result<TaskResult> finish_image(std::span<const std::uint8_t> png, std::string_view program,
                                const sdcpp::SdSettings& settings, const std::string& ext,
                                const DispatchRequest& request, Clock::time_point started) {
  auto image = media::decode_png(png);
  if (!image) return fail(Error::internal("{}'s output: {}", program, image.error().message));
  if (image->width != settings.width || image->height != settings.height) {
    // The same task makes the same size on every run (upstream aligns sides to its model's
    // multiple, rules/engine_rules.h): terminal, so that it is not run again elsewhere.
    return fail(Error::invalid_argument("{} made a {}x{} image; {}x{} was asked", program,
                                        image->width, image->height, settings.width,
                                        settings.height));
  }
  auto encoded = ext == "png" ? media::encode_png(*image) : media::encode_webp(*image);
  if (!encoded) return fail(encoded.error());
  kLog.info(
      "image.done",
      {{"job_id", request.job_id},
       {"model", request.model},
       {"program", program},
       {"width", image->width},
       {"height", image->height},
       {"elapsed_ms",
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()}});
  return TaskResult{ImageResult{std::move(*encoded), ext}};
}

Result<transfer::HttpCallResult> server_call(const std::string& method, const std::string& url,
                                             std::string body) {
  transfer::HttpCall http;
  http.method = method;
  http.url = url;
  http.body = std::move(body);
  http.timeout = kRunTimeout;
  http.max_response_bytes = kMaxServerAnswerBytes;
  return transfer::http_call(http);
}

// The names a discovery route of the server lists (`[{"name":…, …}]` or `[{"path":…}]`).
Result<std::vector<std::string>> server_list(const std::string& url, const char* field) {
  auto answer = server_call("GET", url, {});
  if (!answer) return fail(answer.error());
  if (answer->status != 200) return fail(sdcpp::sdapi_error(answer->status, answer->body));
  const auto parsed =
      parse_json(answer->body, "sd-server's list", JsonLimits{kMaxServerAnswerBytes});
  if (!parsed) return fail(Error::internal("{}: {}", url, parsed.error().message));
  const auto& json = *parsed;
  if (!json.is_array()) return fail(Error::internal("sd-server's {} is not a list", url));
  std::vector<std::string> out;
  for (const auto& item : json) {
    if (item.is_object() && item.contains(field) && (*item.find(field)).is_string()) {
      out.push_back((*item.find(field)).get<std::string>());
    }
  }
  return out;
}

}  // namespace

SdCppEngine::SdCppEngine(SdCppPrograms programs, std::shared_ptr<models::ModelCache> cache,
                         std::shared_ptr<RunnerPool> runners, std::filesystem::path scratch_root)
    : programs_(std::move(programs)),
      cache_(std::move(cache)),
      runners_(std::move(runners)),
      scratch_root_(std::move(scratch_root)) {}

Capabilities SdCppEngine::capabilities() const {
  return {{proto::TaskKind::Image, {"sd-cpp:*"}}};
}

namespace {

// The weights' size on disk once every file is cached (what the runner loads), else `estimate`.
double weights_gib(const std::filesystem::path& dir, const proto::ModelSource& source,
                   double estimate) {
  std::uint64_t bytes = 0;
  for (const proto::ModelFile& file : source.files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(dir / file.filename, ec);
    if (ec) return estimate;
    bytes += size;
  }
  return static_cast<double>(bytes) / kGib;
}

}  // namespace

double SdCppEngine::memory_need_gib(const DispatchRequest& request, double estimate_gib) {
  if (!request.source || !lists_a_base_model(*request.source)) return estimate_gib;
  const double weights = weights_gib(models::model_dir(cache_->config().root, request.model),
                                     *request.source, estimate_gib);
  if (!resident()) return weights;  // one sd-cli run per job: no runner to learn from
  const std::string key = runner_key(request.model, *request.source);
  return runners_->is_resident(key) ? 0.0 : runners_->need_gib(key, weights);
}

std::optional<std::string> SdCppEngine::admission_refusal(const DispatchRequest& request,
                                                          double estimate_gib) {
  if (!resident() || !request.source || !lists_a_base_model(*request.source)) {
    return std::nullopt;  // dispatch explains
  }
  // The weights' size on disk once cached (what the runner loads), else the catalogue's estimate.
  double needed = estimate_gib;
  std::uint64_t bytes = 0;
  bool all_cached = true;
  const auto dir = models::model_dir(cache_->config().root, request.model);
  for (const proto::ModelFile& file : request.source->files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(dir / file.filename, ec);
    if (ec) {
      all_cached = false;
      break;
    }
    bytes += size;
  }
  if (all_cached) needed = static_cast<double>(bytes) / kGib;
  return runners_->admission_refusal(runner_key(request.model, *request.source), needed);
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
  if (!lists_a_base_model(**source)) {
    return fail(Error::invalid_argument(
        "model `{}` lists no file of role `diffusion-model` or `model` for sd-cpp", request.model));
  }
  if (resident()) return run_resident(request, *task, **source);
  if (programs_.cli) return run_cli(request, *task, **source);
  return fail(Error::internal("the sd-cpp engine was built with neither sd-cli nor sd-server"));
}

Result<TaskResult> SdCppEngine::run_resident(const DispatchRequest& request,
                                             const proto::ImageParams& task,
                                             const proto::ModelSource& source) {
  const auto started = Clock::now();
  const std::string key = runner_key(request.model, source);
  std::optional<RunnerLaunch> launch;
  if (runners_->is_resident(key)) {
    std::lock_guard lock(mutex_);
    if (auto it = launches_.find(key); it != launches_.end()) launch = it->second;
  }
  if (!launch) {
    auto files = cache_->ensure_files(request.model, source, request.download_progress());
    if (!files) return fail(files.error());
    auto roles = model_roles(*files, request.model);
    if (!roles) return fail(roles.error());
    std::uint64_t bytes = 0;
    for (const models::CachedFile& file : *files) bytes += file.bytes;
    RunnerLaunch fresh;
    fresh.key = key;
    fresh.model = request.model;
    fresh.executable = *programs_.server;
    fresh.args = sdcpp::server_args(*roles, source.cli_defaults);
    fresh.memory_gib = static_cast<double>(bytes) / kGib;
    // No /health upstream: the port answers only once the model is loaded (sd_mapping.h).
    fresh.health_path = "/sdapi/v1/options";
    std::lock_guard lock(mutex_);
    launches_[key] = fresh;
    launch = std::move(fresh);
  }

  auto inputs = fetch_inputs(task, request);
  if (!inputs) return fail(inputs.error());
  sdcpp::SdInputImages images;
  if (inputs->init_image) images.init_image = std::move(inputs->init_image->bytes);
  if (inputs->mask) images.mask = std::move(inputs->mask->bytes);
  if (inputs->ref_image) images.ref_image = std::move(inputs->ref_image->bytes);
  std::vector<std::filesystem::path> loras;
  for (const proto::ModelFile& file : source.files) {
    if (file.role == "lora") loras.emplace_back(file.filename);
  }
  auto sdapi = sdcpp::sdapi_request(task, source.cli_defaults, loras, images);
  if (!sdapi) return fail(sdapi.error());
  const std::string body = sdapi->body.dump();
  const auto settings = sdcpp::resolve_settings(task, source.cli_defaults);

  std::function<Result<media::Bytes>(const std::string&)> call =
      [&](const std::string& base_url) -> Result<media::Bytes> {
    // sdapi ignores a sampler name it does not know and uses its default: refuse it instead, by
    // the server's own list, as sd-cli would refuse it.
    if (settings.sampling_method) {
      auto samplers = server_list(base_url + "/sdapi/v1/samplers", "name");
      if (!samplers) return fail(samplers.error());
      if (std::find(samplers->begin(), samplers->end(), *settings.sampling_method) ==
          samplers->end()) {
        return fail(Error::invalid_argument("sampling method `{}` is not one sd-server knows",
                                            *settings.sampling_method));
      }
    }
    // The server resolves a request's LoRA paths only against the list this route rescans.
    if (!loras.empty()) {
      auto listed = server_list(base_url + "/sdapi/v1/loras", "path");
      if (!listed) return fail(listed.error());
      for (const auto& lora : loras) {
        if (std::find(listed->begin(), listed->end(), lora.string()) == listed->end()) {
          return fail(Error::internal("sd-server does not list LoRA {} under --lora-model-dir",
                                      lora.string()));
        }
      }
    }
    auto answer = server_call("POST", base_url + sdapi->path, body);
    if (!answer) return fail(answer.error());
    if (answer->status != 200) return fail(sdcpp::sdapi_error(answer->status, answer->body));
    return sdcpp::sdapi_image(answer->body);
  };
  auto png = runners_->use(*launch, request.job_id, call);
  if (!png) {
    if (auto terminal = sdcpp::terminal_failure(png.error().message, png.error())) {
      return fail(std::move(*terminal));
    }
    return fail(png.error());
  }
  return finish_image(*png, "sd-server", settings, task.ext, request, started);
}

Result<TaskResult> SdCppEngine::run_cli(const DispatchRequest& request,
                                        const proto::ImageParams& task,
                                        const proto::ModelSource& source) {
  const auto started = Clock::now();
  auto files = cache_->ensure_files(request.model, source, request.download_progress());
  if (!files) return fail(files.error());
  auto roles = model_roles(*files, request.model);
  if (!roles) return fail(roles.error());

  auto fetched = fetch_inputs(task, request);
  if (!fetched) return fail(fetched.error());
  auto scratch = ScratchDir::create(scratch_root_);
  if (!scratch) return fail(scratch.error());
  sdcpp::SdJobInputs inputs;
  auto place = [&](const std::optional<FetchedImage>& image, std::string_view stem,
                   std::optional<std::filesystem::path>& slot) -> Status {
    if (!image) return {};
    auto path = scratch->path() / fmt::format("{}.{}", stem, image->ext);
    auto written = write_file_atomically(
        path, std::string(image->bytes.begin(), image->bytes.end()), Durability::RenameOnly);
    if (!written) return fail(written.error());
    slot = std::move(path);
    return {};
  };
  if (auto placed = place(fetched->ref_image, "reference-image", inputs.ref_image); !placed) {
    return fail(placed.error());
  }
  if (auto placed = place(fetched->init_image, "init-image", inputs.init_image); !placed) {
    return fail(placed.error());
  }
  if (auto placed = place(fetched->mask, "mask", inputs.mask); !placed) return fail(placed.error());

  const auto output = scratch->path() / "out.png";
  const auto& cli = *programs_.cli;
  ChildSpec spec;
  spec.executable = cli;
  spec.args = sdcpp::cli_args(task, source.cli_defaults, *roles, inputs, output);
  // Release archives put libstable-diffusion.so beside sd-cli.
  const auto dir = cli.parent_path();
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
  // Deadline by progress: its step progress bar (redrawn with '\r') and its reads while loading
  // are signs of life; only silence for cli_stall stops it.
  auto life = std::make_shared<std::atomic<Clock::rep>>(Clock::now().time_since_epoch().count());
  spec.on_output = [life] { life->store(Clock::now().time_since_epoch().count()); };
  auto child = ChildProcess::start(std::move(spec));
  if (!child) return fail(child.error());
  std::optional<ChildExit> exit;
  std::optional<std::uint64_t> reads = (*child)->storage_read_bytes();
  const auto stall = programs_.cli_stall;
  while (!(exit = (*child)->wait_for(
               std::min<std::chrono::milliseconds>(stall, std::chrono::seconds(1))))) {
    const auto now = Clock::now();
    const auto read = (*child)->storage_read_bytes();
    if (read && reads && *read != *reads) life->store(now.time_since_epoch().count());
    if (read) reads = read;
    if (now - Clock::time_point(Clock::duration(life->load())) >= stall) {
      (*child)->stop();
      kLog.warn("sd_cli.stalled", {{"job_id", request.job_id}, {"stall_ms", stall.count()}});
      return fail(Error::make(Code::Timeout,
                              "sd-cli made no progress for {} ms (no output, no reads) and was "
                              "stopped",
                              stall.count()));
    }
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
    auto failure = Error::unavailable("sd-cli exited with {}: {}", exit->describe(), last);
    std::string said;
    for (const auto& line : lines) said += line + "\n";
    if (auto terminal = sdcpp::terminal_failure(said, failure)) return fail(std::move(*terminal));
    return fail(std::move(failure));
  }
  auto bytes = read_file(output);
  if (!bytes) {
    return fail(Error::internal("sd-cli exited 0 but wrote no image: {}", bytes.error().message));
  }
  return finish_image(
      std::span(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()), "sd-cli",
      sdcpp::resolve_settings(task, source.cli_defaults), task.ext, request, started);
}

}  // namespace sw::engines
