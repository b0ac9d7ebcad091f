#pragma once
// The studio's in-memory copy of who may talk to it and what it serves: worker token hashes, API
// key hashes, the admin token hash and the model catalogue. The database is the truth; this is
// what every request is checked against without a round trip. It is filled at start-up, changed
// right after a committed write through this process, and (on PostgreSQL with several processes)
// reloaded from the database when another process changed a table.
//
// Tokens and keys are held only as sha256 hex hashes and compared in constant time (house style:
// tokens stored hashed). Thread-safety: loop thread only, like the Studio that owns it.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/types.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

struct CatalogueModel {
  CatalogueModel(store::ModelRecord r, proto::ModelSource s);  // encodes source_json
  store::ModelRecord record;
  proto::ModelSource source;  // decoded once, when the row is read
  std::string source_json;    // proto::encode(source): what each new job stores, encoded once
};

class Registry {
 public:
  // ---- workers ----
  // Whether `token` is the current token of an approved, existing worker.
  bool worker_token_matches(std::string_view worker_id, std::string_view token) const;
  // Whether the worker is known (approved and not deleted) as of the last load or change.
  bool knows_worker(std::string_view worker_id) const;
  // `token_hash` is sha256 hex; an approved worker that has not collected its token yet gets a
  // hash nothing matches.
  void set_worker_token_hash(const std::string& worker_id, std::string token_hash);
  void forget_worker(const std::string& worker_id);
  // Replaces every worker at once (a reload from the database); returns the ids of the workers
  // known before and absent now (deleted through another studio process).
  std::vector<std::string> replace_workers(const std::vector<store::WorkerRecord>& workers);
  std::size_t worker_count() const { return workers_.size(); }
  // The approved worker whose current token is `token`, if any (upload downloads name no worker
  // in their path). Compares against every worker's hash in constant time: O(workers).
  std::optional<std::string> worker_with_token(std::string_view token) const;

  // ---- bearer tokens of the HTTP API ----
  // What a bearer may do, least first: an API key's scope (store::KeyScope), or Admin for the
  // admin token.
  enum class Bearer { Unknown, Inference, Client, Admin };
  // Who presents `token`: the admin token wins over an API key with the same hash.
  Bearer bearer(std::string_view token) const;
  // The same for a token's sha256 hex (a bearer remembered without its token).
  Bearer bearer_of_hash(const std::string& token_hash) const;
  // Who presents `token`, as an owner is recorded: the API key's id, "admin" for the admin
  // token, nullopt for anyone else.
  std::optional<std::string> bearer_owner(std::string_view token) const;
  // The key id of a bearer confined to its own jobs and uploads: an API key of scope inference
  // (issue 20). Nullopt for every other bearer, who sees all.
  std::optional<std::string> confined_owner(std::string_view token) const;
  // Empty: no admin token exists yet (no bearer matches).
  void set_admin_token_hash(std::string hash) { admin_token_hash_ = std::move(hash); }
  bool has_admin_token() const { return !admin_token_hash_.empty(); }
  void add_api_key(const store::ApiKeyRecord& key);  // adds or replaces (by id)
  void remove_api_key(std::string_view key_id);
  void replace_api_keys(const std::vector<store::ApiKeyRecord>& keys);
  // The key with this id as of the last load or change (its hash included), if any.
  const store::ApiKeyRecord* api_key(std::string_view key_id) const;

  // ---- models ----
  const CatalogueModel* model(std::string_view id) const;
  // Sorted by id.
  std::vector<const CatalogueModel*> models() const;
  void put_model(CatalogueModel model);
  void remove_model(const std::string& id);
  // Rows whose model source does not decode are left out and reported through `unreadable`.
  void replace_models(std::vector<store::ModelRecord> models,
                      const std::function<void(const std::string& id, const Error&)>& unreadable);
  std::size_t model_count() const { return models_.size(); }

 private:
  std::unordered_map<std::string, std::string> workers_;    // worker id → token hash
  std::unordered_map<std::string, CatalogueModel> models_;  // by model id
  std::unordered_map<std::string, store::ApiKeyRecord> api_keys_;  // by key id
  std::unordered_map<std::string, std::string> key_ids_;           // key hash → key id
  std::string admin_token_hash_;
};

}  // namespace sw::studio
