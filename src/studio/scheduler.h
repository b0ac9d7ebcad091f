#pragma once
// Matching of queued jobs to idle workers (studio-server.md "Scheduling rules"), as pure in-memory
// logic with no I/O, so every rule is unit-testable with made-up times.
//
//   eligible worker: welcomed, autoEnabled, holds fewer jobs than its slots (one, or for a
//                    worker with the "capacity" feature what it announced: set_slots), not held
//                    off (after a busy/paused
//                    reject), lists the job's kind in taskKinds, serves the job's engine (below),
//                    vramThresholdGb ≥ the job's estimate, fetches studio uploads (feature
//                    "uploads") when the job's input is one, and userPresence "idle" when
//                    onlyWhenIdle;
//   engine:          the worker's supportedModelsPerKind[kind] (reference §1.5) names the model's
//                    `source.engine` as `<engine>:*` (`llama-cpp:*`) or bare (the synthetic
//                    engine lists `synthetic`), or names the model id itself. A worker that sends
//                    no per-kind lists at all (older reference versions) is judged by kind and
//                    VRAM alone, as before (issue 14);
//   job order:       higher priority first, then older (insertion sequence);
//   worker choice:   the one that most recently completed the same model, then the earliest
//                    connected.
//
// Loop-thread only; owned by the Studio.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/types.h"

namespace sw::studio {

using SteadyTime = std::chrono::steady_clock::time_point;

struct QueuedJob {
  std::string id;
  std::int64_t seq = 0;
  int priority = 0;
  proto::TaskKind kind = proto::TaskKind::Image;
  double vram_gb_estimate = 0;
  std::string model;
  std::string engine;  // the model's `source.engine` (`llama-cpp`, `synthetic`, …)
  // An input of its task is a studio upload (issue 20): only a worker whose hello announced the
  // "uploads" feature can fetch it.
  bool needs_uploads = false;
};

// Why a queued job is not offered, for operators (the job view and /metrics). Checked in this
// order over the connected (welcomed) workers; the first that applies is the reason.
enum class WaitClass {
  NoWorker,   // no worker connected
  NoKind,     // none lists the job's kind in taskKinds             (detail: the kind)
  NoEngine,   // none of those serves the job's engine or model id  (detail: the engine)
  NoVram,     // none of those has vramThresholdGb ≥ the estimate   (detail: the estimate, GB)
  NoUploads,  // the job's input is a studio upload and none of those fetches uploads
  Busy,       // every eligible one is busy, paused, held off, or declined this job lately
  Pending,    // an eligible worker is free: the offer is on its way (a passing state)
};
// no_worker, no_kind, no_engine, no_vram, no_uploads, busy, pending: the `reason` label of the
// gauge.
std::string_view to_string(WaitClass reason);

struct Waiting {
  WaitClass reason = WaitClass::NoWorker;
  std::string detail;
  // The sentence: `waiting: no connected worker has engine llama-cpp`,
  // `waiting: no connected worker has ≥ 12.5 GB free`, `waiting: all eligible workers busy or
  // paused`, …
  std::string text;
};

struct Assignment {
  std::string job_id;
  std::string worker_id;
};

class Scheduler {
 public:
  // ---- jobs ----
  void enqueue(QueuedJob job);
  // False when the job was not queued.
  bool remove(const std::string& job_id);
  bool is_queued(const std::string& job_id) const { return queued_.contains(job_id); }
  std::size_t queued() const { return queued_.size(); }
  std::map<proto::TaskKind, std::size_t> queued_per_kind() const;

  // ---- workers (welcomed sessions) ----
  void upsert_worker(const std::string& worker_id, std::uint64_t connected_order,
                     const proto::WorkerCapabilities& capabilities);
  void remove_worker(const std::string& worker_id);
  bool has_worker(const std::string& worker_id) const { return workers_.contains(worker_id); }
  // Jobs the worker's session holds (offered or running). set_busy(true) is set_held(1).
  void set_held(const std::string& worker_id, std::size_t held);
  void set_busy(const std::string& worker_id, bool busy) { set_held(worker_id, busy ? 1 : 0); }
  // Jobs the worker can hold at once (feature "capacity": those it holds plus the room it
  // announced; 1 for every other worker, the default). 0: none now.
  void set_slots(const std::string& worker_id, std::size_t slots);
  // Whether the worker fetches studio uploads (its hello announced "uploads"; false until said).
  void set_fetches_uploads(const std::string& worker_id, bool fetches);
  // No offers to this worker before `until` (it answered busy or paused).
  void hold_off(const std::string& worker_id, SteadyTime until);
  // This job is not offered to this worker again before `until` (it refused the job), or with
  // `until_room` before room_freed() either (it had no room for the job beside its others).
  void exclude(const std::string& worker_id, const std::string& job_id, SteadyTime until,
               bool until_room = false);
  // One of the worker's jobs (`ended`) left it: the jobs it had no room for may be offered again.
  void room_freed(const std::string& worker_id, const std::string& ended);
  void record_completion(const std::string& worker_id, const std::string& model);
  std::size_t idle_workers(SteadyTime now) const;

  // True when the worker's per-kind lists let it serve `job` (the engine rule above); true for
  // a worker that advertises no per-kind lists.
  static bool serves(const proto::WorkerCapabilities& capabilities, const QueuedJob& job);

  // Why a queued job waits; nullopt when it is not queued. Costs O(workers): computed on demand
  // (a job view, a scrape), never while dispatching.
  std::optional<Waiting> waiting(const std::string& job_id, SteadyTime now) const;
  // Queued jobs per (reason, detail): the /metrics gauge. Jobs that share kind, engine, model and
  // estimate share the verdict, so a long queue costs one pass per distinct shape.
  std::map<std::pair<WaitClass, std::string>, std::size_t> waiting_counts(SteadyTime now) const;

  // Pairs idle eligible workers with queued jobs by the rules above. Assigned jobs leave the
  // queue and their workers become busy. Scans at most `scan_limit` queued jobs.
  std::vector<Assignment> assign(SteadyTime now, std::size_t scan_limit = 4096);
  // The best job for one worker that just reported itself idle (a heartbeat's self-heal): scans
  // only the queues of the kinds it serves, so a backlog it cannot take costs it nothing.
  std::optional<Assignment> assign_worker(const std::string& worker_id, SteadyTime now,
                                          std::size_t scan_limit = 256);

 private:
  struct Key {
    int neg_priority;
    std::int64_t seq;
    std::string id;
    auto operator<=>(const Key&) const = default;
  };
  struct WorkerState {
    std::uint64_t connected_order = 0;
    proto::WorkerCapabilities capabilities;
    std::size_t held = 0;   // jobs its session holds
    std::size_t slots = 1;  // jobs it can hold at once
    bool fetches_uploads = false;
    bool busy() const { return held >= slots; }
    SteadyTime held_until{};
    std::string last_model;
    std::map<std::string, SteadyTime> excluded;
    std::set<std::string> excluded_until_room;  // a subset of `excluded`
  };
  bool available(const WorkerState& worker, SteadyTime now) const;
  static bool can_take(const WorkerState& worker, const QueuedJob& job, SteadyTime now);
  // What the workers that fit a job's shape (kind, engine, VRAM) are doing.
  struct Occupancy {
    bool busy = false;
    bool paused = false;
    bool held_off = false;
    std::vector<const WorkerState*> free;  // available now (they may have declined the job)
  };
  // The reason when no connected worker fits the job's shape; nullopt with `occupancy` filled
  // when some do.
  std::optional<Waiting> unfit(const QueuedJob& job, SteadyTime now, Occupancy& occupancy) const;
  // The verdict for one job whose shape fits: pending, or every fitting worker occupied.
  static Waiting occupied(const QueuedJob& job, SteadyTime now, const Occupancy& occupancy);

  std::set<Key> order_;
  std::map<proto::TaskKind, std::set<Key>> by_kind_;  // the same keys, per kind
  std::unordered_map<std::string, QueuedJob> queued_;
  std::unordered_map<std::string, WorkerState> workers_;
};

}  // namespace sw::studio
