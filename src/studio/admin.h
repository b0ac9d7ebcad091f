#pragma once
// Operator actions on registration requests, shared by the admin API and the
// `studio-server workers …` CLI (which works on the database directly). Run inside the caller's
// transaction; not thread-safe (the store's thread).

#include <string>

#include "common/error.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

// pending → approved: creates the worker (its token is minted on the worker's next poll) and
// returns its id. NotFound for an unknown request, Conflict when it was already decided.
// `by`: who approved it, recorded on the worker and the request (WorkerRecord::approved_by).
Result<std::string> approve_request(store::StudioStore& store, const std::string& request_id,
                                    store::Millis now, const std::string& by);
// pending → rejected with `reason`.
Status reject_request(store::StudioStore& store, const std::string& request_id,
                      const std::string& reason, store::Millis now, const std::string& by);

// The admin token (issue 17): minted when first needed, shown once, stored only as its SHA-256
// hash under the setting "admin_token_hash". A new one replaces the stored hash, so the previous
// token stops working (a running studio also swaps its in-memory hash: Studio).
inline constexpr const char* kAdminTokenSetting = "admin_token_hash";
// A fresh token: "adm-" and 48 hex digits (52 characters).
std::string new_admin_token();
// Mints a token and stores its hash, replacing any stored one; returns the token in clear.
Result<std::string> store_new_admin_token(store::StudioStore& store);
// Mints a token only when none is stored (one conditional insert: of several studio processes
// starting at once on one database, exactly one wins). Returns the token in clear when this call
// stored it, nullopt when a token was already there.
Result<std::optional<std::string>> store_first_admin_token(store::StudioStore& store);

}  // namespace sw::studio
