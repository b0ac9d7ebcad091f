#include "worker/local_samples.h"

#include "common/file_io.h"
#include "common/log.h"
#include "engines/synthetic/synthetic_engine.h"

namespace sw::worker {
namespace {

const log::Logger kLog("studio_worker::samples");

proto::ModelSource synthetic_source() {
  proto::ModelSource source;
  source.engine = "synthetic";
  return source;
}

engines::DispatchRequest request_for(proto::Task task, int index) {
  engines::DispatchRequest request;
  request.model = engines::SyntheticEngine::model_for(task.kind());
  request.source = synthetic_source();
  request.job_id = fmt::format("sample-{}-{}", index, proto::to_string(task.kind()));
  request.task = std::move(task);
  return request;
}

}  // namespace

std::vector<engines::DispatchRequest> sample_requests(const std::string& prompt) {
  std::vector<engines::DispatchRequest> requests;
  proto::ImageParams image;
  image.prompt = prompt;
  requests.push_back(request_for(proto::Task{image}, 0));

  proto::LlmParams llm;
  llm.messages.push_back({"user", prompt});
  llm.max_tokens = 64;
  requests.push_back(request_for(proto::Task{llm}, 1));

  proto::AudioSttParams stt;
  stt.input_url = "https://example.invalid/sample.wav";
  requests.push_back(request_for(proto::Task{stt}, 2));

  proto::AudioTtsParams tts;
  tts.text = prompt;
  requests.push_back(request_for(proto::Task{tts}, 3));

  proto::VideoParams video;
  video.prompt = prompt;
  video.width = 256;
  video.height = 256;
  video.seconds = 2.0;
  video.ext = "webp";
  requests.push_back(request_for(proto::Task{video}, 4));
  return requests;
}

Result<std::vector<SampleOutput>> run_samples(engines::Engine& engine,
                                              const std::filesystem::path& out_dir,
                                              const std::string& prompt) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return fail(Error::io("cannot create {}: {}", out_dir.string(), ec.message()));

  std::vector<SampleOutput> outputs;
  for (const engines::DispatchRequest& request : sample_requests(prompt)) {
    const proto::TaskKind kind = request.task.kind();
    auto result = engine.dispatch(request);
    if (!result) {
      return fail(Error::make(result.error().code, "{} sample failed: {}", proto::to_string(kind),
                              result.error().message));
    }
    SampleOutput output;
    output.kind = kind;
    output.model = request.model;
    std::string ext;
    std::string_view data;
    std::visit(
        [&](const auto& r) {
          using R = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<R, engines::LlmResult> ||
                        std::is_same_v<R, engines::AudioSttResult>) {
            ext = "json";
            data = r.json.text();
            output.description = "json";
          } else {
            ext = r.ext;
            data = std::string_view(reinterpret_cast<const char*>(r.bytes.data()), r.bytes.size());
            output.description = r.ext;
          }
        },
        *result);
    output.path = out_dir / fmt::format("{}.{}", proto::to_string(kind), ext);
    output.bytes = data.size();
    SW_TRY(write_file_atomically(output.path, data));
    kLog.debug("sample.written", {{"kind", proto::to_string(kind)},
                                  {"path", output.path.string()},
                                  {"bytes", output.bytes}});
    outputs.push_back(std::move(output));
  }
  return outputs;
}

}  // namespace sw::worker
