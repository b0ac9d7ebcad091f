#pragma once
// A sliding-window rate limit per key (the source IP of register-requests). Loop-thread only.

#include <chrono>
#include <deque>
#include <string>
#include <unordered_map>

namespace sw::studio {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(int limit, std::chrono::seconds window) : limit_(limit), window_(window) {}

  // Records an attempt at `now`; false when `key` already made `limit` attempts in the window.
  bool allow(const std::string& key, Clock::time_point now) {
    if (seen_.size() > 10'000) {
      prune(now);
    }
    auto& times = seen_[key];
    while (!times.empty() && now - times.front() >= window_) {
      times.pop_front();
    }
    if (static_cast<int>(times.size()) >= limit_) {
      return false;
    }
    times.push_back(now);
    return true;
  }

 private:
  void prune(Clock::time_point now) {
    std::erase_if(seen_, [&](const auto& entry) {
      return entry.second.empty() || now - entry.second.back() >= window_;
    });
  }
  int limit_;
  std::chrono::seconds window_;
  std::unordered_map<std::string, std::deque<Clock::time_point>> seen_;
};

}  // namespace sw::studio
