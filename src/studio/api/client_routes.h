#pragma once
// The client API (/api/v1, an API key or the admin token): jobs (create, list, get, result,
// cancel) and the event stream (SSE).
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

class ClientRoutes {
 public:
  explicit ClientRoutes(Studio& studio);
  ~ClientRoutes();
  ClientRoutes(const ClientRoutes&) = delete;
  ClientRoutes& operator=(const ClientRoutes&) = delete;

  // Answers a request the router matched to one of this file's routes (`params`: the path's
  // ":x" captures in order); any other id is answered 404.
  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw::studio::api
