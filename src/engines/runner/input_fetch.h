#pragma once
// Inputs a job names by URL (init/mask/reference images, audio to transcribe): https anywhere,
// http only to loopback, or a `data:<mime>;base64,` URL when the request came from the local API.
// A studio upload (a URL whose path is `[/prefix]/graphics/api/uploads/<id>`, issue 20: a file a
// client uploaded to the studio) is fetched from the worker's own studio (`<studio base>/graphics/
// api/uploads/<id>`) with the worker's bearer token, over http too: the base is the operator's
// own config. Whatever host the URL names: the studio accepted the job only once it found the
// upload, the URL names the address the client used (another studio process on the same
// database, issue 18, or an address the worker cannot reach), and every studio process serves
// every upload. No redirect is followed, so the token goes to the worker's studio only; it is
// never logged. Size-capped; the bytes are untrusted. Blocking; thread-safe.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "media/image.h"

namespace sw::engines {

// The studio a job came from: where its uploads live and the credentials they are read with.
struct StudioAccess {
  std::string base_url;  // the worker's api_base_url (http(s)://host[:port][/prefix])
  std::string auth_token;
  std::optional<std::string> ca_file;  // PEM, for https to a studio with a private CA
  bool operator==(const StudioAccess&) const = default;
};

struct InputFetchOptions {
  bool allow_data_urls = false;  // local API requests only
  std::uint64_t max_bytes = 64ull << 20;
  std::string_view what = "input";       // for messages: "init image", "audio input", …
  const StudioAccess* studio = nullptr;  // studio jobs: its uploads are fetched with its token
};

// Where a studio job's input `url` is fetched from with the token when it names a studio upload:
// `studio`'s base + /graphics/api/uploads/ + the id (an id of [A-Za-z0-9._-], no ".."; any query
// or fragment dropped). nullopt for any other URL (fetched as a plain download), or when the
// base is not an http(s) URL.
std::optional<std::string> studio_upload_url(std::string_view url, const StudioAccess& studio);

Result<media::Bytes> fetch_input(std::string_view url, const InputFetchOptions& options);

// The file extension the bytes' magic numbers say (png, jpg, webp, gif, bmp, wav, flac, ogg, mp3),
// or empty when unknown. Never trusts a name or a declared type.
std::string_view sniff_extension(std::span<const std::uint8_t> bytes);

}  // namespace sw::engines
