#pragma once
// The studio's HTTP routes: worker protocol (/graphics/api/…), client API (/api/v1/…), /metrics
// and /healthz. Loop-thread only; holds the Studio by reference (the Studio owns it).

#include <memory>

#include "net/http_server.h"

namespace sw::studio {

class Studio;
std::unique_ptr<net::HttpHandler> make_router(Studio& studio);

}  // namespace sw::studio
