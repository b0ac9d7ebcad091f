#pragma once
// Test helpers: a self-deleting temporary directory and whole-file reads.

#include <filesystem>
#include <string>
#include <vector>

namespace sw::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);

}  // namespace sw::testing
