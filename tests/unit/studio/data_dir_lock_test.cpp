#include "studio/data_dir_lock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace sw::studio {
namespace {

using ::testing::HasSubstr;

TEST(DataDirLock, ASecondHolderIsRefusedWithWhoHoldsIt) {
  sw::testing::TempDir dir;
  auto first = DataDirLock::try_acquire(dir.path(), "serve");
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(first->publish_url("http://127.0.0.1:9790"));

  LockHolder holder;
  auto second = DataDirLock::try_acquire(dir.path(), "workers delete", &holder);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::Conflict);
  EXPECT_EQ(holder.pid, ::getpid());
  EXPECT_EQ(holder.command, "serve");
  EXPECT_EQ(holder.url, "http://127.0.0.1:9790");
  EXPECT_THAT(second.error().message, HasSubstr(dir.path().string()));
  EXPECT_THAT(second.error().message,
              HasSubstr("studio-server serve (pid " + std::to_string(::getpid()) +
                        ", http://127.0.0.1:9790)"));
  const auto perms = std::filesystem::status(dir.path() / DataDirLock::kFileName).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(DataDirLock, ReleasedWhenTheHolderGoesAndTheNextOneRecordsItself) {
  sw::testing::TempDir dir;
  {
    auto first = DataDirLock::try_acquire(dir.path(), "serve");
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->publish_url("http://127.0.0.1:9790"));
  }
  auto next = DataDirLock::try_acquire(dir.path(), "workers approve");
  ASSERT_TRUE(next) << next.error().message;
  // The last holder's address is gone with it: a reader never takes it for the new holder's.
  const auto holder = DataDirLock::read_holder(dir.path());
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder->command, "workers approve");
  EXPECT_EQ(holder->url, "");
}

TEST(DataDirLock, AMissingDirectoryIsCreatedPrivate) {
  sw::testing::TempDir dir;
  auto lock = DataDirLock::try_acquire(dir.path() / "new", "serve");
  ASSERT_TRUE(lock) << lock.error().message;
  const auto perms = std::filesystem::status(dir.path() / "new").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
}

}  // namespace
}  // namespace sw::studio
