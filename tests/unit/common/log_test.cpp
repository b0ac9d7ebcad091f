#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/log_journal.h"
#include "support/temp_dir.h"

namespace sw::log {
namespace {

TEST(LogFilter, RustLogSyntax) {
  auto filter = Filter::parse("warn,studio_worker::engine=debug,studio_worker::engine::multi=off");
  ASSERT_TRUE(filter) << filter.error().message;
  EXPECT_EQ(filter->level_for("studio_worker::ws::session"), Level::Warn);
  EXPECT_EQ(filter->level_for("studio_worker::engine::synthetic"), Level::Debug);
  EXPECT_EQ(filter->level_for("studio_worker::engine::multi"), Level::Off);  // longest prefix wins

  auto bare_target = Filter::parse("studio_worker::ws");
  ASSERT_TRUE(bare_target);
  EXPECT_EQ(bare_target->level_for("studio_worker::ws::session"), Level::Trace);
  EXPECT_EQ(bare_target->level_for("studio_worker::engine"), Level::Info);

  auto empty = Filter::parse("");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->level_for("anything"), Level::Info);
}

TEST(LogFilter, MalformedDirectiveIsNamed) {
  auto filter = Filter::parse("info,studio_worker::ws=loud");
  ASSERT_FALSE(filter);
  EXPECT_NE(filter.error().message.find("studio_worker::ws=loud"), std::string::npos)
      << filter.error().message;
}

TEST(LogCapture, RecordsEventsWithKeyValueFields) {
  Capture capture;
  Logger logger("studio_worker::test");
  logger.warn("thing.happened", {{"model", "qwen 3"}, {"count", 3}, {"ok", true}, {"ratio", 0.5}});
  auto records = capture.find("thing.happened");
  ASSERT_EQ(records.size(), 1u);
  const Record& r = records[0];
  EXPECT_EQ(r.level, Level::Warn);
  EXPECT_EQ(r.target, "studio_worker::test");
  ASSERT_NE(r.field("model"), nullptr);
  EXPECT_EQ(*r.field("model"), "qwen 3");
  EXPECT_EQ(*r.field("count"), "3");
  EXPECT_EQ(r.line, R"(thing.happened model="qwen 3" count=3 ok=true ratio=0.5)");
}

TEST(LogCapture, LowersTheFilterOnlyDownToItsOwnLevel) {
  set_filter(*Filter::parse("off"));
  {
    Capture capture(Level::Debug);
    Logger logger("studio_worker::test");
    logger.trace("too.quiet");
    logger.debug("heard");
    EXPECT_FALSE(capture.contains("too.quiet"));
    EXPECT_TRUE(capture.contains("heard"));
  }
  set_filter(*Filter::parse("info"));
}

TEST(LogJournal, PrioritiesAreSdDaemonPrefixes) {
  EXPECT_EQ(journal_prefix(Level::Error), "<3>");
  EXPECT_EQ(journal_prefix(Level::Warn), "<4>");
  EXPECT_EQ(journal_prefix(Level::Info), "<6>");
  EXPECT_EQ(journal_prefix(Level::Debug), "<7>");
  EXPECT_EQ(journal_prefix(Level::Trace), "<7>");
}

TEST(LogJournal, JournalStreamMustNameThisVeryFile) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "stream";
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const auto dev = std::to_string(st.st_dev);
  const auto ino = std::to_string(st.st_ino);
  EXPECT_TRUE(journal_stream_names(dev + ":" + ino, fd));
  EXPECT_FALSE(journal_stream_names(dev + ":" + std::to_string(st.st_ino + 1), fd));
  EXPECT_FALSE(journal_stream_names(std::to_string(st.st_dev + 1) + ":" + ino, fd));
  for (const std::string& bad :
       std::vector<std::string>{"", ":", dev, dev + ":", ":" + ino, dev + ":" + ino + ":1",
                                dev + ":x" + ino, " " + dev + ":" + ino, "-1:" + ino}) {
    EXPECT_FALSE(journal_stream_names(bad, fd)) << bad;
  }
  ::close(fd);
  EXPECT_FALSE(journal_stream_names(dev + ":" + ino, fd));  // closed
}

// Everything written to stderr (fd 2) while it lives goes to a file of the test's.
class StderrToFile {
 public:
  explicit StderrToFile(std::filesystem::path path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~StderrToFile() { restore(); }
  // The lines written, once stderr is back.
  std::vector<std::string> lines() {
    restore();
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  std::filesystem::path path_;
  int saved_ = -1;
};

TEST(LogJournal, JournalLinesCarryThePriorityAndNoTimestamp) {
  sw::testing::TempDir dir;
  set_filter(*Filter::parse("debug"));
  StderrToFile captured(dir.path() / "stderr");
  const Logger logger("studio_worker::test");
  set_journal_output(true);
  EXPECT_TRUE(journal_output());
  logger.error("journal.error", {{"code", 2}});
  logger.warn("journal.warn", {{"why", "two words"}});
  logger.info("journal.info");
  logger.debug("journal.debug");
  set_format(Format::Json);
  logger.warn("journal.json");
  set_format(Format::Text);
  set_journal_output(false);
  logger.info("plain.info");
  const auto lines = captured.lines();
  set_filter(*Filter::parse("info"));

  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "<3>error studio_worker::test: journal.error code=2");
  EXPECT_EQ(lines[1], R"(<4>warn  studio_worker::test: journal.warn why="two words")");
  EXPECT_EQ(lines[2], "<6>info  studio_worker::test: journal.info");
  EXPECT_EQ(lines[3], "<7>debug studio_worker::test: journal.debug");
  // JSON keeps its own "ts" (a field, not a prefix journald would show twice).
  EXPECT_TRUE(std::regex_match(
      lines[4],
      std::regex(
          R"(<4>\{"event":"journal.json","level":"warn","target":"studio_worker::test","ts":"[0-9T:.-]+Z"\})")))
      << lines[4];
  // Not the journal: the timestamp of the text format, and no prefix.
  EXPECT_TRUE(std::regex_match(
      lines[5],
      std::regex(
          R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  studio_worker::test: plain\.info)")))
      << lines[5];
}

}  // namespace
}  // namespace sw::log
