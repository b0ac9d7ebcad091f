#include "common/secrets.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/sha256.h"

namespace sw {
namespace {

std::vector<std::uint8_t> random_bytes(std::size_t count) {
  std::vector<std::uint8_t> bytes(count);
  if (RAND_bytes(bytes.data(), static_cast<int>(count)) != 1) {
    std::fputs("fatal: the system random generator failed\n", stderr);
    std::abort();
  }
  return bytes;
}

// Random bytes for time-ordered ids (the studio's job ids), drawn from RAND_bytes 4 KiB at a time
// per thread: one RAND_bytes call per job id cost ~3 % of the studio's loop thread. Secrets
// (random_hex) and random_uuid still come straight from RAND_bytes. A fork() copies the buffer, so
// a child would repeat its parent's ids: the buffer is refilled when the fork generation it was
// drawn in has changed.
std::atomic<unsigned> g_fork_generation{0};

void fill_random_for_id(std::uint8_t* out, std::size_t count) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1); });
    return true;
  }();
  (void)registered;
  struct Buffer {
    std::array<std::uint8_t, 4096> bytes{};
    std::size_t used = 4096;
    unsigned generation = 0;
  };
  thread_local Buffer buffer;
  const unsigned generation = g_fork_generation.load(std::memory_order_relaxed);
  if (buffer.used + count > buffer.bytes.size() || buffer.generation != generation) {
    if (RAND_bytes(buffer.bytes.data(), static_cast<int>(buffer.bytes.size())) != 1) {
      std::fputs("fatal: the system random generator failed\n", stderr);
      std::abort();
    }
    buffer.used = 0;
    buffer.generation = generation;
  }
  std::memcpy(out, buffer.bytes.data() + buffer.used, count);
  std::memset(buffer.bytes.data() + buffer.used, 0, count);  // each byte is handed out once
  buffer.used += count;
}

std::vector<std::uint8_t> random_id_bytes(std::size_t count) {
  std::vector<std::uint8_t> bytes(count);
  fill_random_for_id(bytes.data(), count);
  return bytes;
}

}  // namespace

std::string random_hex(std::size_t bytes) {
  return to_hex(random_bytes(bytes));
}

std::string random_uuid() {
  auto bytes = random_bytes(16);
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);
  const std::string hex = to_hex(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string time_ordered_uuid() {
  auto bytes = random_id_bytes(16);
  const auto millis =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  for (int i = 0; i < 6; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(millis >> (8 * (5 - i)));
  }
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x70);
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);
  const std::string hex = to_hex(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace sw
