#pragma once
// The managed model cache (reference-worker.md §3.4): `<root>/by-model/<sanitised id>/<filename>`.
//
// Layout (ours): the reference keeps `<root>/<sanitised id>/`, which collides with an
// operator-placed file at the top of the root whenever a model's id is also its file name, as the
// reference's catalogue names them (`z-image-turbo-q4_k_m.gguf`): the directory cannot be created
// ("Not a directory"). Our per-model directories therefore live one level down, under
// `<root>/by-model/`, and the top of the root belongs to the operator (the one name `by-model`
// there is reserved). A file found in the previous layout (`<root>/<sanitised id>/<filename>`) is
// moved into the new one on first use (renamed with its sha256 sidecar: no re-download), or, while
// another process holds it, used in place.
//
// Each model directory also holds `.model.json`, written after every successful ensure_files():
// the exact model id (the directory name is sanitised), its engine and where each of its files
// is. held_models() reads these to say which models the cache holds (advertised to the studio).
//
// ensure_files() returns local paths for every file of a ModelSource, downloading what is missing
// (transfer::download_file: streamed sha256, resume, atomic rename). One download per file across
// threads and processes: an exclusive flock on `<file>.download.lock` while downloading; a shared
// flock on `<file>.lock` (a FileLease) while a job uses the file, which eviction's exclusive
// try-lock respects, so a file in use is never removed. A verified
// file's sha256 is remembered in `<file>.sha256` so reuse does not re-hash gigabytes.
// Modes (issue 16): the cache holds public models, not private data, so files are 0644 and
// directories follow the umask like `mkdir -p`; other local users (or a runner under another
// account) may read and share them. No file here is ever created group- or world-writable:
// `.part` downloads, locks and sidecars ask for 0644, which a umask can only narrow.
// Blocking: call from worker threads. Thread-safe.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_io.h"
#include "proto/types.h"
#include "transfer/download.h"

namespace sw::models {

// Every char outside [A-Za-z0-9._-] becomes '_'; empty becomes "_"; a leading '.' becomes '_'.
std::string sanitise_model_id(std::string_view id);
// The directory under the cache root that holds every model's own directory.
inline constexpr std::string_view kModelsDirName = "by-model";
// A model's own directory: `<root>/by-model/<sanitised id>`.
std::filesystem::path model_dir(const std::filesystem::path& root, std::string_view model_id);
// The record of a provisioned model inside its directory (a name no model file is given).
inline constexpr std::string_view kManifestName = ".model.json";
// A single plain path component: not empty, not "." or "..", no '/', '\\' or NUL, ≤ 255 bytes.
Status check_plain_filename(std::string_view filename);
// Free bytes on the filesystem holding `path` (probed at its nearest existing ancestor).
Result<std::uint64_t> free_bytes_at(const std::filesystem::path& path);

// A shared lock on one cached file, held while a job uses it; dropping it releases the lock.
// Move-only.
class FileLease {
 public:
  FileLease() = default;
  explicit FileLease(UniqueFd lock) : lock_(std::move(lock)) {}

 private:
  UniqueFd lock_;
};

struct CachedFile {
  std::string role;
  std::filesystem::path path;
  std::uint64_t bytes = 0;
  bool downloaded = false;  // false: reused from the cache or an operator-placed copy
  FileLease lease;
};

// A model the cache holds: provisioned by ensure_files() and every file of it still present.
struct HeldModel {
  std::string id;      // exact, as offered
  std::string engine;  // modelSource.engine, e.g. "llama-cpp"
};

// An engine's own reading of a file it is about to use (e.g. the GGUF header): an error means the
// bytes are not usable. Called with the file's entry and its local path, on the calling thread,
// with the file's shared lock held; may be called more than once per ensure_files().
using FileCheck =
    std::function<Status(const proto::ModelFile& file, const std::filesystem::path& path)>;

struct CacheConfig {
  std::filesystem::path root;
  std::uint64_t max_bytes = 0;  // cache budget (models_cache_max_gb); 0 = unlimited
  std::chrono::seconds stall_timeout{60};
  std::chrono::seconds total_timeout{30 * 60};
  std::chrono::seconds progress_log_interval{5};
};

class ModelCache {
 public:
  explicit ModelCache(CacheConfig config);

  // Local paths for every file of `source`, in order. Errors name the file and the problem.
  // A cached copy is reused only when it holds the file described: its sha256 when one is
  // pinned, else a size within approxBytes' bounds (transfer::declared_floor/ceiling), and
  // `check` passes; otherwise it is removed (with a `model.cache_corrupt` line saying why) and
  // fetched again. Operator-placed copies failing either are left alone and not used. A download
  // is held to the same bounds (DownloadRequest::declared_bytes) and to `check`; what fails
  // leaves nothing in the cache.
  Result<std::vector<CachedFile>> ensure_files(const std::string& model_id,
                                               const proto::ModelSource& source,
                                               const transfer::ProgressFn& progress = {},
                                               const FileCheck& check = {});

  // Removes least-recently-used files no job holds until `needed` more bytes fit the budget.
  Status make_room(std::uint64_t needed);
  // Bytes of cached files (partial downloads included).
  std::uint64_t cached_bytes() const;
  // The models whose every file is present (checked by stat, never hashed), sorted by id. Reads
  // one small manifest per model directory: cheap, but disk I/O, so not on an I/O thread. Files
  // of the previous layout and operator-placed files with no manifest are not listed: nothing
  // says which model or engine they belong to until a job has used them.
  std::vector<HeldModel> held_models() const;

  const CacheConfig& config() const { return config_; }

 private:
  Result<CachedFile> ensure_one(const std::string& model_id, const proto::ModelFile& file,
                                const transfer::ProgressFn& progress, const FileCheck& check);
  CacheConfig config_;
};

}  // namespace sw::models
