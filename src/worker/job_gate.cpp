#include "worker/job_gate.h"

#include <fmt/format.h>

namespace sw::worker {

namespace {

std::string jobs_word(std::size_t n) {
  return fmt::format("{} job{}", n, n == 1 ? "" : "s");
}

}  // namespace

tl::expected<JobGate::Ticket, std::string> JobGate::try_acquire(std::string job_id,
                                                                std::size_t limit) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    const std::size_t cap = std::min(max_jobs_, limit);
    if (slots_.size() >= cap) {
      // One slot: the reference's words, which studios and operators already know.
      if (cap == 1) return tl::unexpected(std::string("worker already has an in-flight job"));
      return tl::unexpected(fmt::format("worker already runs {} (max_concurrent_jobs = {})",
                                        jobs_word(slots_.size()), max_jobs_));
    }
    id = ++next_id_;
    slots_.emplace(id, Slot{std::move(job_id), std::nullopt});
  }
  changed();
  return Ticket(this, id);
}

std::optional<std::string> JobGate::admit(const Ticket& ticket, double need_gib,
                                          const std::optional<Memory>& memory) {
  std::optional<std::string> refusal;
  {
    std::lock_guard lock(mutex_);
    auto self = slots_.find(ticket.id_);
    if (ticket.gate_ != this || self == slots_.end()) return "job admission ticket was released";
    std::size_t running = 0;
    double held = 0;
    for (const auto& [id, slot] : slots_) {
      if (id == ticket.id_ || !slot.need_gib) continue;
      ++running;
      held += *slot.need_gib;
    }
    const double need = std::max(0.0, need_gib);
    if (running > 0) {
      if (!memory) {
        refusal = fmt::format("free memory cannot be read, so no job runs beside the {} running",
                              jobs_word(running));
      } else if (const double left = memory->free_gib - held; need > left) {
        refusal = fmt::format(
            "insufficient memory: needs {:.1f} GiB, {:.1f} GiB free on {} with {} running (they "
            "hold {:.1f} GiB)",
            need, std::max(0.0, left), memory->where, jobs_word(running), held);
      }
    }
    if (!refusal) self->second.need_gib = need;
  }
  if (!refusal) changed();
  return refusal;
}

std::size_t JobGate::max_jobs() const {
  std::lock_guard lock(mutex_);
  return max_jobs_;
}

void JobGate::set_max_jobs(std::size_t max_jobs) {
  {
    std::lock_guard lock(mutex_);
    max_jobs_ = max_jobs == 0 ? 1 : max_jobs;
  }
  changed();
}

std::size_t JobGate::held() const {
  std::lock_guard lock(mutex_);
  return slots_.size();
}

std::size_t JobGate::room() const {
  std::lock_guard lock(mutex_);
  return slots_.size() >= max_jobs_ ? 0 : max_jobs_ - slots_.size();
}

std::vector<std::string> JobGate::holders() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, slot] : slots_) out.push_back(slot.job_id);
  return out;
}

void JobGate::set_on_change(std::function<void()> on_change) {
  std::lock_guard lock(mutex_);
  on_change_ = std::move(on_change);
}

void JobGate::release(std::uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    slots_.erase(id);
  }
  changed();
}

void JobGate::changed() {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    notify = on_change_;
  }
  if (notify) notify();
}

}  // namespace sw::worker
