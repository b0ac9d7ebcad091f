#pragma once
// Administration (/api/v1): models (an API key suffices), and with the admin token only:
// workers, pending registrations (approve, reject), worker logs, API keys, the admin token.
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

class AdminRoutes {
 public:
  explicit AdminRoutes(Studio& studio);
  ~AdminRoutes();
  AdminRoutes(const AdminRoutes&) = delete;
  AdminRoutes& operator=(const AdminRoutes&) = delete;

  // Answers a request the router matched to one of this file's routes (`params`: the path's
  // ":x" captures in order); any other id is answered 404.
  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw::studio::api
