#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/admission.h"
#include "models/model_cache.h"

namespace sw::models {
namespace {

TEST(Admission, NeedsFitInFreeMinusTheReserve) {
  EXPECT_TRUE(admit(3.0, 4.0).admitted);
  EXPECT_TRUE(admit(3.0, 4.0).reason.empty());
  auto refused = admit(3.5, 4.0);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.reason,
            "insufficient memory: needs 3.50 GiB, 4.00 GiB free (1.00 GiB kept in reserve)");
  auto unknown = admit(0.1, std::nullopt);
  EXPECT_FALSE(unknown.admitted);
  EXPECT_THAT(unknown.reason, ::testing::HasSubstr("unknown"));
}

TEST(Admission, SystemMemoryIsProbed) {
  auto gib = available_system_memory_gib();
  ASSERT_TRUE(gib);
  EXPECT_GT(*gib, 0.0);
}

TEST(CacheNames, ModelIdsAreSanitisedAsTheReferenceDoes) {
  EXPECT_EQ(sanitise_model_id("z-image-turbo-q4_k_m.gguf"), "z-image-turbo-q4_k_m.gguf");
  EXPECT_EQ(sanitise_model_id("org/model:Q4 K"), "org_model_Q4_K");
  EXPECT_EQ(sanitise_model_id(""), "_");
  EXPECT_EQ(sanitise_model_id(".hidden"), "_hidden");
  EXPECT_EQ(sanitise_model_id("../../etc"), "_._.._etc");
}

TEST(CacheNames, FilenamesMustBeOnePlainComponent) {
  EXPECT_TRUE(check_plain_filename("ae.safetensors"));
  EXPECT_TRUE(check_plain_filename("a..b.gguf"));
  for (std::string_view bad :
       {"", ".", "..", "../x.gguf", "dir/x.gguf", "/etc/passwd", "a\\b.gguf"}) {
    auto status = check_plain_filename(bad);
    ASSERT_FALSE(status) << bad;
    EXPECT_THAT(status.error().message, ::testing::HasSubstr("must be a plain file name"));
  }
  EXPECT_FALSE(check_plain_filename(std::string_view("a\0b", 3)));
  EXPECT_FALSE(check_plain_filename(std::string(256, 'a')));
}

}  // namespace
}  // namespace sw::models
