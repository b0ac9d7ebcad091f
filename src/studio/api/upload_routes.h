#pragma once
// Client uploads over HTTP (issue 20): POST /api/v1/uploads (a raw body, or multipart/form-data
// with one `file` part), GET and DELETE /api/v1/uploads/:id (metadata; an API key or the admin
// token; a key of scope inference reaches only its own), and GET /graphics/api/uploads/:id (the
// bytes, for any approved worker's bearer token). Loop-thread only. Holds the Studio by reference:
// the Studio owns the router that owns this.

#include <string>
#include <vector>

#include "net/http_server.h"
#include "studio/api/route_id.h"

namespace sw::studio {
class Studio;
}

namespace sw::studio::api {

class UploadRoutes {
 public:
  explicit UploadRoutes(Studio& studio) : s_(studio) {}
  UploadRoutes(const UploadRoutes&) = delete;
  UploadRoutes& operator=(const UploadRoutes&) = delete;

  // Answers a request the router matched to one of this file's routes (`params`: the path's
  // ":x" captures in order); any other id is answered 404.
  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

 private:
  void create(net::HttpRequest request, const net::Responder& responder);
  void get(const net::HttpRequest& request, const std::string& id, const net::Responder& responder);
  void remove(const net::HttpRequest& request, const std::string& id,
              const net::Responder& responder);
  void download(const std::string& id, const net::Responder& responder);

  Studio& s_;
};

}  // namespace sw::studio::api
