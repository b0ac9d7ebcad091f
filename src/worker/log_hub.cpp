#include "worker/log_hub.h"

#include "common/clock.h"

namespace sw::worker {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::breadcrumb");
  return instance;
}

std::string level_name(log::Level level) {
  switch (level) {
    case log::Level::Warn:
      return "warn";
    case log::Level::Error:
      return "error";
    default:
      return "info";
  }
}

}  // namespace

LogHub::LogHub(std::size_t ring_capacity, std::size_t ship_queue_cap)
    : ring_capacity_(ring_capacity), ship_queue_cap_(ship_queue_cap) {}

void LogHub::ship(log::Level level, std::string category, std::string message,
                  std::optional<std::string> job_id) {
  add(level, std::move(category), std::move(message), std::move(job_id), true);
}

void LogHub::local(log::Level level, std::string category, std::string message,
                   std::optional<std::string> job_id) {
  add(level, std::move(category), std::move(message), std::move(job_id), false);
}

void LogHub::add(log::Level level, std::string category, std::string message,
                 std::optional<std::string> job_id, bool to_studio) {
  if (logger().enabled(level)) {
    logger().log(level, category, {{"message", message}, {"job_id", job_id.value_or("")}});
  }
  proto::LogEntry entry{format_rfc3339_millis(unix_millis_now()), level_name(level),
                        std::move(category), std::move(message), std::move(job_id)};
  std::lock_guard lock(mu_);
  if (to_studio) {
    ship_queue_.push_back(entry);
    while (ship_queue_.size() > ship_queue_cap_) {
      ship_queue_.pop_front();
      ++dropped_;
    }
  }
  ring_.emplace_back(++seq_, std::move(entry));
  while (ring_.size() > ring_capacity_) ring_.pop_front();
}

LogHub::Page LogHub::after(std::uint64_t after) const {
  std::lock_guard lock(mu_);
  Page page;
  page.seq = seq_;
  const std::uint64_t from = after > seq_ ? 0 : after;
  for (const auto& [seq, entry] : ring_) {
    if (seq > from) page.entries.push_back(entry);
  }
  return page;
}

std::vector<proto::LogEntry> LogHub::take_batch(std::size_t max) {
  std::lock_guard lock(mu_);
  std::vector<proto::LogEntry> batch;
  if (dropped_ > 0) {
    batch.push_back(proto::LogEntry{
        format_rfc3339_millis(unix_millis_now()), "warn", "logs",
        fmt::format("ship queue full ({} entries); dropped {} oldest", ship_queue_cap_, dropped_),
        std::nullopt});
    dropped_ = 0;
  }
  while (!ship_queue_.empty() && batch.size() < max) {
    batch.push_back(std::move(ship_queue_.front()));
    ship_queue_.pop_front();
  }
  return batch;
}

void LogHub::requeue_front(std::vector<proto::LogEntry> batch) {
  std::lock_guard lock(mu_);
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
    ship_queue_.push_front(std::move(*it));
  }
  while (ship_queue_.size() > ship_queue_cap_) {
    ship_queue_.pop_front();
    ++dropped_;
  }
}

std::size_t LogHub::queued() const {
  std::lock_guard lock(mu_);
  return ship_queue_.size();
}

}  // namespace sw::worker
