#include "engines/runner/input_fetch.h"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/base64.h"
#include "transfer/http_client.h"
#include "transfer/url_policy.h"

namespace sw::engines {

namespace {
constexpr std::string_view kUploadsRoute = "/graphics/api/uploads/";
}  // namespace

std::optional<std::string> studio_upload_url(std::string_view url, const StudioAccess& studio) {
  std::string_view base = studio.base_url;
  while (base.ends_with('/')) base.remove_suffix(1);
  if (base.empty() || !(base.starts_with("http://") || base.starts_with("https://"))) {
    return std::nullopt;
  }
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return std::nullopt;
  const std::string_view path = parsed->encoded_path();
  const auto route = path.rfind(kUploadsRoute);
  if (route == std::string_view::npos) return std::nullopt;
  // The upload's id only: no way to another route (or up from this one) with the token.
  const std::string_view id = path.substr(route + kUploadsRoute.size());
  const bool id_chars = std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
  if (id.empty() || !id_chars || id.find("..") != std::string_view::npos) return std::nullopt;
  return std::string(base) + std::string(kUploadsRoute) + std::string(id);
}

Result<media::Bytes> fetch_input(std::string_view url, const InputFetchOptions& options) {
  if (url.starts_with("data:")) {
    if (!options.allow_data_urls) {
      return fail(Error::invalid_argument(
          "{}: data: URLs are accepted from the local API only; a studio job must use https",
          options.what));
    }
    const auto comma = url.find(',');
    if (comma == std::string_view::npos || !url.substr(0, comma).ends_with(";base64")) {
      return fail(Error::invalid_argument("{}: a data: URL must be `data:<type>;base64,<data>`",
                                          options.what));
    }
    const std::string_view payload = url.substr(comma + 1);
    if (payload.size() / 4 * 3 > options.max_bytes) {
      return fail(
          Error::invalid_argument("{} is larger than {} bytes", options.what, options.max_bytes));
    }
    auto bytes = base64_decode(payload);
    if (!bytes) return fail(Error::invalid_argument("{}: {}", options.what, bytes.error().message));
    return std::move(*bytes);
  }
  transfer::HttpCall call;
  if (auto upload =
          options.studio != nullptr ? studio_upload_url(url, *options.studio) : std::nullopt) {
    call.url = std::move(*upload);
    call.bearer = options.studio->auth_token;
    call.ca_file = options.studio->ca_file;
  } else if (auto allowed = transfer::check_download_url(url); !allowed) {
    return fail(Error::invalid_argument("{}: {}", options.what, allowed.error().message));
  } else {
    call.url = std::string(url);
  }
  call.timeout = std::chrono::minutes(5);
  call.max_response_bytes = options.max_bytes;
  auto answer = transfer::http_call(call);
  if (!answer) return fail(answer.error());
  if (answer->status != 200) {
    const Error error = Error::make(
        answer->status >= 500 ? Code::Unavailable : Code::InvalidArgument, "{}: GET {} answered {}",
        options.what, transfer::redact_url(call.url), answer->status);
    return fail(error);
  }
  if (answer->body.empty()) return fail(Error::invalid_argument("{} is empty", options.what));
  return media::Bytes(answer->body.begin(), answer->body.end());
}

std::string_view sniff_extension(std::span<const std::uint8_t> bytes) {
  auto starts = [&](std::size_t offset, const char* magic) {
    const std::size_t n = std::strlen(magic);
    return bytes.size() >= offset + n && std::memcmp(bytes.data() + offset, magic, n) == 0;
  };
  if (starts(0, "\x89PNG\r\n\x1a\n")) return "png";
  if (starts(0, "\xff\xd8\xff")) return "jpg";
  if (starts(0, "RIFF") && starts(8, "WEBP")) return "webp";
  if (starts(0, "RIFF") && starts(8, "WAVE")) return "wav";
  if (starts(0, "GIF87a") || starts(0, "GIF89a")) return "gif";
  if (starts(0, "BM")) return "bmp";
  if (starts(0, "fLaC")) return "flac";
  if (starts(0, "OggS")) return "ogg";
  if (starts(0, "ID3") || (bytes.size() >= 2 && bytes[0] == 0xff && (bytes[1] & 0xe0) == 0xe0)) {
    return "mp3";
  }
  return {};
}

}  // namespace sw::engines
