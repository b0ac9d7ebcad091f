// End to end (issue 16, kinds 6 and 7b): the `studio-server` and `studio-worker` binaries keep
// prompts, results and tokens readable by their owner only, whatever the umask (directories 0700,
// files 0600), narrow what an older version left looser, and `serve` refuses a database that lost
// its memory or is damaged instead of starting over as a fresh install.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "support/farm.h"
#include "support/temp_dir.h"

namespace {

using ::testing::HasSubstr;
using namespace sw::testing::farm;
namespace fs = std::filesystem;

// The umask a typical login shell has; the children started by the test inherit it.
class Umask {
 public:
  explicit Umask(mode_t mask) : previous_(::umask(mask)) {}
  ~Umask() { ::umask(previous_); }
  Umask(const Umask&) = delete;
  Umask& operator=(const Umask&) = delete;

 private:
  mode_t previous_;
};

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct Output {
  int exit_code = -1;
  std::string text;
};

// `studio-server ARGS` to its end. `timeout` bounds a server that starts when it should have
// refused (it would serve forever); a refusal ends at once.
Output run_server(const std::string& args) {
  Output out;
  const std::string command =
      "timeout 30 " + std::string(SW_STUDIO_SERVER_BIN) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) out.text += buffer.data();
  const int status = ::pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

void expect_private_studio(const fs::path& data) {
  EXPECT_EQ(mode_of(data), 0700u);
  EXPECT_EQ(mode_of(data / "results"), 0700u);
  for (const char* name : {"studio.db", "studio.db-wal", "studio.db-shm"}) {
    if (fs::exists(data / name)) {
      EXPECT_EQ(mode_of(data / name), 0600u) << name;
    }
  }
  EXPECT_TRUE(fs::exists(data / "studio.db"));
  for (const auto& entry : fs::directory_iterator(data / "results")) {
    EXPECT_EQ(mode_of(entry.path()), 0600u) << entry.path();
  }
}

void expect_private_worker(const fs::path& dir) {
  EXPECT_EQ(mode_of(dir), 0700u);
  for (const char* name :
       {"config.toml", "state.toml", "outbox.db", "daemon.lock", "local-api.json"}) {
    EXPECT_TRUE(fs::exists(dir / name)) << name;
    EXPECT_EQ(mode_of(dir / name), 0600u) << name;
  }
  for (const char* name : {"outbox.db-wal", "outbox.db-shm"}) {
    if (fs::exists(dir / name)) {
      EXPECT_EQ(mode_of(dir / name), 0600u) << name;
    }
  }
}

TEST(PrivateData, StudioAndWorkerFilesAreOwnerOnlyUnderUmask022) {
  Umask umask(022);
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker worker(dir.path() / "w1", studio);
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto job =
      studio.submit("image", {{"prompt", "a private fox"}, {"width", 64}, {"height", 64}});
  ASSERT_TRUE(studio.wait_status(job, "done")) << studio.job(job).dump() << worker.log();

  // While both run: the databases' -wal and -shm exist and took the database's mode.
  const auto data = studio.data_dir();
  EXPECT_TRUE(fs::exists(data / "studio.db-wal"));
  EXPECT_FALSE(fs::is_empty(data / "results"));
  expect_private_studio(data);
  EXPECT_TRUE(fs::exists(dir.path() / "w1" / "outbox.db-wal"));
  expect_private_worker(dir.path() / "w1");
}

TEST(PrivateData, AnOlderInstallsLooseModesAreNarrowedAtStartAndLogged) {
  Umask umask(022);
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w1", studio.url(), 0, "");
  ASSERT_TRUE(worker.wait_session("waiting_for_approval")) << worker.log();
  ASSERT_EQ(worker.terminate(), 0);
  ASSERT_EQ(studio.terminate(), 0);

  // What an older version left: everything readable by every local user.
  const auto data = studio.data_dir();
  write(data / "results" / std::string(64, 'a'), "an older result");
  for (const auto& path : {data, data / "results"}) fs::permissions(path, fs::perms(0755));
  for (const auto& path : {data / "studio.db", data / "results" / std::string(64, 'a')}) {
    fs::permissions(path, fs::perms(0644));
  }
  const auto wdir = dir.path() / "w1";
  fs::permissions(wdir, fs::perms(0755));
  for (const char* name : {"config.toml", "state.toml", "outbox.db", "daemon.lock"}) {
    fs::permissions(wdir / name, fs::perms(0644));
  }

  studio.start(0);
  worker.start();
  ASSERT_TRUE(worker.wait_session("waiting_for_approval")) << worker.log();
  expect_private_studio(data);
  expect_private_worker(wdir);
  const auto server_log = read_file(dir.path() / "studio" / "server.log");
  EXPECT_THAT(server_log, HasSubstr("permissions.tightened"));
  EXPECT_THAT(server_log, HasSubstr(data.string()));
  EXPECT_THAT(worker.log(), HasSubstr("permissions.tightened"));
}

TEST(PrivateData, ServeRefusesAnEmptyOrMissingDatabaseWhileResultsHoldFiles) {
  sw::testing::TempDir dir;
  const auto data = dir.path() / "data";
  fs::create_directories(data / "results");
  write(data / "results" / std::string(64, 'b'), "a result the database no longer knows");
  write(data / "studio.db", "");
  const std::string args = " --data-dir " + data.string();

  auto out = run_server("serve --listen 127.0.0.1:0" + args);
  EXPECT_EQ(out.exit_code, 2) << out.text;
  EXPECT_THAT(out.text, HasSubstr((data / "studio.db").string()));
  EXPECT_THAT(out.text, HasSubstr("empty"));
  EXPECT_THAT(out.text, HasSubstr("backup"));
  // Nothing was created over it: the operator's files are as they were.
  EXPECT_EQ(fs::file_size(data / "studio.db"), 0u);
  EXPECT_TRUE(fs::exists(data / "results" / std::string(64, 'b')));

  // The admin commands refuse too (they would have created a fresh schema).
  out = run_server("workers list" + args);
  EXPECT_NE(out.exit_code, 0) << out.text;
  EXPECT_THAT(out.text, HasSubstr((data / "studio.db").string()));

  fs::remove(data / "studio.db");
  out = run_server("serve --listen 127.0.0.1:0" + args);
  EXPECT_EQ(out.exit_code, 2) << out.text;
  EXPECT_THAT(out.text, HasSubstr("missing"));
  EXPECT_FALSE(fs::exists(data / "studio.db"));
}

TEST(PrivateData, ServeRefusesADatabaseThatIsNotSQLite) {
  sw::testing::TempDir dir;
  const auto data = dir.path() / "data";
  fs::create_directories(data);
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage += static_cast<char>((i * 131 + 7) % 251);
  write(data / "studio.db", garbage);

  const auto out = run_server("serve --listen 127.0.0.1:0 --data-dir " + data.string());
  EXPECT_EQ(out.exit_code, 2) << out.text;
  EXPECT_THAT(out.text, HasSubstr((data / "studio.db").string()));
  EXPECT_THAT(out.text, HasSubstr("damaged"));
  EXPECT_EQ(read_file(data / "studio.db"), garbage);
}

TEST(PrivateData, ServeRefusesADatabaseWithDamagedPages) {
  sw::testing::TempDir dir;
  {
    Studio studio(dir.path() / "studio");
    studio.add_models();
    ASSERT_EQ(studio.terminate(), 0);  // the last close folds the WAL into studio.db
  }
  const auto db = dir.path() / "studio" / "data" / "studio.db";
  const auto size = fs::file_size(db);
  ASSERT_GT(size, 8192u);
  {
    // Page 1 (the header and schema root) intact, every later page overwritten.
    std::fstream file(db, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    file << std::string(size - 4096, '\x5a');
  }
  const auto out = run_server("serve --listen 127.0.0.1:0 --data-dir " + db.parent_path().string());
  EXPECT_EQ(out.exit_code, 2) << out.text;
  EXPECT_THAT(out.text, HasSubstr(db.string()));
  EXPECT_THAT(out.text, HasSubstr("damaged"));
}

TEST(PrivateData, ServeStartsAFreshInstallEvenOverAnEmptyDatabaseFile) {
  // A first start that died before the schema was written leaves a 0-byte studio.db and an empty
  // results/: nothing to forget, so it is a fresh install.
  sw::testing::TempDir dir;
  fs::create_directories(dir.path() / "studio" / "data" / "results");
  write(dir.path() / "studio" / "data" / "studio.db", "");
  Studio studio(dir.path() / "studio");
  EXPECT_EQ(studio.api("GET", "/api/v1/workers").status, 200);
  EXPECT_GT(fs::file_size(dir.path() / "studio" / "data" / "studio.db"), 0u);
}

}  // namespace
