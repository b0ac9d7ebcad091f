#include "studio/admin.h"

#include "common/secrets.h"
#include "common/sha256.h"

namespace sw::studio {
namespace {

Result<store::RegistrationRecord> pending_request(store::StudioStore& store,
                                                  const std::string& request_id) {
  auto request = store.find_request(request_id);
  if (!request) {
    return fail(std::move(request).error());
  }
  if (!*request) {
    return fail(Error::not_found("no registration request {}", request_id));
  }
  if ((*request)->status != store::RequestStatus::Pending) {
    return fail(Error::make(Code::Conflict, "registration request {} is already {}", request_id,
                            store::to_string((*request)->status)));
  }
  return std::move(**request);
}

}  // namespace

Result<std::string> approve_request(store::StudioStore& store, const std::string& request_id,
                                    store::Millis now, const std::string& by) {
  auto request = pending_request(store, request_id);
  if (!request) {
    return fail(std::move(request).error());
  }
  store::WorkerRecord worker;
  worker.id = "w-" + random_uuid();
  // Nobody knows this token: the worker gets a fresh one on its next poll.
  worker.token_hash = sha256_hex(random_hex(32));
  worker.install_id = request->install_id;
  worker.capabilities_json = request->capabilities_json;
  worker.created_at = now;
  worker.approved_by = by;
  SW_TRY(store.insert_worker(worker));
  auto decided =
      store.decide_request(request_id, store::RequestStatus::Approved, "", worker.id, now, by);
  if (!decided) {
    return fail(std::move(decided).error());
  }
  return worker.id;
}

Status reject_request(store::StudioStore& store, const std::string& request_id,
                      const std::string& reason, store::Millis now, const std::string& by) {
  auto request = pending_request(store, request_id);
  if (!request) {
    return fail(std::move(request).error());
  }
  auto decided = store.decide_request(request_id, store::RequestStatus::Rejected, reason,
                                      std::nullopt, now, by);
  if (!decided) {
    return fail(std::move(decided).error());
  }
  return {};
}

std::string new_admin_token() {
  return "adm-" + random_hex(24);
}

Result<std::string> store_new_admin_token(store::StudioStore& store) {
  std::string token = new_admin_token();
  SW_TRY(store.set_setting(kAdminTokenSetting, sha256_hex(token)));
  return token;
}

Result<std::optional<std::string>> store_first_admin_token(store::StudioStore& store) {
  std::string token = new_admin_token();
  auto stored = store.insert_setting_if_absent(kAdminTokenSetting, sha256_hex(token));
  if (!stored) {
    return fail(std::move(stored).error());
  }
  if (!*stored) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(token));
}

}  // namespace sw::studio
