#pragma once
// The studio's HTTP router: matches a request to a route, checks its credential and body limit,
// and hands it to the routes of its audience (studio/api/: worker_routes, client_routes,
// admin_routes); answers /metrics and /healthz itself. Loop-thread only; holds the Studio by
// reference (the Studio owns it).

#include <memory>

#include "net/http_server.h"

namespace sw::studio {

class Studio;
std::unique_ptr<net::HttpHandler> make_router(Studio& studio);

}  // namespace sw::studio
