#include "transfer/download.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/file_io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "transfer/curl_handle.h"
#include "transfer/stream_hasher.h"
#include "transfer/url_policy.h"

namespace sw::transfer {
namespace {

const log::Logger kLog("studio_worker::transfer::download");

// Hashes the first `length` bytes of `fd` (a resumed .part).
Status hash_prefix(int fd, std::uint64_t length, StreamHasher& hasher) {
  std::vector<std::uint8_t> buffer(1 << 20);
  std::uint64_t done = 0;
  while (done < length) {
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), length - done));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return fail(Error::io("reading the partial download failed: {}", std::strerror(errno)));
    hasher.update(std::span(buffer.data(), static_cast<std::size_t>(n)));
    done += static_cast<std::uint64_t>(n);
  }
  return {};
}

struct ContentRange {
  std::uint64_t start = 0;
  std::optional<std::uint64_t> total;  // absent for "*"
};

// "bytes <start>-<end>/<total|*>", or nullopt when malformed (the total may be left unparsed:
// only the start must be exact).
std::optional<ContentRange> parse_content_range(std::string_view value) {
  constexpr std::string_view kPrefix = "bytes ";
  if (value.size() < kPrefix.size() ||
      ascii_lower(std::string(value.substr(0, kPrefix.size()))) != kPrefix) {
    return std::nullopt;
  }
  value.remove_prefix(kPrefix.size());
  ContentRange range;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, range.start);
  if (ec != std::errc() || ptr == end || *ptr != '-') return std::nullopt;
  if (const char* slash = std::find(ptr, end, '/'); slash != end) {
    std::uint64_t total = 0;
    auto [total_end, total_ec] = std::from_chars(slash + 1, end, total);
    if (total_ec == std::errc() && total_end == end) range.total = total;
  }
  return range;
}

// What the current response turned out to be, decided at its first body byte (or at its end
// when it has no body).
enum class Verdict {
  Undecided,
  Write,
  Redirect,
  RestartFromScratch,
  HttpError,
  TooLarge,
  WriteFailed
};

struct Transfer {
  CURL* easy = nullptr;
  int fd = -1;
  StreamHasher* hasher = nullptr;
  std::uint64_t offset = 0;   // bytes already in the file when this response started
  std::uint64_t written = 0;  // bytes of this response written
  std::optional<std::uint64_t> declared_total;
  // The cap: request->max_bytes, or declared_ceiling(request->declared_bytes) when lower.
  std::uint64_t max_bytes = 0;
  Verdict verdict = Verdict::Undecided;
  long status = 0;
  std::string failure;
  const DownloadRequest* request = nullptr;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point last_progress;
  std::uint64_t call_bytes = 0;  // bytes received during this whole call, for the rate
  // Our own stall watchdog: curl's low-speed check averages over a ~5 s window, so it fires
  // seconds late; this measures the time since the last byte exactly.
  std::chrono::steady_clock::time_point last_data;
  bool stalled = false;

  // Why `bytes` is too many: announced by the server (Content-Length or Content-Range total),
  // or received so far.
  std::string too_many(std::uint64_t bytes, bool announced) const {
    const auto& declared = request->declared_bytes;
    const std::string name = request->destination.filename().string();
    if (declared && declared_ceiling(*declared) == max_bytes) {
      return announced ? fmt::format(
                             "the server declared {} bytes for {}, over its approxBytes {} + 10% "
                             "({} bytes); refused before writing",
                             bytes, name, *declared, max_bytes)
                       : fmt::format(
                             "the body of {} passed {} bytes, over its approxBytes {} + 10%; "
                             "aborted at {} bytes",
                             name, max_bytes, *declared, bytes);
    }
    return announced
               ? fmt::format("the server declared {} bytes, over the {} byte cap", bytes, max_bytes)
               : fmt::format("the body exceeds the {} byte cap", max_bytes);
  }

  void decide() {
    if (verdict != Verdict::Undecided) return;
    curl().curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t length = -1;
    curl().curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    if (status >= 300 && status < 400) {
      verdict = Verdict::Redirect;
      return;
    }
    if (status == 416) {
      verdict = Verdict::RestartFromScratch;
      failure = "the server refused the resume range (416)";
      return;
    }
    if (status == 206) {
      curl_header* header = nullptr;
      std::optional<ContentRange> range;
      if (curl().curl_easy_header(easy, "Content-Range", 0, CURLH_HEADER, -1, &header) ==
          CURLHE_OK) {
        range = parse_content_range(header->value);
      }
      if (!range || range->start != offset) {
        verdict = Verdict::RestartFromScratch;
        failure = fmt::format(
            "the server answered the resume at byte {} with a Content-Range "
            "that does not start there",
            offset);
        return;
      }
      if (length >= 0) declared_total = offset + static_cast<std::uint64_t>(length);
      if (range->total && *range->total > max_bytes) {
        verdict = Verdict::TooLarge;
        failure = too_many(*range->total, true);
        return;
      }
    } else if (status == 200) {
      if (offset > 0) {
        // The server ignored Range: start over with this full body.
        kLog.info("download.range_ignored", {{"url", redact_url(request->url)}, {"had", offset}});
        if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
          verdict = Verdict::WriteFailed;
          failure = fmt::format("truncating the partial download failed: {}", std::strerror(errno));
          return;
        }
        hasher->reset();
        offset = 0;
      }
      if (length >= 0) declared_total = static_cast<std::uint64_t>(length);
    } else {
      verdict = Verdict::HttpError;
      return;
    }
    if (declared_total && *declared_total > max_bytes) {
      verdict = Verdict::TooLarge;
      failure = too_many(*declared_total, true);
      return;
    }
    verdict = Verdict::Write;
  }
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  t->decide();
  switch (t->verdict) {
    case Verdict::Write: break;
    case Verdict::Redirect:
    case Verdict::HttpError: return bytes;  // an error or redirect page: read and discard
    default: return 0;                      // abort this response
  }
  if (t->offset + t->written + bytes > t->max_bytes) {
    t->verdict = Verdict::TooLarge;
    t->failure = t->too_many(t->offset + t->written + bytes, false);
    return 0;
  }
  if (auto status = write_all(t->fd, std::string_view(data, bytes)); !status) {
    t->verdict = Verdict::WriteFailed;
    t->failure = status.error().message;
    return 0;
  }
  t->hasher->update(std::span(reinterpret_cast<const std::uint8_t*>(data), bytes));
  t->written += bytes;
  t->call_bytes += bytes;
  t->last_data = std::chrono::steady_clock::now();
  return bytes;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  auto now = std::chrono::steady_clock::now();
  if (now - t->last_data > t->request->stall_timeout) {
    t->stalled = true;
    return 1;
  }
  if (!t->request->progress) return 0;
  if (now - t->last_progress < t->request->progress_interval) return 0;
  t->last_progress = now;
  double seconds = std::chrono::duration<double>(now - t->started).count();
  DownloadProgress progress{t->offset + t->written, t->declared_total,
                            seconds > 0 ? static_cast<double>(t->call_bytes) / seconds : 0};
  return t->request->progress(progress) ? 0 : 1;
}

void fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::filesystem::path part_path_for(const std::filesystem::path& destination) {
  std::filesystem::path part = destination;
  part += ".part";
  return part;
}

Result<DownloadResult> download_file(const DownloadRequest& request) {
  SW_TRY(check_download_url(request.url));
  if (request.sha256 && request.sha256->size() != 64) {
    return fail(Error::invalid_argument("expected sha256 must be 64 hex characters"));
  }
  const std::string safe_url = redact_url(request.url);
  const std::filesystem::path part = part_path_for(request.destination);
  const std::uint64_t cap =
      request.declared_bytes
          ? std::min(request.max_bytes, declared_ceiling(*request.declared_bytes))
          : request.max_bytes;

  UniqueFd fd(::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid())
    return fail(Error::io("cannot open {}: {}", part.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail(Error::io("cannot stat {}", part.string()));
  std::uint64_t existing = static_cast<std::uint64_t>(st.st_size);

  // A .part is only worth resuming when the final hash will vouch for it, and never when it
  // already holds more than the cap (a resume could only add to it).
  auto discard_part = [&] {
    ::ftruncate(fd.get(), 0);
    ::lseek(fd.get(), 0, SEEK_SET);
  };
  if (existing > 0 && (!request.sha256 || existing > cap)) {
    if (existing > cap) {
      kLog.info("download.part_over_cap",
                {{"url", safe_url}, {"part_bytes", existing}, {"cap_bytes", cap}});
    }
    discard_part();
    existing = 0;
  }

  StreamHasher hasher;
  if (existing > 0) {
    if (auto status = hash_prefix(fd.get(), existing, hasher); !status) {
      discard_part();
      existing = 0;
      hasher.reset();
    } else if (::lseek(fd.get(), static_cast<off_t>(existing), SEEK_SET) < 0) {
      return fail(Error::io("cannot seek in {}", part.string()));
    }
  }

  auto made = make_easy();
  if (!made) return fail(std::move(made).error());
  EasyHandle easy = std::move(*made);
  std::array<char, CURL_ERROR_SIZE> errbuf{};

  DownloadResult result;
  result.resumed_from = existing;
  Transfer t;
  t.easy = easy.get();
  t.fd = fd.get();
  t.hasher = &hasher;
  t.offset = existing;
  t.max_bytes = cap;
  t.request = &request;
  t.started = std::chrono::steady_clock::now();

  auto cleanup_on_failure = [&](Error error, bool resumable) -> Result<DownloadResult> {
    if (!(resumable && request.sha256)) {
      fd.reset();
      std::error_code ec;
      std::filesystem::remove(part, ec);
    }
    kLog.warn("download.failed", {{"url", safe_url},
                                  {"error", error.message},
                                  {"kept_part", resumable && request.sha256.has_value()}});
    return fail(std::move(error));
  };

  std::string url = request.url;
  int redirects = 0;
  bool restarted = false;
  const auto deadline = t.started + request.total_timeout;
  for (;;) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      return cleanup_on_failure(Error::make(Code::Timeout, "download of {} exceeded {} s", safe_url,
                                            request.total_timeout.count()),
                                true);
    }
    curl().curl_easy_reset(easy.get());
    CURL* h = easy.get();
    curl().curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl().curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION,
                            0L);  // followed by hand: each hop is policed
    curl().curl_easy_setopt(h, CURLOPT_USERAGENT, request.user_agent.c_str());
    curl().curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl().curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl().curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl().curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl().curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl().curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf.data());
    curl().curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    curl().curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
    curl().curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl().curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024L);
    curl().curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    std::string range;
    if (t.offset > 0) {
      range = fmt::format("{}-", t.offset);
      curl().curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
    }
    t.written = 0;
    t.declared_total.reset();
    t.verdict = Verdict::Undecided;
    t.failure.clear();
    t.last_data = std::chrono::steady_clock::now();
    t.stalled = false;
    errbuf[0] = '\0';

    ++result.requests;
    CURLcode rc = curl().curl_easy_perform(h);
    if (rc == CURLE_OK) t.decide();  // a response without a body

    switch (t.verdict) {
      case Verdict::Redirect: {
        char* location = nullptr;
        curl().curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
        if (location == nullptr) {
          return cleanup_on_failure(
              Error::unavailable("HTTP {} from {} without a Location", t.status, safe_url), false);
        }
        if (++redirects > request.max_redirects) {
          return cleanup_on_failure(
              Error::unavailable("more than {} redirects from {}", request.max_redirects, safe_url),
              false);
        }
        std::string next(location);
        if (auto allowed = check_download_url(next); !allowed) {
          return cleanup_on_failure(
              Error::invalid_argument("redirect refused: {}", allowed.error().message), false);
        }
        url = std::move(next);
        continue;
      }
      case Verdict::RestartFromScratch:
        if (restarted) {
          return cleanup_on_failure(Error::unavailable("{} ({})", t.failure, safe_url), false);
        }
        kLog.info("download.restart", {{"url", safe_url}, {"reason", t.failure}});
        restarted = true;
        discard_part();
        hasher.reset();
        t.offset = 0;
        result.resumed_from = 0;
        continue;
      case Verdict::HttpError:
        return cleanup_on_failure(
            Error::make(t.status == 404 ? Code::NotFound : Code::Unavailable,
                        "download failed: HTTP {} for {}", t.status, safe_url),
            t.status >= 500);
      case Verdict::TooLarge:
        return cleanup_on_failure(Error::invalid_argument("{}: {}", safe_url, t.failure), false);
      case Verdict::WriteFailed: return cleanup_on_failure(Error::io("{}", t.failure), true);
      default: break;
    }

    if (rc == CURLE_ABORTED_BY_CALLBACK && t.stalled) {
      return cleanup_on_failure(
          Error::make(Code::Timeout, "download of {} stalled: no data for {} s", safe_url,
                      request.stall_timeout.count()),
          true);
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      return cleanup_on_failure(Error::make(Code::Cancelled, "download of {} cancelled", safe_url),
                                true);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return cleanup_on_failure(Error::make(Code::Timeout, "download of {} exceeded {} s", safe_url,
                                            request.total_timeout.count()),
                                true);
    }
    const std::uint64_t total = t.offset + t.written;
    if (rc == CURLE_PARTIAL_FILE ||
        (rc == CURLE_OK && t.declared_total && total != *t.declared_total)) {
      return cleanup_on_failure(
          Error::unavailable("size mismatch: wrote {} bytes but the server declared "
                             "Content-Length {} ({})",
                             total, t.declared_total ? *t.declared_total : 0, safe_url),
          true);
    }
    if (rc != CURLE_OK) {
      return cleanup_on_failure(
          Error::unavailable("download of {} failed: {}", safe_url,
                             errbuf[0] != '\0' ? errbuf.data() : curl().curl_easy_strerror(rc)),
          true);
    }
    break;
  }

  result.bytes = t.offset + t.written;
  // Far short of what the source declared, and no hash to vouch for it: not the file described
  // (a host answering 200 with an empty body, say). Unavailable: such a fault tends to pass, and
  // nothing is kept, so the next attempt fetches again.
  if (!request.sha256 && request.declared_bytes &&
      result.bytes < declared_floor(*request.declared_bytes)) {
    return cleanup_on_failure(
        Error::unavailable("{}: got {} bytes for {}, under half of its approxBytes {} and no "
                           "sha256 to vouch for it; refused",
                           safe_url, result.bytes, request.destination.filename().string(),
                           *request.declared_bytes),
        false);
  }
  result.sha256 = to_hex(hasher.finish());
  if (request.sha256 && ascii_lower(*request.sha256) != result.sha256) {
    kLog.warn(
        "download.sha256_mismatch",
        {{"url", safe_url}, {"expected", ascii_lower(*request.sha256)}, {"actual", result.sha256}});
    fd.reset();
    std::error_code ec;
    std::filesystem::remove(part, ec);
    return fail(Error::make(Code::Conflict, "sha256 mismatch for {}: expected {}, got {}", safe_url,
                            ascii_lower(*request.sha256), result.sha256));
  }
  if (::fsync(fd.get()) != 0) return fail(Error::io("fsync of {} failed", part.string()));
  fd.reset();
  if (::rename(part.c_str(), request.destination.c_str()) != 0) {
    return fail(Error::io("cannot rename {} into place: {}", part.string(), std::strerror(errno)));
  }
  fsync_directory(request.destination.parent_path());
  if (request.progress) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t.started).count();
    request.progress(DownloadProgress{
        result.bytes, result.bytes, seconds > 0 ? static_cast<double>(t.call_bytes) / seconds : 0});
  }
  kLog.info("download.done", {{"url", safe_url},
                              {"bytes", result.bytes},
                              {"resumed_from", result.resumed_from},
                              {"requests", result.requests}});
  return result;
}

}  // namespace sw::transfer
