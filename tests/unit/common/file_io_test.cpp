// Private files and directories (issue 16, kind 6): exact modes whatever the umask, looser old
// modes narrowed, shared directories left alone.

#include "common/file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class Umask {
 public:
  explicit Umask(mode_t mask) : previous_(::umask(mask)) {}
  ~Umask() { ::umask(previous_); }
  Umask(const Umask&) = delete;
  Umask& operator=(const Umask&) = delete;

 private:
  mode_t previous_;
};

TEST(PrivateFiles, ANewDirectoryIs0700AndItsMissingParentsFollowTheUmask) {
  Umask umask(022);
  sw::testing::TempDir dir;
  const auto made = sw::make_private_dir(dir.path() / "parent" / "private");
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_FALSE(*made);
  EXPECT_EQ(mode_of(dir.path() / "parent" / "private"), 0700u);
  EXPECT_EQ(mode_of(dir.path() / "parent"), 0755u);
}

TEST(PrivateFiles, AnOlderLooseDirectoryIsNarrowedAndItsOldModeReported) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "data";
  fs::create_directory(path);
  fs::permissions(path, fs::perms(0755));
  auto made = sw::make_private_dir(path);
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_TRUE(*made);
  EXPECT_EQ(**made, 0755u);
  EXPECT_EQ(mode_of(path), 0700u);
  made = sw::make_private_dir(path);  // once: already private now
  ASSERT_TRUE(made);
  EXPECT_FALSE(*made);
}

TEST(PrivateFiles, AWorldSharedDirectoryIsLeftAlone) {
  sw::testing::TempDir dir;
  const auto shared = dir.path() / "tmp";
  fs::create_directory(shared);
  fs::permissions(shared, fs::perms(01777));
  const auto made = sw::make_private_dir(shared);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_FALSE(*made);
  EXPECT_EQ(mode_of(shared), 01777u);
}

TEST(PrivateFiles, APathThatIsAFileIsNotADirectory) {
  sw::testing::TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_FALSE(sw::make_private_dir(dir.path() / "file"));
}

TEST(PrivateFiles, ACreatedFileIs0600EvenUnderAUmaskThatWouldHideItFromItsOwner) {
  Umask umask(0277);
  sw::testing::TempDir dir;
  auto fd = sw::open_private_file(dir.path() / "new", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(mode_of(dir.path() / "new"), 0600u);
  EXPECT_TRUE(sw::write_all(fd->get(), "secret"));
}

TEST(PrivateFiles, AnOlderLooseFileIsNarrowedAndAMissingOneIsNoError) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "studio.db";
  std::ofstream(path) << "x";
  fs::permissions(path, fs::perms(0644));
  auto narrowed = sw::tighten_private_file(path);
  ASSERT_TRUE(narrowed) << narrowed.error().message;
  ASSERT_TRUE(*narrowed);
  EXPECT_EQ(**narrowed, 0644u);
  EXPECT_EQ(mode_of(path), 0600u);
  narrowed = sw::tighten_private_file(dir.path() / "absent");
  ASSERT_TRUE(narrowed);
  EXPECT_FALSE(*narrowed);
}

}  // namespace

// Issue 22: root running a command on a service user's files (`studio-worker --config
// /var/lib/studio-worker/config.toml register …` under sudo) must leave them that user's, or the
// service can no longer read its own 0600 state. Only root can give files away (CI runs as root);
// anyone else's writes stay their own.
TEST(AtomicWrites, RootKeepsTheOwnerOfTheFileItReplacesOrOfItsDirectory) {
  sw::testing::TempDir dir;
  if (::geteuid() != 0) {
    const auto mine = dir.path() / "mine.toml";
    ASSERT_TRUE(sw::write_file_atomically(mine, "a = 1\n", sw::Durability::RenameOnly, 0600));
    struct stat own {};
    ASSERT_EQ(::stat(mine.c_str(), &own), 0);
    EXPECT_EQ(own.st_uid, ::geteuid());
    return;
  }
  const auto service = dir.path() / "service";
  std::filesystem::create_directory(service);
  ASSERT_EQ(::chown(service.c_str(), 4242, 4243), 0);
  const auto fresh = service / "state.toml";
  ASSERT_TRUE(sw::write_file_atomically(fresh, "a = 1\n", sw::Durability::RenameOnly, 0600));
  struct stat st {};
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u) << "a new file gets its directory's owner";
  EXPECT_EQ(st.st_gid, 4243u);
  ASSERT_EQ(::chown(fresh.c_str(), 5151, 5152), 0);
  ASSERT_TRUE(sw::write_file_atomically(fresh, "a = 2\n", sw::Durability::RenameOnly, 0600));
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 5151u) << "a replaced file keeps its owner";
  EXPECT_EQ(st.st_gid, 5152u);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}
