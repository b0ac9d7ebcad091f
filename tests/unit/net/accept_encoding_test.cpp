#include <gtest/gtest.h>

#include "net/http_types.h"

namespace sw::net {
namespace {

HttpRequest with_accept_encoding(std::vector<std::string> values) {
  HttpRequest request;
  for (auto& value : values) request.headers.push_back({"accept-encoding", std::move(value)});
  return request;
}

TEST(AcceptEncodingTest, ACodingIsAcceptedWhenListedOrCoveredByAStarWithAPositiveQ) {
  EXPECT_TRUE(with_accept_encoding({"gzip"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({"br, GZIP;q=0.5"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({"deflate", "gzip"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({"*"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({"*;q=0, gzip"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({"deflate;q=1, gzip"}).accepts_encoding("gzip"));
  EXPECT_TRUE(with_accept_encoding({" , gzip ;  q=0.1 ,"}).accepts_encoding("gzip"));
}

TEST(AcceptEncodingTest, QZeroAbsenceAndLookalikesAreNotAcceptance) {
  EXPECT_FALSE(HttpRequest{}.accepts_encoding("gzip"));
  EXPECT_FALSE(with_accept_encoding({""}).accepts_encoding("gzip"));
  EXPECT_FALSE(with_accept_encoding({"gzip;q=0"}).accepts_encoding("gzip"));
  EXPECT_FALSE(with_accept_encoding({"gzip;q=0.000, *"}).accepts_encoding("gzip"));
  EXPECT_FALSE(with_accept_encoding({"x-gzip2, br"}).accepts_encoding("gzip"));
  EXPECT_FALSE(with_accept_encoding({"identity"}).accepts_encoding("gzip"));
}

}  // namespace
}  // namespace sw::net
