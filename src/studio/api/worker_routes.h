#pragma once
// The worker protocol's HTTP side (reference §2): registration requests and polls, result
// uploads (admitted from their path before the body is read), and the WebSocket upgrade.
// Loop-thread only. Holds the Studio by reference: the Studio owns the router that owns this.

#include <memory>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "studio/api/route_id.h"

namespace sw::studio {
class Studio;
}

namespace sw::studio::api {

class WorkerRoutes {
 public:
  explicit WorkerRoutes(Studio& studio);
  ~WorkerRoutes();
  WorkerRoutes(const WorkerRoutes&) = delete;
  WorkerRoutes& operator=(const WorkerRoutes&) = delete;

  // Answers a request the router matched to one of this file's routes (`params`: the path's
  // ":x" captures in order); any other id is answered 404.
  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

  // The worker's bearer token matches the hash stored for `worker_id`.
  bool token_ok(const net::HttpRequest& head, const std::string& worker_id) const;
  // GET /graphics/api/workers/:id/connect: 401 (with a reference to find in the log) unless the
  // token matches; 503 while the studio stops.
  std::variant<net::UpgradeAccepted, net::HttpResponse> upgrade(const net::HttpRequest& head,
                                                                const std::string& worker_id);
  // Decides a result upload from its path and headers, before its body is read.
  void admit_upload(const net::HttpRequest& head, const std::string& worker_id,
                    const std::string& job_id, net::Admitter admitter);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw::studio::api
