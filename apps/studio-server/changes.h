#pragma once
// `studio-server workers approve|reject|delete`: a command that changes a studio's state never
// writes behind a running studio's back (issue 16). It takes the data directory's lock and works
// on the database directly when no studio runs; when `serve` holds the lock it asks that studio's
// admin API instead (the address is in the lock file, the token in STUDIO_SERVER_ADMIN_TOKEN), so
// the change takes effect at once (a deleted worker's session closes, its token stops working).
// Without a token it refuses and prints the API call that does the same. Blocking; main only.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "studio/store/studio_store.h"

namespace sw::studio_server {

struct Change {
  std::string command;  // "workers delete": named in the lock file and in messages
  // The admin API call that makes the same change on a running studio.
  std::string method;  // POST, DELETE
  std::string path;    // /api/v1/…, ids already percent-encoded
  std::string body;    // JSON, or empty
  // Makes the change on the database (the lock held); returns the exit code and prints.
  std::function<int(store::StudioStore&)> direct;
  // Prints the running studio's 2xx answer (its JSON body); returns the exit code.
  std::function<int(const std::string& body)> answered;
  // Said after the usual advice when the running studio cannot be asked (no token, refused).
  std::string without_token;
};

// Exit codes: 0 done; 1 the change was refused on its merits (unknown id, already decided);
// 2 it could not be made this way (no token, the studio unreachable, a broken data directory).
// `database_uri`: the studio's PostgreSQL database (--database), else <data_dir>/studio.db. The
// lock is still the data directory's: it tells whether a studio runs on this one.
int change_state(const std::filesystem::path& data_dir,
                 const std::optional<std::string>& database_uri, const Change& change);

// `text` with every byte outside RFC 3986's unreserved set percent-encoded (one path segment). The
// studio matches ids undecoded, so an id that needs encoding names nothing (ids are rr-/w-uuids).
std::string path_segment(const std::string& text);

}  // namespace sw::studio_server
