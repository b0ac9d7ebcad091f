#include <gtest/gtest.h>

#include "common/log.h"

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

}  // namespace
}  // namespace sw::log
