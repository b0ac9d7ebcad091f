#pragma once
// The web dashboard (issue 21): GET / (index.html) and GET /assets/:file, from files built into
// the program (web/dashboard/, embedded by cmake/EmbedFiles.cmake: no file is read at run time).
//
// Every answer carries a strict Content-Security-Policy (scripts, styles and fetches from this
// origin only; images and media also from blob: URLs the page makes of results it fetched with
// its bearer; no framing), nosniff and no-referrer. Files are sent gzip-compressed when the
// request accepts gzip, with `Vary: Accept-Encoding`; each representation has a strong ETag (the
// file's sha256, "-gz" for the compressed one) and `Cache-Control: no-cache`, so a browser
// revalidates with If-None-Match and gets 304 until the program changes.
//
// The page holds no secret: it asks the operator for an API key or the admin token and sends it
// as a bearer header (never a cookie, so no cross-site request can ride it). Stateless; any thread.

#include <span>
#include <string_view>

#include "common/embedded_file.h"
#include "net/http_types.h"

namespace sw::studio::dashboard {

// The embedded files (generated from web/dashboard/ at build time).
std::span<const sw::EmbeddedFile> embedded_files();

// The Content-Security-Policy every dashboard answer carries.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

// The answer to GET of the embedded file `name` ("index.html" for /): 200 with the file, 304
// when If-None-Match names its current ETag, 404 when no file has that name.
net::HttpResponse serve_file(const net::HttpRequest& request, std::string_view name);

}  // namespace sw::studio::dashboard
