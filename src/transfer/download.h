#pragma once
// Verified, resumable downloads of large files (model weights) over libcurl.
//
// The body streams into `<destination>.part` while sha256 is computed; the size is checked
// against what the server declared, against what the source declared (`declared_bytes`, the
// ModelFile's approxBytes: a bound both ways, issue 16) and the hash against the expected one;
// then the part is fsynced and atomically renamed. An existing `.part` is resumed with `Range` (its
// bytes are re-hashed first, so the final sha256 covers the whole file). Blocking: call it on a
// worker thread. Thread-safe for different destinations; the caller serialises one destination
// (models::ModelCache holds a file lock).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/error.h"

namespace sw::transfer {

struct DownloadProgress {
  std::uint64_t bytes_done = 0;              // of the whole file, resumed prefix included
  std::optional<std::uint64_t> bytes_total;  // when the server declared it
  double bytes_per_second = 0;               // over this call
};
// Return false to cancel the download.
using ProgressFn = std::function<bool(const DownloadProgress&)>;

struct DownloadRequest {
  std::string url;
  std::filesystem::path destination;
  std::optional<std::string> sha256;  // 64 hex characters, any case
  // Refused before buffering when the server declares more; aborted when it sends more.
  std::uint64_t max_bytes = 512ull << 30;
  // The size the source declared (ModelFile.approxBytes), a bound both ways:
  //  * over declared_ceiling(): a Content-Length (or Content-Range total) above it is refused at
  //    the first body byte, before anything is written; a body without one (chunked, or closed
  //    by the server) is aborted as it passes the bound. Code::InvalidArgument: the host or the
  //    catalogue is wrong, every worker would fetch the same bytes.
  //  * under declared_floor(): a finished body is refused unless `sha256` is pinned (then the
  //    hash decides). Code::Unavailable: an empty or cut body is typically a host's passing fault.
  // The errors name the URL, the destination's file name, the declared and the actual sizes.
  std::optional<std::uint64_t> declared_bytes;
  // No byte received for this long ⇒ the transfer is abandoned as stalled (checked ~every 1 s).
  std::chrono::seconds stall_timeout{60};
  std::chrono::seconds total_timeout{30 * 60};
  int max_redirects = 5;
  std::string user_agent = std::string("studio-worker/") + SW_VERSION;
  ProgressFn progress;  // called at most every progress_interval, and once at the end
  std::chrono::milliseconds progress_interval{500};
};

struct DownloadResult {
  std::uint64_t bytes = 0;
  std::string sha256;              // lowercase hex of the whole file
  std::uint64_t resumed_from = 0;  // bytes reused from an existing .part
  int requests = 0;                // HTTP requests made (redirects and restarts included)
};

// Downloads `request.url` to `request.destination`. On failure the destination is untouched and
// no `.part` is left that could be trusted: a `.part` is kept for a later resume only when a
// sha256 is known (the resumed file is verified in full); otherwise it is removed.
Result<DownloadResult> download_file(const DownloadRequest& request);

// The bounds `declared_bytes` sets: approxBytes + 10 % (the same margin as the cache's disk
// preflight, reference-worker.md §3.4), and half of approxBytes ("approx" is an estimate; a body
// under half of it is not the file the source described, e.g. a `200` with an empty body).
constexpr std::uint64_t declared_ceiling(std::uint64_t declared) {
  return declared + declared / 10;
}
constexpr std::uint64_t declared_floor(std::uint64_t declared) {
  return declared / 2;
}

// The `.part` path used for `destination`.
std::filesystem::path part_path_for(const std::filesystem::path& destination);

}  // namespace sw::transfer
