#include "transfer/stream_hasher.h"

#include <algorithm>

namespace sw::transfer {

StreamHasher::StreamHasher() : worker_([this] { run(); }) {}

StreamHasher::~StreamHasher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void StreamHasher::update(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    std::vector<std::uint8_t> buffer;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return !free_.empty() || allocated_ < kMaxBuffers; });
      if (!free_.empty()) {
        buffer = std::move(free_.back());
        free_.pop_back();
      } else {
        ++allocated_;
        buffer.reserve(kBufferBytes);
      }
    }
    const std::size_t n = std::min(bytes.size(), kBufferBytes);
    buffer.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(buffer));
    }
    changed_.notify_all();
  }
}

Sha256Digest StreamHasher::finish() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
  return hasher_.finish();  // the worker is idle: safe to touch the hasher
}

void StreamHasher::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ with nothing left
    std::vector<std::uint8_t> buffer = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    hasher_.update(buffer);
    lock.lock();
    busy_ = false;
    buffer.clear();
    free_.push_back(std::move(buffer));
    changed_.notify_all();
  }
}

}  // namespace sw::transfer
