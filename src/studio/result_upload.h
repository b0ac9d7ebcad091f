#pragma once
// The body of a multipart result upload (reference §2.3: parts `prompt`, `ext`, `image`), taken
// as it arrives: the `image` part is hashed (SHA-256) and written to a temporary file in the
// results directory while it is read, the small parts are kept in memory up to a cap, and nothing
// else of the body is held. The route admits an upload from its headers (the worker and the job in
// its path) before any of this runs, and uploads share a budget of bytes in flight.
//
// Loop-thread only (a net::BodySink), except ResultFile, whose commit() runs on the blocking pool.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "common/error.h"
#include "common/file_io.h"
#include "common/sha256.h"
#include "net/http_types.h"

namespace sw::studio {

// Bytes of result uploads admitted and not yet done with, across every upload: a declared
// Content-Length is reserved whole when the upload is admitted, a chunked body as it arrives.
// Shared by the studio and its uploads (which may outlive it); loop-thread only.
struct UploadBudget {
  std::uint64_t limit = 0;
  std::uint64_t in_flight = 0;
};

// A received result file under its temporary name (results/.upload-<random>.part, mode 0600).
// Removed when dropped unless commit() moved it into place first. Thread-safe to drop anywhere.
class ResultFile {
 public:
  explicit ResultFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~ResultFile();
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Renames it to `target` (mode 0644, as results always were). The rename replaces an existing
  // file atomically, so a reader never sees a partial result.
  Status commit(const std::filesystem::path& target);

 private:
  std::filesystem::path path_;  // empty once committed
};

// Removes temporary upload files a crash left behind in `results_dir`. With `min_age`, only those
// not written to for that long: a results directory shared by several studio processes (on one
// PostgreSQL database) holds the others' uploads in flight.
void remove_stale_upload_files(const std::filesystem::path& results_dir,
                               std::chrono::seconds min_age = std::chrono::seconds(0));

class ResultUploadSink : public net::BodySink, private net::FormDataReader::Events {
 public:
  enum class Mode {
    Store,   // the job is this worker's: keep the file
    Verify,  // a repeat or a late result: hash only (the stored file, if any, has these bytes)
  };
  struct Received {
    std::string ext;
    std::optional<std::string> prompt;
    std::string sha256;  // lowercase hex of the image part
    std::uint64_t size = 0;
    std::shared_ptr<ResultFile> file;  // Store mode only
  };

  // Reserves `declared` bytes (the Content-Length, if any) of `budget` and makes the sink, or
  // answers: 503 with Retry-After over the budget, 413 for a body no budget could hold, 400 when
  // the Content-Type is not multipart/form-data with a boundary. `small_part_limit` caps the bytes
  // of all other parts together.
  static std::variant<std::shared_ptr<ResultUploadSink>, net::HttpResponse> open(
      Mode mode, std::filesystem::path results_dir, std::shared_ptr<UploadBudget> budget,
      std::string_view content_type, std::optional<std::uint64_t> declared,
      std::uint64_t small_part_limit);
  ~ResultUploadSink() override;

  std::optional<net::HttpResponse> write(std::string_view bytes) override;
  // At the end of the body: the parts, or InvalidArgument (a malformed or incomplete body, no
  // image part, an invalid ext) naming the problem.
  Result<Received> finish();

 private:
  ResultUploadSink(Mode mode, std::filesystem::path results_dir,
                   std::shared_ptr<UploadBudget> budget, net::FormDataReader reader,
                   std::uint64_t reserved, bool declared, std::uint64_t small_part_limit);
  Status on_part_begin(const net::FormPartHead& head) override;
  Status on_part_data(std::string_view bytes) override;
  Status on_part_end() override;

  enum class Part { None, Image, Prompt, Ext, Other };
  Mode mode_;
  std::filesystem::path results_dir_;
  std::shared_ptr<UploadBudget> budget_;
  net::FormDataReader reader_;
  std::uint64_t reserved_;  // of budget_
  bool declared_;           // reserved_ is the whole Content-Length
  std::uint64_t received_ = 0;
  std::uint64_t small_part_limit_;
  std::uint64_t small_bytes_ = 0;
  Part part_ = Part::None;
  bool seen_image_ = false;
  std::optional<std::string> prompt_;
  std::optional<std::string> ext_;
  Sha256 hasher_;
  std::uint64_t size_ = 0;
  std::shared_ptr<ResultFile> file_;
  UniqueFd fd_;
  std::optional<Error> io_error_;  // a write failed: the studio's fault, worth a retry
};

}  // namespace sw::studio
