#pragma once
// Client uploads (issue 20): files a client sends as job inputs (audio to transcribe, init and
// mask images), stored under <data_dir>/uploads as one private file per upload, named by its id,
// and fetched by workers from `<base>/graphics/api/uploads/<id>` with their own token.
//
// This header holds what the routes, the job checks and the studio's sweep share: how a task's
// input URLs name uploads, and the blocking file work (called on the studio's blocking pool, never
// on the loop). Pure functions and blocking I/O; thread-safe.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proto/types.h"

namespace sw::studio::uploads {

// The path under which workers fetch upload bytes; an input URL naming an upload has the path
// kDownloadPrefix + id (any scheme and host: clients may reach the studio by another name).
inline constexpr std::string_view kDownloadPrefix = "/graphics/api/uploads/";

// "upl-" followed by 1 to 64 of [0-9a-f-]: what new_upload_id() makes. Anything else is not an
// upload id (so it never reaches a path on disk).
bool valid_upload_id(std::string_view id);
std::string new_upload_id();

// The id an input URL names when its path (after any scheme://host, before any ?query or
// #fragment) is kDownloadPrefix + id; nullopt for any other URL. The id is not checked for
// validity here: a URL under the prefix that names no valid id is still meant as an upload.
std::optional<std::string> upload_id_of(std::string_view url);

// One input URL of a task that names an upload: the task field (its wire name, e.g.
// "inputUrl") and the id.
struct UploadRef {
  std::string field;
  std::string id;
};
// Every input URL of `task` that names an upload, in field order.
std::vector<UploadRef> upload_refs(const proto::Task& task);

// Blocking. Writes `bytes` as <dir>/<id> (dir created 0700 if missing; the file 0600, written to
// a temporary sibling and renamed, so a reader never sees part of it), hashing as it writes.
// Returns the lowercase sha256 hex. IoError on a failed write (nothing is left behind).
Result<std::string> write_upload_file(const std::filesystem::path& dir, const std::string& id,
                                      std::string_view bytes);
// Blocking. Removes <dir>/<id>; a missing file is not an error (a sweep after a crash).
Status remove_upload_file(const std::filesystem::path& dir, const std::string& id);

}  // namespace sw::studio::uploads
