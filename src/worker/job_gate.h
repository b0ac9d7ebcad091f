#pragma once
// Job admission shared by studio offers and local API generation (issue 19; reference-worker.md
// §3.3 step 4, §6.1): several jobs may hold a ticket at once, up to `max_concurrent_jobs`, each
// admitted against memory so that two jobs cannot OOM each other. A job that does not fit is
// refused at once (`busy`, or 503 on the local API) with a reason naming the numbers, never
// queued.
//
//   try_acquire(job) ──slot──► admit(need, memory) ──► runs ──► Ticket destroyed: slot free
//        │ all slots held              │ does not fit
//        ▼                             ▼
//   "worker already runs 2 jobs     "needs 6.1 GiB, 2.3 GiB free on GPU 0 with 2 jobs running
//    (max_concurrent_jobs = 2)"      (they hold 8.0 GiB)"
//
// Memory rule (GiB = 2^30 bytes): the first job is admitted by the engine alone
// (engines::Engine::admission_refusal, as before this gate allowed more than one). A further job
// needs `need_gib` ≤ free − Σ(need of the jobs already admitted), where free is the device's free
// memory read now (the GPU when one is probed, else RAM's MemAvailable). A running job's need
// is subtracted even once its model is loaded and the reading already shows it: an
// over-estimate costs throughput, an under-estimate an OOM, so the rule errs on the first side.
// Without a reading only one job runs.
//
// Default cap 1 (WorkerConfig::max_concurrent_jobs): a need is an estimate (GGUF header, model
// file sizes, the studio's vramGbEstimate) until the model's runner has run here and its
// footprint was measured, so running two jobs is the operator's choice on a box they know holds
// both; with 2 or more the memory rule above decides.
//
// A Ticket frees its slot when destroyed, whatever path the job took, even after the gate is gone.
// Thread-safe; `on_change` is called (without the lock held, on the thread that changed it) after
// every acquire, admit and release.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

namespace sw::worker {

class JobGate {
 public:
  // A reading of the memory jobs run in.
  struct Memory {
    double free_gib = 0;
    std::string where;  // "GPU 0", "RAM": named in refusals
  };

  struct State;

  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        release();
        state_ = std::move(other.state_);
        id_ = other.id_;
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release() {
      if (state_) JobGate::release(*std::exchange(state_, nullptr), id_);
    }

   private:
    friend class JobGate;
    Ticket(std::shared_ptr<State> state, std::uint64_t id) : state_(std::move(state)), id_(id) {}
    // Shared with the gate: a ticket destroyed after its gate (a job frame torn down with the
    // event loop at shutdown) frees a slot in memory that is still alive and notifies no one.
    std::shared_ptr<State> state_;
    std::uint64_t id_;
  };

  explicit JobGate(std::size_t max_jobs = 1);
  // Later releases of outstanding tickets no longer call `on_change`.
  ~JobGate();
  JobGate(const JobGate&) = delete;
  JobGate& operator=(const JobGate&) = delete;

  // A slot for `job_id`, or why not (every slot held, or `job_id` already holds one: a studio
  // whose run limit requeued the job offers it again while it still runs here). `limit` lowers
  // the cap for this call: a
  // studio that cannot take several jobs at once (no "capacity" feature) passes 1.
  tl::expected<Ticket, std::string> try_acquire(std::string job_id,
                                                std::size_t limit = static_cast<std::size_t>(-1));
  // Admits the ticket's job needing `need_gib` (0: nothing known, fits) by the memory rule above;
  // nullopt when admitted, else the refusal. Admitting twice replaces the need.
  std::optional<std::string> admit(const Ticket& ticket, double need_gib,
                                   const std::optional<Memory>& memory);

  std::size_t max_jobs() const;
  void set_max_jobs(std::size_t max_jobs);
  bool busy() const { return held() > 0; }
  std::size_t held() const;
  // Slots left now (max − held), whatever memory says.
  std::size_t room() const;
  // Job ids holding a slot, in the order they acquired it.
  std::vector<std::string> holders() const;
  void set_on_change(std::function<void()> on_change);

 private:
  static void release(State& state, std::uint64_t id);
  static void changed(State& state);

  std::shared_ptr<State> state_;
};

// Shared so that a ticket can travel with a job to a worker thread.
using SharedTicket = std::shared_ptr<JobGate::Ticket>;

}  // namespace sw::worker
