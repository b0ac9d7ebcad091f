// End to end: `studio-worker models fetch|inspect` as an operator runs them. Two worker
// processes fetching the same file at once download it once (the cache's file lock).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/sha256.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"
#include "support/test_models.h"

namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

struct Child {
  FILE* pipe = nullptr;
  std::string output;
  int exit_code = -1;
};

Child start(const std::string& args) {
  Child child;
  child.pipe = ::popen((std::string(SW_STUDIO_WORKER_BIN) + " " + args + " 2>&1").c_str(), "r");
  return child;
}

// Polls `check` until it holds or 20 s pass (each poll reads other processes' state).
template <class Check>
bool eventually(Check check) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return check();
}

// Whether some process waits, blocked, for a flock on the file with this inode: /proc/locks lists
// such a waiter as "N: -> FLOCK  ADVISORY  WRITE <pid> <maj>:<min>:<inode> 0 EOF".
bool blocked_on(ino_t inode) {
  std::ifstream locks("/proc/locks");
  const std::string suffix = ":" + std::to_string(inode);
  for (std::string line; std::getline(locks, line);) {
    if (line.find("-> FLOCK") == std::string::npos) continue;
    std::istringstream fields(line);
    for (std::string field; fields >> field;) {
      if (field.ends_with(suffix)) return true;
    }
  }
  return false;
}

void finish(Child& child) {
  if (child.pipe == nullptr) return;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), child.pipe) != nullptr)
    child.output += buffer.data();
  int status = ::pclose(child.pipe);
  child.pipe = nullptr;
  child.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ModelsFetch, TwoProcessesFetchingTheSameFileDownloadItOnce) {
  sw::testing::HttpTestServer server;
  auto body = std::make_shared<const std::string>(std::string(8 * 1024 * 1024, 'w'));
  auto route = sw::testing::serving(body);
  route.gated = true;
  server.set_route("/tiny.gguf", route);
  sw::testing::TempDir dir;
  const fs::path source = dir.path() / "source.json";
  std::ofstream(source) << R"({"engine":"llama-cpp","files":[{"role":"model","url":")"
                        << server.url("/tiny.gguf") << R"(","filename":"tiny.gguf","approxBytes":)"
                        << body->size() << R"(,"sha256":")" << sw::sha256_hex(*body)
                        << R"("}],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})";
  const std::string args = "models fetch --model tiny/model --source " + source.string() +
                           " --models-root " + (dir.path() / "models").string();
  // The two must overlap: the server holds the body of the first request until the second
  // process is provably waiting on the download lock (the kernel lists it as a blocked waiter on
  // that file in /proc/locks) or has asked for the file itself (the lock did not hold it).
  Child a = start(args);
  ASSERT_TRUE(eventually([&] { return server.request_count("/tiny.gguf") == 1; }));
  const fs::path download_lock =
      dir.path() / "models" / "by-model" / "tiny_model" / "tiny.gguf.download.lock";
  struct stat lock_stat {};
  ASSERT_EQ(::stat(download_lock.c_str(), &lock_stat), 0) << "the first process holds no lock";
  Child b = start(args);
  ASSERT_TRUE(eventually([&] {
    return server.request_count("/tiny.gguf") >= 2 || blocked_on(lock_stat.st_ino);
  })) << "the second process neither waited on the lock nor asked for the file";
  server.open_gate();
  finish(a);
  finish(b);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(server.request_count("/tiny.gguf"), 1u) << "both processes downloaded the file";
  const fs::path cached = dir.path() / "models" / "by-model" / "tiny_model" / "tiny.gguf";
  EXPECT_EQ(fs::file_size(cached), body->size());
  // One process downloaded, the other waited and reused.
  std::string both = a.output + b.output;
  EXPECT_THAT(both, HasSubstr("downloaded"));
  EXPECT_THAT(both, HasSubstr("reused"));
}

TEST(ModelsFetch, BadSourceFilesAreNamed) {
  sw::testing::TempDir dir;
  const fs::path source = dir.path() / "source.json";
  std::ofstream(source) << R"({"engine":"llama-cpp","files":[{"role":"model","url":"https://x/a",
      "filename":"../a.gguf"}],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})";
  Child run = start("models fetch --model m --source " + source.string() + " --models-root " +
                    (dir.path() / "models").string());
  finish(run);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("must be a plain file name"));

  std::ofstream(source, std::ios::trunc) << R"({"engine":"llama-cpp","files":[]})";
  Child invalid = start("models fetch --model m --source " + source.string());
  finish(invalid);
  EXPECT_NE(invalid.exit_code, 0);
  EXPECT_THAT(invalid.output, HasSubstr("cliDefaults: missing required field"));
}

TEST(ModelsInspect, PrintsMetadataAndEstimate) {
  SW_REQUIRE_TEST_MODELS(models);
  Child run =
      start("models inspect " + (models / "stories260K-chat.gguf").string() + " --context 512");
  finish(run);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("architecture:    llama"));
  EXPECT_THAT(run.output, HasSubstr("chat template:   yes"));
  EXPECT_THAT(run.output, HasSubstr("run context:     512"));
}

}  // namespace
