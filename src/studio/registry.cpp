#include "studio/registry.h"

#include <algorithm>

#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"

namespace sw::studio {

bool Registry::worker_token_matches(std::string_view worker_id, std::string_view token) const {
  const auto it = workers_.find(std::string(worker_id));
  return it != workers_.end() && constant_time_equal(sha256_hex(token), it->second);
}

bool Registry::knows_worker(std::string_view worker_id) const {
  return workers_.contains(std::string(worker_id));
}

std::optional<std::string> Registry::worker_with_token(std::string_view token) const {
  const auto hash = sha256_hex(token);
  std::optional<std::string> found;
  // Every hash is compared (no early exit), so the time taken does not say which worker matched.
  for (const auto& [id, stored] : workers_) {
    if (constant_time_equal(hash, stored) && !found) {
      found = id;
    }
  }
  return found;
}

void Registry::set_worker_token_hash(const std::string& worker_id, std::string token_hash) {
  workers_[worker_id] = std::move(token_hash);
}

void Registry::forget_worker(const std::string& worker_id) {
  workers_.erase(worker_id);
}

std::vector<std::string> Registry::replace_workers(
    const std::vector<store::WorkerRecord>& workers) {
  std::unordered_map<std::string, std::string> fresh;
  for (const auto& worker : workers) {
    fresh[worker.id] = worker.token_hash;
  }
  std::vector<std::string> gone;
  for (const auto& [id, hash] : workers_) {
    if (!fresh.contains(id)) {
      gone.push_back(id);
    }
  }
  workers_ = std::move(fresh);
  return gone;
}

Registry::Bearer Registry::bearer(std::string_view token) const {
  return bearer_of_hash(sha256_hex(token));
}

Registry::Bearer Registry::bearer_of_hash(const std::string& hash) const {
  if (!admin_token_hash_.empty() && constant_time_equal(hash, admin_token_hash_)) {
    return Bearer::Admin;
  }
  // The lookup is by hash: the key itself is never compared, and its hash is not secret.
  const auto id = key_ids_.find(hash);
  if (id == key_ids_.end()) {
    return Bearer::Unknown;
  }
  switch (api_keys_.at(id->second).scope) {
    case store::KeyScope::Inference: return Bearer::Inference;
    case store::KeyScope::Client: return Bearer::Client;
    case store::KeyScope::Admin: return Bearer::Admin;
  }
  return Bearer::Inference;
}

std::optional<std::string> Registry::bearer_owner(std::string_view token) const {
  const auto hash = sha256_hex(token);
  if (!admin_token_hash_.empty() && constant_time_equal(hash, admin_token_hash_)) {
    return std::string("admin");
  }
  const auto key = key_ids_.find(hash);
  return key == key_ids_.end() ? std::nullopt : std::optional<std::string>(key->second);
}

std::optional<std::string> Registry::confined_owner(std::string_view token) const {
  if (bearer(token) != Bearer::Inference) {
    return std::nullopt;
  }
  return bearer_owner(token);
}

void Registry::add_api_key(const store::ApiKeyRecord& key) {
  remove_api_key(key.id);
  api_keys_.emplace(key.id, key);
  key_ids_[key.key_hash] = key.id;
}

void Registry::remove_api_key(std::string_view key_id) {
  const auto it = api_keys_.find(std::string(key_id));
  if (it == api_keys_.end()) {
    return;
  }
  key_ids_.erase(it->second.key_hash);
  api_keys_.erase(it);
}

void Registry::replace_api_keys(const std::vector<store::ApiKeyRecord>& keys) {
  api_keys_.clear();
  key_ids_.clear();
  for (const auto& key : keys) {
    add_api_key(key);
  }
}

const store::ApiKeyRecord* Registry::api_key(std::string_view key_id) const {
  const auto it = api_keys_.find(std::string(key_id));
  return it == api_keys_.end() ? nullptr : &it->second;
}

CatalogueModel::CatalogueModel(store::ModelRecord r, proto::ModelSource s)
    : record(std::move(r)), source(std::move(s)), source_json(proto::encode(source)) {}

const CatalogueModel* Registry::model(std::string_view id) const {
  const auto it = models_.find(std::string(id));
  return it == models_.end() ? nullptr : &it->second;
}

std::vector<const CatalogueModel*> Registry::models() const {
  std::vector<const CatalogueModel*> sorted;
  sorted.reserve(models_.size());
  for (const auto& [id, model] : models_) {
    sorted.push_back(&model);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->record.id < b->record.id; });
  return sorted;
}

void Registry::put_model(CatalogueModel model) {
  auto id = model.record.id;
  models_.insert_or_assign(std::move(id), std::move(model));
}

void Registry::remove_model(const std::string& id) {
  models_.erase(id);
}

void Registry::replace_models(
    std::vector<store::ModelRecord> models,
    const std::function<void(const std::string& id, const Error&)>& unreadable) {
  models_.clear();
  for (auto& model : models) {
    auto source = proto::decode_model_source(model.source_json);
    if (!source) {
      unreadable(model.id, source.error());
      continue;
    }
    put_model(CatalogueModel{std::move(model), std::move(*source)});
  }
}

}  // namespace sw::studio
