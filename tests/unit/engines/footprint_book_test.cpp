// Learned runner footprints (engines/runner/footprint_book.h): the margin, the file kept across
// restarts, and files that are damaged or hostile, which are ignored instead of stopping a start.

#include "engines/runner/footprint_book.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace sw::engines {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(FootprintBook, AMeasurementReplacesTheEstimateWithAMargin) {
  FootprintBook book;
  EXPECT_DOUBLE_EQ(book.need_gib("llama|m.gguf|4096", 7.5), 7.5) << "nothing learned yet";
  EXPECT_TRUE(book.record("llama|m.gguf|4096", 2.0));
  EXPECT_DOUBLE_EQ(book.need_gib("llama|m.gguf|4096", 7.5), 2.0 * (1 + kFootprintMargin));
  EXPECT_TRUE(book.record("llama|m.gguf|4096", 9.0)) << "an under-estimate is corrected upwards";
  EXPECT_DOUBLE_EQ(*book.learned_gib("llama|m.gguf|4096"), 9.0);
  EXPECT_FALSE(book.record("llama|m.gguf|4096", 9.05)) << "a change under 2 % is no news";
  EXPECT_FALSE(book.record("other", 0.0)) << "nothing measured";
  EXPECT_FALSE(book.record("other", -1.0));
  EXPECT_FALSE(book.learned_gib("other").has_value());
}

TEST(FootprintBook, WhatOneRunLearnedTheNextReadsPrivately) {
  sw::testing::TempDir dir;
  const auto file = dir.path() / "footprints.json";
  {
    FootprintBook book(file);
    book.record("a", 1.5);
    book.record("b", 3.25);
  }
  const auto mode = fs::status(file).permissions();
  EXPECT_EQ(mode & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  FootprintBook again(file);
  EXPECT_EQ(again.size(), 2u);
  EXPECT_DOUBLE_EQ(*again.learned_gib("a"), 1.5);
  EXPECT_DOUBLE_EQ(*again.learned_gib("b"), 3.25);
}

TEST(FootprintBook, ADamagedFileIsIgnoredAndReplacedByTheNextMeasurement) {
  sw::testing::TempDir dir;
  const auto file = dir.path() / "footprints.json";
  for (const std::string& text :
       {std::string("{not json"), std::string(R"({"version":"1","footprints":{}})"),
        std::string(R"({"version":2,"footprints":{"a":{"gib":1}}})"),
        std::string(R"({"version":1,"footprints":[1,2]})"),
        std::string(R"({"version":1,"footprints":{"a":{"gib":"big"},"b":{"gib":-3},)"
                    R"("c":{"gib":1e400},"d":7,"e":{"gib":2,"measuredAt":5},)"
                    R"("f":{"gib":1e9},"g":{"gib":null}}})"),
        std::string(100000, '[') + std::string(100000, ']'), std::string(2u << 20, ' ')}) {
    write(file, text);
    FootprintBook book(file);
    if (book.size() == 1) {
      EXPECT_DOUBLE_EQ(*book.learned_gib("e"), 2.0) << "the one well-formed entry is kept";
    } else {
      EXPECT_EQ(book.size(), 0u) << text.substr(0, 80);
    }
  }
  FootprintBook book(file);
  book.record("fresh", 1.0);
  EXPECT_DOUBLE_EQ(*FootprintBook(file).learned_gib("fresh"), 1.0);
  EXPECT_FALSE(book.record("absurd", 1e9)) << "no process holds a billion GiB";
  EXPECT_EQ(book.learned_gib("absurd"), std::nullopt);
}

TEST(FootprintBook, TheOldestMeasurementsGoBeyondTheCap) {
  sw::testing::TempDir dir;
  const auto file = dir.path() / "footprints.json";
  FootprintBook book(file);
  for (std::size_t i = 0; i < kFootprintMaxEntries + 3; ++i) {
    book.record("model-" + std::to_string(i), 1.0 + static_cast<double>(i));
  }
  EXPECT_EQ(book.size(), kFootprintMaxEntries);
  EXPECT_FALSE(book.learned_gib("model-0").has_value());
  EXPECT_FALSE(book.learned_gib("model-2").has_value());
  EXPECT_TRUE(book.learned_gib("model-3").has_value());
  EXPECT_EQ(FootprintBook(file).size(), kFootprintMaxEntries);
}

}  // namespace
}  // namespace sw::engines
