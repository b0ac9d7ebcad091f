#include "worker/job_gate.h"

#include <fmt/format.h>

namespace sw::worker {

namespace {

std::string jobs_word(std::size_t n) {
  return fmt::format("{} job{}", n, n == 1 ? "" : "s");
}

}  // namespace

struct JobGate::State {
  struct Slot {
    std::string job_id;
    std::optional<double> need_gib;  // set once admitted
  };
  std::mutex mutex;
  std::size_t max_jobs = 1;
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, Slot> slots;
  std::function<void()> on_change;
};

JobGate::JobGate(std::size_t max_jobs) : state_(std::make_shared<State>()) {
  state_->max_jobs = max_jobs == 0 ? 1 : max_jobs;
}

JobGate::~JobGate() {
  std::lock_guard lock(state_->mutex);
  state_->on_change = nullptr;
}

tl::expected<JobGate::Ticket, std::string> JobGate::try_acquire(std::string job_id,
                                                                std::size_t limit) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock(state_->mutex);
    const std::size_t cap = std::min(state_->max_jobs, limit);
    if (state_->slots.size() >= cap) {
      // One slot: the reference's words, which studios and operators already know.
      if (cap == 1) return tl::unexpected(std::string("worker already has an in-flight job"));
      return tl::unexpected(fmt::format("worker already runs {} (max_concurrent_jobs = {})",
                                        jobs_word(state_->slots.size()), state_->max_jobs));
    }
    // The same job offered again while it runs here (the studio's run limit requeued it; this
    // run's result is still to come): a second run would only race the first.
    for (const auto& [held_id, slot] : state_->slots) {
      if (slot.job_id == job_id) {
        return tl::unexpected(fmt::format("worker already runs job {}", job_id));
      }
    }
    id = ++state_->next_id;
    state_->slots.emplace(id, State::Slot{std::move(job_id), std::nullopt});
  }
  changed(*state_);
  return Ticket(state_, id);
}

std::optional<std::string> JobGate::admit(const Ticket& ticket, double need_gib,
                                          const std::optional<Memory>& memory) {
  std::optional<std::string> refusal;
  {
    std::lock_guard lock(state_->mutex);
    auto self = state_->slots.find(ticket.id_);
    if (ticket.state_ != state_ || self == state_->slots.end())
      return "job admission ticket was released";
    std::size_t running = 0;
    double held = 0;
    for (const auto& [id, slot] : state_->slots) {
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
  if (!refusal) changed(*state_);
  return refusal;
}

std::size_t JobGate::max_jobs() const {
  std::lock_guard lock(state_->mutex);
  return state_->max_jobs;
}

void JobGate::set_max_jobs(std::size_t max_jobs) {
  {
    std::lock_guard lock(state_->mutex);
    state_->max_jobs = max_jobs == 0 ? 1 : max_jobs;
  }
  changed(*state_);
}

std::size_t JobGate::held() const {
  std::lock_guard lock(state_->mutex);
  return state_->slots.size();
}

std::size_t JobGate::room() const {
  std::lock_guard lock(state_->mutex);
  return state_->slots.size() >= state_->max_jobs ? 0 : state_->max_jobs - state_->slots.size();
}

std::vector<std::string> JobGate::holders() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& [id, slot] : state_->slots) out.push_back(slot.job_id);
  return out;
}

void JobGate::set_on_change(std::function<void()> on_change) {
  std::lock_guard lock(state_->mutex);
  state_->on_change = std::move(on_change);
}

void JobGate::release(State& state, std::uint64_t id) {
  {
    std::lock_guard lock(state.mutex);
    state.slots.erase(id);
  }
  changed(state);
}

void JobGate::changed(State& state) {
  std::function<void()> notify;
  {
    std::lock_guard lock(state.mutex);
    notify = state.on_change;
  }
  if (notify) notify();
}

}  // namespace sw::worker
