#pragma once
// The test side of the synthetic engine's hold file (`EngineOptions::synthetic_hold_file`,
// `studio-worker run --synthetic-hold-file`): synthetic jobs wait while the file is absent, and
// the test releases them by creating it. A job then stays in flight for exactly as long as the
// test needs, with no timing window. Declare the latch after the worker that uses it: its
// destructor releases, so a failing test never leaves a daemon waiting on a held job.

#include <filesystem>
#include <fstream>
#include <utility>

namespace sw::testing {

class HoldLatch {
 public:
  explicit HoldLatch(std::filesystem::path path) : path_(std::move(path)) {}
  ~HoldLatch() { release(); }
  HoldLatch(const HoldLatch&) = delete;
  HoldLatch& operator=(const HoldLatch&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void release() const {
    if (!std::filesystem::exists(path_)) std::ofstream(path_) << "released\n";
  }

 private:
  std::filesystem::path path_;
};

}  // namespace sw::testing
