#pragma once
// Client API keys over HTTP (issue 20). Admin: GET/POST /api/v1/keys, PATCH and DELETE
// /api/v1/keys/:id (name, scope, quota), GET /api/v1/keys/:id/usage?days=N (per UTC day, and the
// quota's period so far). Any key: GET /api/v1/usage (the calling key's own) and GET
// /api/v1/whoami ({"scope", "keyId", "name"}: the admin token answers scope admin, keyId null).
// Keys are shown with their id, never their secret, which only POST answers, once. Loop-thread
// only; holds the Studio by reference (the Studio owns the router that owns this).

#include <string>
#include <vector>

#include "net/http_server.h"
#include "studio/api/route_id.h"

namespace sw::studio {
class Studio;
}

namespace sw::studio::api {

class KeyRoutes {
 public:
  explicit KeyRoutes(Studio& studio) : s_(studio) {}
  KeyRoutes(const KeyRoutes&) = delete;
  KeyRoutes& operator=(const KeyRoutes&) = delete;

  // Answers a request the router matched to one of this file's routes (`params`: the path's
  // ":x" captures in order); any other id is answered 404.
  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

 private:
  void who_am_i(const net::HttpRequest& request, const net::Responder& responder);
  void list(const net::Responder& responder);
  void create(const net::HttpRequest& request, const net::Responder& responder);
  void patch(const net::HttpRequest& request, const std::string& id,
             const net::Responder& responder);
  void remove(const net::HttpRequest& request, const std::string& id,
              const net::Responder& responder);
  void usage(const net::HttpRequest& request, const std::string& id,
             const net::Responder& responder);

  Studio& s_;
};

}  // namespace sw::studio::api
