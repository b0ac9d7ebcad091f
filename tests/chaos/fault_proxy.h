#pragma once
// A TCP proxy on 127.0.0.1 that breaks connections on purpose, between workers and their studio.
// Every accepted connection draws one fate from a seeded generator:
//
//   pass      forwarded untouched;
//   delay     every chunk, both ways, held back 5–150 ms (order kept);
//   drop      after 20–1500 ms both sides are closed with a FIN, mid-stream;
//   reset     after 20–1500 ms both sides are reset (SO_LINGER 0: an RST, as a crashed router);
//   silence   after 20–1500 ms nothing more is forwarded either way and nothing is closed: a
//             half-open connection that only the peers' own timeouts can detect.
//
// Faults can be switched off (the settle phase). Counters say what was injected. Its io_context
// runs on its own thread; the public functions are thread-safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace sw::testing {

struct FaultMix {
  // Weights of each fate (need not sum to anything).
  int pass = 40;
  int delay = 25;
  int drop = 15;
  int reset = 10;
  int silence = 10;
};

class FaultProxy {
 public:
  enum Fate { Pass, Delay, Drop, Reset, Silence, kFates };
  static constexpr std::array<const char*, kFates> kFateNames = {"pass", "delay", "drop", "reset",
                                                                 "silence"};

  FaultProxy(std::uint16_t target_port, std::uint64_t seed, FaultMix mix = {});
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::uint16_t port() const;
  // Off: every new connection passes untouched (existing ones keep their fate).
  void set_faults(bool on);
  // Connections that met each fate so far.
  std::array<std::uint64_t, kFates> counts() const;
  std::string describe() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sw::testing
