#pragma once
// Operator actions on registration requests, shared by the admin API and the
// `studio-server workers …` CLI (which works on the database directly). Run inside the caller's
// transaction; not thread-safe (the store's thread).

#include <string>

#include "common/error.h"
#include "store/studio_store.h"

namespace sw::studio {

// pending → approved: creates the worker (its token is minted on the worker's next poll) and
// returns its id. NotFound for an unknown request, Conflict when it was already decided.
Result<std::string> approve_request(store::StudioStore& store, const std::string& request_id,
                                    store::Millis now);
// pending → rejected with `reason`.
Status reject_request(store::StudioStore& store, const std::string& request_id,
                      const std::string& reason, store::Millis now);

}  // namespace sw::studio
