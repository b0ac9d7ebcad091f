// The studio's registry: who may talk to it, by hashed token, and the model catalogue.

#include "studio/registry.h"

#include <gtest/gtest.h>

#include "common/sha256.h"
#include "proto/codec.h"

namespace sw::studio {
namespace {

TEST(RegistryTest, AWorkerTokenMatchesOnlyItsOwnWorkerUntilTheWorkerIsForgotten) {
  Registry registry;
  registry.set_worker_token_hash("w-1", sha256_hex("secret-1"));
  EXPECT_TRUE(registry.worker_token_matches("w-1", "secret-1"));
  EXPECT_FALSE(registry.worker_token_matches("w-1", "secret-2"));
  EXPECT_FALSE(registry.worker_token_matches("w-2", "secret-1"));
  registry.forget_worker("w-1");
  EXPECT_FALSE(registry.knows_worker("w-1"));
  EXPECT_FALSE(registry.worker_token_matches("w-1", "secret-1"));
}

TEST(RegistryTest, TheAdminTokenAndApiKeysAreToldApartAndARemovedKeyStopsWorking) {
  Registry registry;
  EXPECT_EQ(registry.bearer(""), Registry::Bearer::Unknown) << "no admin token yet: none matches";
  registry.set_admin_token_hash(sha256_hex("adm-1"));
  registry.add_api_key({"key-1", "ci", sha256_hex("sk-1"), 0});
  EXPECT_EQ(registry.bearer("adm-1"), Registry::Bearer::Admin);
  EXPECT_EQ(registry.bearer("sk-1"), Registry::Bearer::Client);
  EXPECT_EQ(registry.bearer("sk-2"), Registry::Bearer::Unknown);
  registry.remove_api_key("key-1");
  EXPECT_EQ(registry.bearer("sk-1"), Registry::Bearer::Unknown);
}

// Issue 20: a key acts with its scope; a change of scope (PATCH, or a reload) replaces the key
// without leaving its old entry behind.
TEST(RegistryTest, AKeyActsWithItsScopeAndAChangedScopeReplacesTheOld) {
  Registry registry;
  store::ApiKeyRecord key{"key-1", "app", sha256_hex("sk-1"), 0};
  key.scope = store::KeyScope::Inference;
  registry.add_api_key(key);
  EXPECT_EQ(registry.bearer("sk-1"), Registry::Bearer::Inference);
  key.scope = store::KeyScope::Admin;
  registry.add_api_key(key);
  EXPECT_EQ(registry.bearer("sk-1"), Registry::Bearer::Admin);
  EXPECT_EQ(registry.bearer_owner("sk-1"), "key-1") << "an admin-scoped key is still metered";
  ASSERT_NE(registry.api_key("key-1"), nullptr);
  EXPECT_EQ(registry.api_key("key-1")->scope, store::KeyScope::Admin);
  registry.remove_api_key("key-1");
  EXPECT_EQ(registry.bearer("sk-1"), Registry::Bearer::Unknown);
  EXPECT_EQ(registry.api_key("key-1"), nullptr);
}

TEST(RegistryTest, AnyWorkersTokenNamesItsWorkerAndBearersNameTheirOwner) {
  Registry registry;
  registry.set_worker_token_hash("w-1", sha256_hex("secret-1"));
  registry.set_worker_token_hash("w-2", sha256_hex("secret-2"));
  EXPECT_EQ(registry.worker_with_token("secret-2"), "w-2");
  EXPECT_FALSE(registry.worker_with_token("secret-3"));
  registry.forget_worker("w-2");
  EXPECT_FALSE(registry.worker_with_token("secret-2"));
  registry.set_admin_token_hash(sha256_hex("adm-1"));
  registry.add_api_key({"key-1", "ci", sha256_hex("sk-1"), 0});
  EXPECT_EQ(registry.bearer_owner("adm-1"), "admin");
  EXPECT_EQ(registry.bearer_owner("sk-1"), "key-1");
  EXPECT_FALSE(registry.bearer_owner("secret-1")) << "a worker's token is no client's";
}

TEST(RegistryTest, AReloadReplacesTheCatalogueAndLeavesOutRowsThatDoNotDecode) {
  Registry registry;
  store::ModelRecord good;
  good.id = "m-b";
  proto::ModelSource source;
  source.engine = "synthetic";
  good.source_json = proto::encode(source);
  store::ModelRecord also_good = good;
  also_good.id = "m-a";
  store::ModelRecord bad;
  bad.id = "m-bad";
  bad.source_json = "{not json";
  std::vector<std::string> unreadable;
  registry.replace_models({good, also_good, bad},
                          [&](const std::string& id, const Error&) { unreadable.push_back(id); });
  EXPECT_EQ(unreadable, std::vector<std::string>{"m-bad"});
  ASSERT_EQ(registry.models().size(), 2u);
  EXPECT_EQ(registry.models()[0]->record.id, "m-a") << "sorted by id";
  EXPECT_EQ(registry.model("m-b")->source.engine, "synthetic");
  EXPECT_EQ(registry.model("m-bad"), nullptr);
}

}  // namespace
}  // namespace sw::studio
