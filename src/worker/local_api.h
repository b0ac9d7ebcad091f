#pragma once
// The worker's local HTTP API on 127.0.0.1 (reference-worker.md §6.1–§6.2): daemon control
// (status, logs, pause/resume, config, registration reset, shutdown; ours: POST /daemon/register
// {"apiBaseUrl"?, "reset"?} for `studio-worker register` while the daemon runs), the job list, and
// the generation routes (/image, /v1/chat/completions, /tts, /stt, /video) through the same engines
// and the same job gate as studio offers.
//
// Guards, in order, on every route but GET /healthz: a loopback Host, a loopback Origin (when
// sent; "null" refused), then the bearer token of local-api.json compared in constant time.
// Bodies are capped (1 MiB; POST /image 64 MiB). A busy gate answers 503 with Retry-After: 2.
// Loop-thread only (an HttpHandler of net::HttpServer).

#include <boost/asio/awaitable.hpp>

#include "net/http_server.h"
#include "worker/local_catalog.h"
#include "worker/runtime.h"

namespace sw::worker {

class LocalApi final : public net::HttpHandler {
 public:
  static constexpr std::uint64_t kBodyLimit = 1 << 20;
  static constexpr std::uint64_t kImageBodyLimit = 64 << 20;

  // `catalog`: the local models.json, giving a request's `model` its source (files, engine).
  LocalApi(Runtime& runtime, std::string token, std::filesystem::path discovery_file,
           std::vector<CatalogModel> catalog = {});

  std::variant<net::Admission, net::HttpResponse> admit(const net::HttpRequest& head) override;
  void handle(net::HttpRequest request, net::Responder responder) override;
  std::variant<net::UpgradeAccepted, net::HttpResponse> upgrade(
      const net::HttpRequest& head) override;

  // The JSON of GET /daemon/status.
  std::string status_json() const;

  struct Generation;

 private:
  std::optional<net::HttpResponse> guard(const net::HttpRequest& head) const;
  net::HttpResponse route(const net::HttpRequest& request, net::Responder& responder,
                          bool& answered_later);
  static boost::asio::awaitable<void> generate(LocalApi* self, Generation generation,
                                               net::Responder responder);
  static boost::asio::awaitable<void> stream_chat(LocalApi* self, Generation generation,
                                                  net::Responder responder);

  Runtime& runtime_;
  std::string token_;
  std::filesystem::path discovery_file_;
  std::vector<CatalogModel> catalog_;
};

}  // namespace sw::worker
