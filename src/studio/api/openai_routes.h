#pragma once
// The OpenAI-compatible front door (issue 20), under /v1 with a client API key (or the admin
// token): GET /v1/models[/:id], POST /v1/chat/completions (plain and `stream: true`), POST
// /v1/images/generations, POST /v1/audio/speech, POST /v1/audio/transcriptions (multipart, the
// file stored as an upload). Each request is one studio job on the same queue and scheduler as
// POST /api/v1/jobs; the answer waits for the job's end (or streams its progress).
//
// A job no connected worker can serve is given StudioConfig::openai_unroutable_grace for one to
// connect, then cancelled and answered 503 with the scheduler's reason. A client that closes a
// streaming request cancels its job (and, on a worker with the "cancel" feature, its work).
// Without `stream`, the answer waits at most StudioConfig::openai_wait_limit, then 504 names
// the job, which goes on. Errors are OpenAI's shape (openai/openai_mapping.h).
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

class OpenAiRoutes {
 public:
  explicit OpenAiRoutes(Studio& studio);
  ~OpenAiRoutes();
  OpenAiRoutes(const OpenAiRoutes&) = delete;
  OpenAiRoutes& operator=(const OpenAiRoutes&) = delete;

  void handle(RouteId id, net::HttpRequest request, const std::vector<std::string>& params,
              const net::Responder& responder);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// An error answer of the studio's shape (`{"error": code, "message": …}`) in OpenAI's shape,
// for the router's refusals on /v1 paths. Other answers are returned unchanged.
net::HttpResponse as_openai_error(net::HttpResponse response);

}  // namespace sw::studio::api
