#pragma once
// SHA-256 of a byte stream computed on a background thread, so hashing overlaps with receiving
// and writing (one core hashes at ~1.7 GiB/s; doing it inline capped downloads well below that).
// update() copies the bytes into a bounded pool of buffers and returns; the hasher consumes them
// in order. Single producer: not thread-safe itself; one per download.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/sha256.h"

namespace sw::transfer {

class StreamHasher {
 public:
  StreamHasher();
  ~StreamHasher();
  StreamHasher(const StreamHasher&) = delete;
  StreamHasher& operator=(const StreamHasher&) = delete;

  void update(std::span<const std::uint8_t> bytes);
  // Waits for every queued byte, returns the digest and starts a new, empty stream.
  Sha256Digest finish();
  // Discards the stream so far (queued bytes included) and starts a new, empty one.
  void reset() { finish(); }

 private:
  static constexpr std::size_t kBufferBytes = 1 << 20;
  static constexpr std::size_t kMaxBuffers = 8;  // at most 8 MiB in flight

  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<std::uint8_t>> queue_;  // filled, waiting to be hashed
  std::vector<std::vector<std::uint8_t>> free_;  // empty, ready to be filled
  std::size_t allocated_ = 0;
  bool busy_ = false;  // the worker is hashing a buffer outside the lock
  bool stop_ = false;
  Sha256 hasher_;
  std::thread worker_;
};

}  // namespace sw::transfer
