#include "models/model_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "common/job_phase.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "transfer/url_policy.h"

namespace sw::models {
namespace fs = std::filesystem;
namespace {

const log::Logger kLog("studio_worker::models::cache");

fs::path with_suffix(const fs::path& path, const char* suffix) {
  fs::path out = path;
  out += suffix;
  return out;
}

bool is_bookkeeping(const fs::path& path) {
  const std::string name = path.filename().string();
  return name.ends_with(".lock") || name.ends_with(".sha256") || name == kManifestName ||
         name.find(".tmp-") != std::string::npos;
}

// flock that retries on EINTR.
bool lock(int fd, int operation) {
  while (::flock(fd, operation) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

void touch_atime(const fs::path& path) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_NOW;
  times[1].tv_sec = 0;
  times[1].tv_nsec = UTIME_OMIT;
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

// The sidecar records "<sha256> <size> <mtime s> <mtime ns>" of the file it vouches for; a file
// changed since (copied over, rewritten) no longer matches and is hashed again.
std::string file_identity(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};
  return fmt::format("{} {} {}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

std::optional<std::string> read_sidecar(const fs::path& file) {
  std::ifstream in(with_suffix(file, ".sha256"));
  std::string hex, identity;
  if (!(in >> hex) || hex.size() != 64) return std::nullopt;
  std::getline(in >> std::ws, identity);
  if (identity.empty() || identity != file_identity(file)) return std::nullopt;
  return ascii_lower(hex);
}

// Only an optimisation: if it cannot be written, the next reuse re-hashes.
void write_sidecar(const fs::path& file, const std::string& hex) {
  (void)write_file_atomically(with_suffix(file, ".sha256"), hex + " " + file_identity(file) + "\n");
}

Result<std::string> hash_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::io("cannot read {}", path.string()));
  Sha256 hasher;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hasher.update(std::string_view(buffer.data(), static_cast<std::size_t>(in.gcount())));
  }
  return to_hex(hasher.finish());
}

// Why `path` does not hold the file described (nullopt: it does). By sha256 when one is expected
// (the sidecar first, else hashing once and remembering); else by size against approxBytes:
// exactly when `size_must_match` (operator-placed copies), otherwise within the bounds a download
// is held to (transfer::declared_floor/ceiling), so a 0-byte or oversized file cached by an
// earlier version is not reused. Then `check` (the engine's own reading of the file) when given.
Result<std::optional<std::string>> unusable(const fs::path& path, const proto::ModelFile& file,
                                            bool size_must_match, const FileCheck& check) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) return std::optional<std::string>(fmt::format("cannot stat: {}", ec.message()));
  if (file.sha256) {
    const std::string expected = ascii_lower(*file.sha256);
    if (read_sidecar(path) != expected) {
      kLog.info("model.verify", {{"file", path.string()}, {"bytes", size}});
      auto actual = hash_file(path);
      if (!actual) return fail(actual.error());
      if (*actual != expected) {
        return std::optional<std::string>(
            fmt::format("sha256 {} is not the source's {}", *actual, expected));
      }
      write_sidecar(path, *actual);
    }
  } else if (file.approx_bytes) {
    const std::uint64_t declared = *file.approx_bytes;
    if (size_must_match && size != declared) {
      return std::optional<std::string>(
          fmt::format("{} bytes, not the approxBytes {}", size, declared));
    }
    if (size < transfer::declared_floor(declared) || size > transfer::declared_ceiling(declared)) {
      return std::optional<std::string>(fmt::format(
          "{} bytes, outside approxBytes {} (half of it to + 10%) with no sha256 to vouch for it",
          size, declared));
    }
  }
  if (check) {
    if (auto checked = check(file, path); !checked) {
      return std::optional<std::string>(checked.error().message);
    }
  }
  return std::optional<std::string>();
}

UniqueFd open_lock_file(const fs::path& path) {
  return UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
}

// Moves a file of the previous layout (`<root>/<sanitised id>/<filename>`) to `path` with its
// sha256 sidecar, unless a job (of an older worker still running, say) holds it. The caller holds
// the download lock of `path`. Returns whether the file moved.
bool adopt_previous_layout(const fs::path& previous, const fs::path& path,
                           const std::string& model_id) {
  UniqueFd previous_lock = open_lock_file(with_suffix(previous, ".lock"));
  if (!previous_lock.valid() || ::flock(previous_lock.get(), LOCK_EX | LOCK_NB) != 0) return false;
  std::error_code ec;
  fs::rename(previous, path, ec);
  if (ec) {
    kLog.warn("model.migrate_failed",
              {{"model", model_id}, {"from", previous.string()}, {"error", ec.message()}});
    return false;
  }
  // rename keeps size and mtime, so the sidecar still vouches for the file.
  fs::rename(with_suffix(previous, ".sha256"), with_suffix(path, ".sha256"), ec);
  fs::remove(with_suffix(previous, ".download.lock"), ec);
  fs::remove(with_suffix(previous, ".lock"), ec);
  fs::remove(previous.parent_path(), ec);  // only once empty
  kLog.info("model.migrated",
            {{"model", model_id}, {"from", previous.string()}, {"to", path.string()}});
  return true;
}

// `.model.json`: {"id": <exact id>, "engine": <modelSource.engine>,
//                 "files": [{"filename": …, "path": <relative to the root>}, …]}.
std::string manifest_text(const fs::path& root, const std::string& model_id,
                          const proto::ModelSource& source, const std::vector<CachedFile>& files) {
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = 0; i < files.size() && i < source.files.size(); ++i) {
    list.push_back({{"filename", source.files[i].filename},
                    {"path", files[i].path.lexically_relative(root).generic_string()}});
  }
  return nlohmann::json{{"id", model_id}, {"engine", source.engine}, {"files", list}}.dump() + "\n";
}

// The model a manifest describes, when every file it lists is present. Tolerant: anything
// unexpected (a hand-edited or truncated manifest) means "not held", never an error.
std::optional<HeldModel> held_by(const fs::path& root, const fs::path& dir) {
  auto text = read_file(dir / kManifestName, 1 << 20);
  if (!text) return std::nullopt;
  const auto parsed = parse_json(*text, "model manifest");
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const auto& json = *parsed;
  const auto id = json.find("id");
  const auto engine = json.find("engine");
  const auto files = json.find("files");
  if (id == json.end() || !id->is_string() || engine == json.end() || !engine->is_string() ||
      files == json.end() || !files->is_array()) {
    return std::nullopt;
  }
  HeldModel held{id->get<std::string>(), engine->get<std::string>()};
  // A manifest copied into another model's directory does not speak for it.
  if (sanitise_model_id(held.id) != dir.filename().string()) return std::nullopt;
  std::error_code ec;
  for (const auto& file : *files) {
    const auto path = file.is_object() ? file.find("path") : file.end();
    if (path == file.end() || !path->is_string()) return std::nullopt;
    if (!fs::is_regular_file(root / path->get<std::string>(), ec)) return std::nullopt;
  }
  return held;
}

}  // namespace

fs::path model_dir(const fs::path& root, std::string_view model_id) {
  return root / kModelsDirName / sanitise_model_id(model_id);
}

std::string sanitise_model_id(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  for (char c : id) {
    bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    out.push_back(keep ? c : '_');
  }
  // push_back rather than assigning a literal: GCC 12 -O2 raises a false -Wrestrict on
  // `out = "_"` (GCC PR105651).
  if (out.empty()) out.push_back('_');
  if (out.front() == '.') out.front() = '_';
  return out;
}

Status check_plain_filename(std::string_view filename) {
  bool bad = filename.empty() || filename == "." || filename == ".." || filename.size() > 255 ||
             filename.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos;
  if (bad) {
    return fail(Error::invalid_argument("model filename must be a plain file name: \"{}\"",
                                        std::string(filename).c_str()));
  }
  return {};
}

Result<std::uint64_t> free_bytes_at(const fs::path& path) {
  fs::path probe = path;
  std::error_code ec;
  while (!probe.empty() && !fs::exists(probe, ec)) {
    if (probe == probe.parent_path()) break;
    probe = probe.parent_path();
  }
  struct statvfs st {};
  if (::statvfs(probe.empty() ? "." : probe.c_str(), &st) != 0) {
    return fail(
        Error::io("cannot probe free space at {}: {}", probe.string(), std::strerror(errno)));
  }
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

ModelCache::ModelCache(CacheConfig config) : config_(std::move(config)) {}

Result<std::vector<CachedFile>> ModelCache::ensure_files(const std::string& model_id,
                                                         const proto::ModelSource& source,
                                                         const transfer::ProgressFn& progress,
                                                         const FileCheck& check) {
  // Validate every file before touching the disk or the network.
  for (const proto::ModelFile& file : source.files) {
    SW_TRY(check_plain_filename(file.filename));
    if (file.filename == kManifestName) {
      return fail(
          Error::invalid_argument("model filename \"{}\" is reserved by the cache", file.filename));
    }
    SW_TRY(transfer::check_download_url(file.url));
  }
  std::vector<CachedFile> out;
  PhaseTimer fetch(JobPhase::Fetch);  // found, verified or downloaded: the job's fetch phase
  for (const proto::ModelFile& file : source.files) {
    auto cached = ensure_one(model_id, file, progress, check);
    if (!cached) {
      return fail(Error::make(cached.error().code, "model {} file {}: {}", model_id, file.filename,
                              cached.error().message));
    }
    out.push_back(std::move(*cached));
  }
  fetch.stop();
  // Remember what this directory holds (held_models()); rewritten only when it changes.
  if (out.empty()) return out;
  const fs::path manifest = model_dir(config_.root, model_id) / kManifestName;
  const std::string text = manifest_text(config_.root, model_id, source, out);
  if (auto existing = read_file(manifest, 1 << 20); !existing || *existing != text) {
    if (auto written = write_file_atomically(manifest, text, Durability::RenameOnly); !written) {
      kLog.warn("model.manifest_not_written",
                {{"model", model_id}, {"error", written.error().message}});
    }
  }
  return out;
}

std::vector<HeldModel> ModelCache::held_models() const {
  std::vector<HeldModel> held;
  std::error_code ec;
  for (auto it = fs::directory_iterator(config_.root / kModelsDirName, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code kind_ec;
    if (!it->is_directory(kind_ec)) continue;
    if (auto model = held_by(config_.root, it->path())) held.push_back(std::move(*model));
  }
  std::sort(held.begin(), held.end(),
            [](const HeldModel& a, const HeldModel& b) { return a.id < b.id; });
  return held;
}

Result<CachedFile> ModelCache::ensure_one(const std::string& model_id, const proto::ModelFile& file,
                                          const transfer::ProgressFn& progress,
                                          const FileCheck& check) {
  const fs::path dir = model_dir(config_.root, model_id);
  const fs::path path = dir / file.filename;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    const fs::path base = config_.root / kModelsDirName;
    if (fs::exists(base, ec) && !fs::is_directory(base, ec)) {
      return fail(
          Error::io("cannot create {}: {} is a file, but the model cache keeps its "
                    "per-model directories under that name; move the file",
                    dir.string(), base.string()));
    }
    return fail(Error::io("cannot create {}: {}", dir.string(), ec.message()));
  }

  CachedFile cached;
  cached.role = file.role;
  UniqueFd lock_file = open_lock_file(with_suffix(path, ".lock"));
  if (!lock_file.valid()) {
    return fail(Error::io("cannot open {}.lock: {}", path.string(), std::strerror(errno)));
  }

  auto lease_on = [&](const fs::path& used, UniqueFd& held, bool downloaded) -> Result<CachedFile> {
    touch_atime(used);
    cached.path = used;
    cached.bytes = fs::file_size(used, ec);
    cached.downloaded = downloaded;
    cached.lease = FileLease(std::move(held));
    return std::move(cached);
  };

  // 1. The per-model copy, under a shared lock (waits out a download or an eviction).
  if (!lock(lock_file.get(), LOCK_SH))
    return fail(Error::io("flock failed: {}", std::strerror(errno)));
  if (fs::exists(path, ec)) {
    auto why = unusable(path, file, /*size_must_match=*/false, check);
    if (!why) return fail(why.error());
    if (!*why) return lease_on(path, lock_file, false);
  }

  // 2. An operator-placed (or pre-0.4.9 flat layout) copy at the top of the root.
  const fs::path top = config_.root / file.filename;
  if (fs::is_regular_file(top, ec)) {
    auto why = unusable(top, file, /*size_must_match=*/true, check);
    if (why && !*why) {
      UniqueFd top_lock = open_lock_file(with_suffix(top, ".lock"));
      if (top_lock.valid() && lock(top_lock.get(), LOCK_SH) && fs::exists(top, ec)) {
        kLog.info("model.reuse_top_level", {{"model", model_id}, {"file", top.string()}});
        return lease_on(top, top_lock, false);
      }
    }
  }

  // 3. Download, one process at a time. The download mutex is a separate lock file, so a waiter
  //    only waits for the download, never for the job that then holds its lease; the shared
  //    lease we keep on `.lock` meanwhile stops eviction from taking the file or its .part.
  UniqueFd download_lock = open_lock_file(with_suffix(path, ".download.lock"));
  if (!download_lock.valid() || !lock(download_lock.get(), LOCK_EX)) {
    return fail(Error::io("cannot lock {}.download.lock: {}", path.string(), std::strerror(errno)));
  }
  // A copy in the previous layout is moved over (or, while held elsewhere, used where it is).
  const fs::path previous = config_.root / sanitise_model_id(model_id) / file.filename;
  if (!fs::exists(path, ec) && fs::is_regular_file(previous, ec) &&
      !adopt_previous_layout(previous, path, model_id)) {
    UniqueFd previous_lock = open_lock_file(with_suffix(previous, ".lock"));
    if (previous_lock.valid() && lock(previous_lock.get(), LOCK_SH) && fs::exists(previous, ec)) {
      auto why = unusable(previous, file, /*size_must_match=*/false, check);
      if (why && !*why) return lease_on(previous, previous_lock, false);
    }
  }
  if (fs::exists(path, ec)) {
    auto why = unusable(path, file, /*size_must_match=*/false, check);
    if (!why) return fail(why.error());
    if (!*why) return lease_on(path, lock_file, false);
    // Never reused: removed and fetched again (a copy cached by an earlier version, a 0-byte
    // file from a host's bad day, a file changed on disk).
    kLog.warn("model.cache_corrupt",
              {{"model", model_id}, {"file", path.string()}, {"reason", **why}});
    fs::remove(path, ec);
    fs::remove(with_suffix(path, ".sha256"), ec);
  }

  if (file.approx_bytes) {
    const std::uint64_t partial = fs::exists(transfer::part_path_for(path), ec)
                                      ? fs::file_size(transfer::part_path_for(path), ec)
                                      : 0;
    const std::uint64_t wanted = *file.approx_bytes + *file.approx_bytes / 10;
    const std::uint64_t needed = wanted > partial ? wanted - partial : 0;
    SW_TRY(make_room(needed));
    auto free = free_bytes_at(dir);
    if (!free) return fail(free.error());
    if (*free < needed) {
      return fail(Error::make(Code::Unavailable,
                              "not enough disk space: needs {} bytes (approxBytes {} + 10%), {} "
                              "free at {}",
                              needed, *file.approx_bytes, *free, dir.string()));
    }
  }

  transfer::DownloadRequest request;
  request.url = file.url;
  request.destination = path;
  request.sha256 = file.sha256;
  request.declared_bytes = file.approx_bytes;
  request.stall_timeout = config_.stall_timeout;
  request.total_timeout = config_.total_timeout;
  request.progress_interval = std::chrono::milliseconds(250);
  auto last_log = std::chrono::steady_clock::now();
  const std::string name = file.filename;
  request.progress = [&](const transfer::DownloadProgress& p) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_log >= config_.progress_log_interval) {
      last_log = now;
      kLog.info("model.download.progress",
                {{"model", model_id},
                 {"file", name},
                 {"done", p.bytes_done},
                 {"total", p.bytes_total ? std::to_string(*p.bytes_total) : std::string("unknown")},
                 {"mib_per_s", fmt::format("{:.1f}", p.bytes_per_second / (1024.0 * 1024.0))}});
    }
    return progress ? progress(p) : true;
  };
  kLog.info("model.download.start", {{"model", model_id},
                                     {"file", name},
                                     {"url", transfer::redact_url(file.url)},
                                     {"approx_bytes", file.approx_bytes.value_or(0)}});
  auto downloaded = transfer::download_file(request);
  if (!downloaded) return fail(downloaded.error());
  // What the engine cannot read does not enter the cache: the next attempt fetches again.
  if (check) {
    if (auto checked = check(file, path); !checked) {
      kLog.warn(
          "model.download_unusable",
          {{"model", model_id}, {"file", path.string()}, {"reason", checked.error().message}});
      fs::remove(path, ec);
      return fail(Error::make(checked.error().code, "the downloaded file is not usable: {}",
                              checked.error().message));
    }
  }
  write_sidecar(path, downloaded->sha256);
  return lease_on(path, lock_file, true);
}

std::uint64_t ModelCache::cached_bytes() const {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(config_.root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !is_bookkeeping(it->path())) total += it->file_size(ec);
  }
  return total;
}

Status ModelCache::make_room(std::uint64_t needed) {
  if (config_.max_bytes == 0) return {};
  struct Candidate {
    fs::path path;
    std::uint64_t bytes;
    struct timespec used;
  };
  std::vector<Candidate> candidates;
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(config_.root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || is_bookkeeping(it->path())) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;
    total += static_cast<std::uint64_t>(st.st_size);
    candidates.push_back({it->path(), static_cast<std::uint64_t>(st.st_size), st.st_atim});
  }
  if (total + needed <= config_.max_bytes) return {};
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.used.tv_sec != b.used.tv_sec ? a.used.tv_sec < b.used.tv_sec
                                          : a.used.tv_nsec < b.used.tv_nsec;
  });
  std::uint64_t held = 0;
  for (const Candidate& candidate : candidates) {
    if (total + needed <= config_.max_bytes) break;
    // A .part belongs to its destination's lock.
    fs::path owner = candidate.path;
    if (owner.extension() == ".part") owner.replace_extension();
    UniqueFd lock_file = open_lock_file(with_suffix(owner, ".lock"));
    if (!lock_file.valid() || ::flock(lock_file.get(), LOCK_EX | LOCK_NB) != 0) {
      held += candidate.bytes;
      continue;  // a job holds it, or it is being downloaded
    }
    fs::remove(candidate.path, ec);
    fs::remove(with_suffix(candidate.path, ".sha256"), ec);
    total -= candidate.bytes;
    kLog.info("model.evicted", {{"file", candidate.path.string()}, {"bytes", candidate.bytes}});
  }
  if (total + needed > config_.max_bytes) {
    return fail(
        Error::make(Code::Unavailable,
                    "model cache budget of {} bytes cannot fit {} more: {} bytes cached, {} "
                    "of them held by running jobs",
                    config_.max_bytes, needed, total, held));
  }
  return {};
}

}  // namespace sw::models
