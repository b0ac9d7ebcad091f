#pragma once
// The worker's local HTTP API on 127.0.0.1 (reference-worker.md §6.1–§6.2): daemon control
// (status, logs, pause/resume, config, registration reset, shutdown; ours: POST /daemon/register
// {"apiBaseUrl"?, "reset"?} for `studio-worker register` while the daemon runs), the job list, and
// the generation routes (/image, /v1/chat/completions, /tts, /stt, /video) through the same engines
// and the same job gate as studio offers.
//
// GET /metrics (ours, issue 19): Prometheus text 0.0.4 (worker_metrics.h), behind the same guards
// as GET /daemon/status (the bearer token included). POST /daemon/pause {"unload": true} (ours,
// issue 19; the body is optional) also stops the idle runners now and keeps runners from staying
// resident while paused (engines::RunnerPool::set_unloaded); /daemon/resume ends both.
//
// Guards, in order, on every route but GET /healthz: a loopback Host, a loopback Origin (when
// sent; "null" refused), then the bearer token of local-api.json compared in constant time.
// Bodies are capped (1 MiB; POST /image 64 MiB). A busy gate answers 503 with Retry-After: 2.
// Loop-thread only (an HttpHandler of net::HttpServer).

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "engines/runner/runner_pool.h"
#include "net/http_server.h"
#include "worker/job_runner.h"
#include "worker/local_catalog.h"
#include "worker/runtime.h"
#include "worker/status.h"
#include "worker/worker_metrics.h"

namespace sw::worker {

class LocalApi final : public net::HttpHandler {
 public:
  static constexpr std::uint64_t kBodyLimit = 1 << 20;
  static constexpr std::uint64_t kImageBodyLimit = 64 << 20;

  // `catalog`: the local models.json, giving a request's `model` its source (files, engine).
  // `status`: read only (the live status this API reports).
  // `runner`: the job path shared with studio offers (gate, dispatch, the result split).
  // `metrics`: what GET /metrics renders (null: 404). `runners`: the engines' runner pool, for
  // pause --unload and status (null without a models root: nothing to unload).
  LocalApi(Runtime& runtime, const StatusBoard& status, JobRunner& runner, std::string token,
           std::filesystem::path discovery_file, LocalCatalog catalog = {},
           const WorkerMetrics* metrics = nullptr,
           std::shared_ptr<engines::RunnerPool> runners = nullptr);

  std::variant<net::Admission, net::HttpResponse> admit(const net::HttpRequest& head) override;
  void handle(net::HttpRequest request, net::Responder responder) override;
  std::variant<net::UpgradeAccepted, net::HttpResponse> upgrade(
      const net::HttpRequest& head) override;

  // The JSON of GET /daemon/status.
  std::string status_json() const;

  struct Generation;

 private:
  nlohmann::json runners_json() const;
  std::optional<net::HttpResponse> guard(const net::HttpRequest& head) const;
  net::HttpResponse route(const net::HttpRequest& request, net::Responder& responder,
                          bool& answered_later);
  // False when refused (the 503 is sent).
  static boost::asio::awaitable<bool> admit_memory(LocalApi* self, const Generation& generation,
                                                   net::Responder& responder);
  static boost::asio::awaitable<void> generate(LocalApi* self, Generation generation,
                                               net::Responder responder);
  static boost::asio::awaitable<void> serve_metrics(LocalApi* self, net::Responder responder);
  static boost::asio::awaitable<void> pause_unloading(LocalApi* self, net::Responder responder);
  static boost::asio::awaitable<void> stream_chat(LocalApi* self, Generation generation,
                                                  net::Responder responder);

  Runtime& runtime_;
  const StatusBoard& status_;
  JobRunner& runner_;
  std::string token_;
  std::filesystem::path discovery_file_;
  LocalCatalog catalog_;
  const WorkerMetrics* metrics_;
  std::shared_ptr<engines::RunnerPool> runners_;
};

}  // namespace sw::worker
