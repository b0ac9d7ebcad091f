#pragma once
// Inputs a job names by URL (init/mask/reference images, audio to transcribe): https anywhere,
// http only to loopback, or a `data:<mime>;base64,` URL when the request came from the local API.
// A URL under the job's studio uploads (`<studio base>/graphics/api/uploads/…`, issue 20: files a
// client uploaded to the studio) is fetched with the worker's bearer token, over http too: the
// base is the operator's own config. No redirect is followed, so the token goes to that URL only;
// it is never logged. Size-capped; the bytes are untrusted. Blocking; thread-safe.

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
  std::string_view what = "input";  // for messages: "init image", "audio input", …
  const StudioAccess* studio = nullptr;  // studio jobs: its uploads are fetched with its token
};

// Whether `url` names a file under `studio`'s uploads route (then it is fetched with the token).
bool is_studio_upload(std::string_view url, const StudioAccess& studio);

Result<media::Bytes> fetch_input(std::string_view url, const InputFetchOptions& options);

// The file extension the bytes' magic numbers say (png, jpg, webp, gif, bmp, wav, flac, ogg, mp3),
// or empty when unknown. Never trusts a name or a declared type.
std::string_view sniff_extension(std::span<const std::uint8_t> bytes);

}  // namespace sw::engines
