#pragma once
// The one-GPU job gate shared by studio offers and local API generation (reference-worker.md §3.3
// step 4, §6.1): at most one job holds it; the others are refused at once (`busy`), never queued,
// so that two jobs cannot OOM each other. A Ticket releases the gate when destroyed, whatever
// path the job took. Thread-safe.

#include <atomic>
#include <memory>
#include <optional>

namespace sw::worker {

class JobGate {
 public:
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        release();
        gate_ = std::exchange(other.gate_, nullptr);
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release() {
      if (gate_ != nullptr) std::exchange(gate_, nullptr)->busy_.store(false);
    }

   private:
    friend class JobGate;
    explicit Ticket(JobGate* gate) : gate_(gate) {}
    JobGate* gate_;
  };

  // A ticket, or nullopt when another job holds the gate.
  std::optional<Ticket> try_acquire() {
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true)) return std::nullopt;
    return Ticket(this);
  }
  bool busy() const { return busy_.load(); }

 private:
  std::atomic<bool> busy_{false};
};

// Shared so that a ticket can travel with a job to a worker thread.
using SharedTicket = std::shared_ptr<JobGate::Ticket>;

}  // namespace sw::worker
