// Issue 22: a register-request with a join token, as the studio's transaction decides it against
// a real store (SQLite in memory): approved at once and recorded as such, one use per join (a
// repeat of a lost answer counts none), and refused by name when the token is unknown, expired,
// used up or revoked. Plus the token's lifetime syntax and the admin body.
#include "studio/join_tokens.h"

#include <gtest/gtest.h>

#include "common/sha256.h"
#include "studio/request_bodies.h"
#include "studio/transactions.h"

namespace sw::studio {
namespace {

using namespace std::chrono_literals;

JoinTokenOptions options(std::string label, std::optional<std::chrono::seconds> ttl,
                         std::optional<std::int64_t> uses) {
  JoinTokenOptions out;
  out.label = std::move(label);
  out.ttl = ttl;
  out.max_uses = uses;
  return out;
}
constexpr std::optional<std::chrono::seconds> kDay = std::chrono::hours(24);

class JoinTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::SqliteStudioStore::open(":memory:");
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  CreatedJoinToken create(JoinTokenOptions options, store::Millis now = 1'000) {
    auto created = create_join_token(*store_, options, "cli", now);
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : CreatedJoinToken{};
  }
  store::RegistrationRecord request(const std::string& install, store::Millis at) {
    store::RegistrationRecord r;
    r.id = "rr-" + install + "-" + std::to_string(at);
    r.install_id = install;
    r.secret_hash = sha256_hex("secret-" + install);
    r.capabilities_json = "{}";
    r.user_agent = "studio-worker/test";
    r.source_ip = "127.0.0.1:5000";
    r.created_at = at;
    return r;
  }
  tx::JoinAnswer join(const std::string& token, const std::string& install, store::Millis at) {
    auto answer = tx::join_registration(*store_, request(install, at), sha256_hex(token));
    EXPECT_TRUE(answer) << answer.error().message;
    return answer ? *answer : tx::JoinAnswer{};
  }
  std::unique_ptr<store::SqliteStudioStore> store_;
};

TEST_F(JoinTokenTest, AValidTokenApprovesAtOnceAndTheWorkerSaysWhichToken) {
  const auto token = create(options("rack 3", 1h, 2));
  EXPECT_TRUE(token.token.starts_with("swjoin-"));
  EXPECT_EQ(token.token.size(), 7u + 64u);
  EXPECT_EQ(token.record.token_hash, sha256_hex(token.token)) << "only the hash is kept";

  const auto answer = join(token.token, "install-a", 2'000);
  ASSERT_TRUE(answer.refusal.empty()) << answer.refusal;
  EXPECT_EQ(answer.join_token_id, token.record.id);
  const auto worker = store_->find_worker(answer.worker_id);
  ASSERT_TRUE(worker && *worker);
  EXPECT_EQ((*worker)->approved_by, "join-token:" + token.record.id);
  EXPECT_EQ((*worker)->created_at, 2'000);
  const auto decided = store_->find_request(answer.request_id);
  ASSERT_TRUE(decided && *decided);
  EXPECT_EQ((*decided)->status, store::RequestStatus::Approved);
  EXPECT_EQ((*decided)->decided_by, "join-token:" + token.record.id);

  // The poll that follows hands out the credentials, as for an operator's approval.
  const auto poll =
      tx::poll_registration(*store_, answer.request_id, sha256_hex("secret-install-a"));
  ASSERT_TRUE(poll);
  EXPECT_NE(poll->response.body.find("\"status\":\"approved\""), std::string::npos) << poll->response.body;
}

TEST_F(JoinTokenTest, ARepeatOfALostAnswerCountsNoUseAndNamesTheSameWorker) {
  const auto token = create(options("", kDay, 1));
  const auto first = join(token.token, "install-a", 2'000);
  ASSERT_TRUE(first.refusal.empty()) << first.refusal;
  const auto again = join(token.token, "install-a", 2'500);
  EXPECT_TRUE(again.refusal.empty()) << again.refusal;
  EXPECT_EQ(again.request_id, first.request_id);
  EXPECT_EQ(again.worker_id, first.worker_id);
  auto workers = store_->list_workers();
  ASSERT_TRUE(workers);
  EXPECT_EQ(workers->size(), 1u);
  // Its one use went to install-a: another machine is refused.
  const auto other = join(token.token, "install-b", 3'000);
  EXPECT_EQ(other.refusal, "join token " + token.record.id + " is used up (1 of 1 uses)");
}

TEST_F(JoinTokenTest, AnUnknownExpiredOrRevokedTokenIsRefusedByNameAndWritesNothing) {
  EXPECT_EQ(join("swjoin-nothing", "install-a", 2'000).refusal,
            "join token not recognised by this studio");

  const auto expiring = create(options("", 60s, std::nullopt), 10'000);
  EXPECT_TRUE(join(expiring.token, "install-a", 69'999).refusal.empty());
  EXPECT_EQ(join(expiring.token, "install-b", 70'000).refusal,
            "join token " + expiring.record.id + " expired at 1970-01-01T00:01:10.000Z");

  const auto revoked = create(options("", std::nullopt, std::nullopt));
  ASSERT_TRUE(store_->revoke_join_token(revoked.record.id, 80'000));
  EXPECT_EQ(join(revoked.token, "install-c", 90'000).refusal,
            "join token " + revoked.record.id + " was revoked at 1970-01-01T00:01:20.000Z");

  auto workers = store_->list_workers();
  ASSERT_TRUE(workers);
  EXPECT_EQ(workers->size(), 1u) << "only the join before the expiry made a worker";
  auto pending = store_->list_requests(store::RequestStatus::Pending);
  ASSERT_TRUE(pending);
  EXPECT_TRUE(pending->empty()) << "a refused join leaves no request behind";
}

TEST_F(JoinTokenTest, ARequestWithoutATokenStillWaitsForTheOperator) {
  create({});
  auto opened = tx::open_registration(*store_, request("install-a", 2'000));
  ASSERT_TRUE(opened);
  auto found = store_->find_request(*opened);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->status, store::RequestStatus::Pending);
}

TEST_F(JoinTokenTest, LifetimesAndLimitsAreCheckedAndNamed) {
  EXPECT_EQ(parse_join_token_ttl("30m").value(), std::optional<std::chrono::seconds>(1800s));
  EXPECT_EQ(parse_join_token_ttl("24h").value(), std::optional<std::chrono::seconds>(86400s));
  EXPECT_EQ(parse_join_token_ttl("7d").value(), std::optional<std::chrono::seconds>(604800s));
  EXPECT_EQ(parse_join_token_ttl("120").value(), std::optional<std::chrono::seconds>(120s));
  EXPECT_EQ(parse_join_token_ttl("never").value(), std::nullopt);
  for (const char* bad : {"", "10s", "0d", "-1h", "1y", "h", "367d", "99999999999999999999"}) {
    EXPECT_FALSE(parse_join_token_ttl(bad)) << bad;
  }
  EXPECT_FALSE(create_join_token(*store_, options("", kDay, 0), "cli", 1));
  EXPECT_FALSE(create_join_token(*store_, options("a\nb", kDay, std::nullopt), "cli", 1));

  auto body = read_join_token_body(R"({"label":"rack 3","ttlSeconds":3600,"uses":5})", 1024);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(body->ttl, std::optional<std::chrono::seconds>(3600s));
  EXPECT_EQ(body->max_uses, std::optional<std::int64_t>(5));
  auto defaults = read_join_token_body("", 1024);
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->ttl, std::optional<std::chrono::seconds>(24h)) << "a day unless told";
  EXPECT_FALSE(defaults->max_uses);
  auto never = read_join_token_body(R"({"ttlSeconds":null})", 1024);
  ASSERT_TRUE(never);
  EXPECT_FALSE(never->ttl);
  auto unknown = read_join_token_body(R"({"ttl":60})", 1024);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "ttl: unknown member (known: label, ttlSeconds, uses)");
  auto short_ttl = read_join_token_body(R"({"ttlSeconds":59})", 1024);
  ASSERT_FALSE(short_ttl);
  EXPECT_NE(short_ttl.error().message.find("ttlSeconds"), std::string::npos);
}

}  // namespace
}  // namespace sw::studio
