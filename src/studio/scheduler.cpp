#include "studio/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace sw::studio {
namespace {

bool lists_kind(const proto::WorkerCapabilities& caps, proto::TaskKind kind) {
  return std::find(caps.task_kinds.begin(), caps.task_kinds.end(), kind) != caps.task_kinds.end();
}

// `llama-cpp:*` for engine `llama-cpp`, without building the string (this runs per pairing).
bool is_engine_wildcard(std::string_view entry, std::string_view engine) {
  return entry.size() == engine.size() + 2 && entry.starts_with(engine) && entry.ends_with(":*");
}

bool paused(const proto::WorkerCapabilities& caps) {
  return !caps.auto_enabled ||
         (caps.only_when_idle && caps.user_presence != proto::UserPresence::Idle);
}

}  // namespace

std::string_view to_string(WaitClass reason) {
  switch (reason) {
    case WaitClass::NoWorker: return "no_worker";
    case WaitClass::NoKind: return "no_kind";
    case WaitClass::NoEngine: return "no_engine";
    case WaitClass::NoVram: return "no_vram";
    case WaitClass::NoUploads: return "no_uploads";
    case WaitClass::Busy: return "busy";
    case WaitClass::Pending: return "pending";
  }
  return "busy";
}

void Scheduler::enqueue(QueuedJob job) {
  if (queued_.contains(job.id)) {
    return;
  }
  order_.insert(Key{-job.priority, job.seq, job.id});
  by_kind_[job.kind].insert(Key{-job.priority, job.seq, job.id});
  auto id = job.id;
  queued_.emplace(std::move(id), std::move(job));
}

bool Scheduler::remove(const std::string& job_id) {
  const auto it = queued_.find(job_id);
  if (it == queued_.end()) {
    return false;
  }
  const Key key{-it->second.priority, it->second.seq, job_id};
  order_.erase(key);
  by_kind_[it->second.kind].erase(key);
  queued_.erase(it);
  return true;
}

std::map<proto::TaskKind, std::size_t> Scheduler::queued_per_kind() const {
  std::map<proto::TaskKind, std::size_t> counts;
  for (auto kind : proto::kAllTaskKinds) {
    counts[kind] = 0;
  }
  for (const auto& [id, job] : queued_) {
    ++counts[job.kind];
  }
  return counts;
}

void Scheduler::upsert_worker(const std::string& worker_id, std::uint64_t connected_order,
                              const proto::WorkerCapabilities& capabilities) {
  auto& worker = workers_[worker_id];
  worker.connected_order = connected_order;
  worker.capabilities = capabilities;
}

void Scheduler::remove_worker(const std::string& worker_id) {
  workers_.erase(worker_id);
}

void Scheduler::set_held(const std::string& worker_id, std::size_t held) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.held = held;
  }
}

void Scheduler::set_slots(const std::string& worker_id, std::size_t slots) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.slots = slots;
  }
}

void Scheduler::set_fetches_uploads(const std::string& worker_id, bool fetches) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.fetches_uploads = fetches;
  }
}

void Scheduler::hold_off(const std::string& worker_id, SteadyTime until) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.held_until = until;
  }
}

void Scheduler::exclude(const std::string& worker_id, const std::string& job_id, SteadyTime until,
                        bool until_room) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.excluded[job_id] = until;
    if (until_room) {
      it->second.excluded_until_room.insert(job_id);
    } else {
      it->second.excluded_until_room.erase(job_id);
    }
  }
}

void Scheduler::room_freed(const std::string& worker_id, const std::string& ended) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  auto& worker = it->second;
  for (auto job = worker.excluded_until_room.begin(); job != worker.excluded_until_room.end();) {
    if (*job == ended) {
      ++job;  // the job that just left (e.g. the refused one itself) keeps its exclusion
      continue;
    }
    worker.excluded.erase(*job);
    job = worker.excluded_until_room.erase(job);
  }
}

void Scheduler::record_completion(const std::string& worker_id, const std::string& model) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.last_model = model;
  }
}

bool Scheduler::available(const WorkerState& worker, SteadyTime now) const {
  return !worker.busy() && now >= worker.held_until && !paused(worker.capabilities);
}

bool Scheduler::serves(const proto::WorkerCapabilities& caps, const QueuedJob& job) {
  if (caps.supported_models_per_kind.empty()) {
    return true;  // an older reference worker: kind and VRAM decide, as they always did
  }
  const auto list = caps.supported_models_per_kind.find(job.kind);
  if (list == caps.supported_models_per_kind.end()) {
    return false;  // a kind no engine of this worker serves is not listed (issue 14)
  }
  return std::any_of(list->second.begin(), list->second.end(), [&](const std::string& entry) {
    return entry == job.model ||
           (!job.engine.empty() && (entry == job.engine || is_engine_wildcard(entry, job.engine)));
  });
}

bool Scheduler::can_take(const WorkerState& worker, const QueuedJob& job, SteadyTime now) {
  const auto& caps = worker.capabilities;
  if (!lists_kind(caps, job.kind)) {
    return false;
  }
  if (caps.vram_threshold_gb < job.vram_gb_estimate) {
    return false;
  }
  if (job.needs_uploads && !worker.fetches_uploads) {
    return false;
  }
  if (!serves(caps, job)) {
    return false;
  }
  if (const auto it = worker.excluded.find(job.id);
      it != worker.excluded.end() && now < it->second) {
    return false;
  }
  return true;
}

std::size_t Scheduler::idle_workers(SteadyTime now) const {
  return static_cast<std::size_t>(std::count_if(
      workers_.begin(), workers_.end(), [&](const auto& w) { return available(w.second, now); }));
}

std::vector<Assignment> Scheduler::assign(SteadyTime now, std::size_t scan_limit) {
  std::vector<Assignment> assignments;
  if (order_.empty()) {
    return assignments;  // the common case with many idle heartbeating workers: no scan
  }
  std::vector<std::pair<const std::string*, WorkerState*>> idle;
  for (auto& [id, worker] : workers_) {
    if (available(worker, now)) {
      // Exclusions only matter until they expire; drop the stale ones as we pass.
      // (Through a named reference: a lambda may not capture a structured binding before C++20's
      // P1091, which clang 14, the fuzz build's compiler, lacks.)
      auto& until_room = worker.excluded_until_room;
      std::erase_if(worker.excluded, [&until_room, now](const auto& e) {
        if (e.second > now) return false;
        until_room.erase(e.first);
        return true;
      });
      idle.emplace_back(&id, &worker);
    }
  }
  if (idle.empty() || order_.empty()) {
    return assignments;
  }
  std::size_t scanned = 0;
  for (auto it = order_.begin(); it != order_.end() && !idle.empty() && scanned < scan_limit;
       ++scanned) {
    const QueuedJob& job = queued_.at(it->id);
    std::size_t best = idle.size();
    for (std::size_t i = 0; i < idle.size(); ++i) {
      const WorkerState& candidate = *idle[i].second;
      if (!can_take(candidate, job, now)) {
        continue;
      }
      if (best == idle.size()) {
        best = i;
        continue;
      }
      const WorkerState& incumbent = *idle[best].second;
      const bool candidate_warm = candidate.last_model == job.model;
      const bool incumbent_warm = incumbent.last_model == job.model;
      if (candidate_warm != incumbent_warm) {
        if (candidate_warm) {
          best = i;
        }
      } else if (candidate.connected_order < incumbent.connected_order) {
        best = i;
      }
    }
    if (best == idle.size()) {
      ++it;
      continue;
    }
    assignments.push_back(Assignment{job.id, *idle[best].first});
    // A worker with room for more stays a candidate for the next job.
    if (++idle[best].second->held >= idle[best].second->slots) {
      idle.erase(idle.begin() + static_cast<std::ptrdiff_t>(best));
    }
    by_kind_[job.kind].erase(*it);
    const std::string job_id = job.id;
    it = order_.erase(it);
    queued_.erase(job_id);
  }
  return assignments;
}

std::optional<Assignment> Scheduler::assign_worker(const std::string& worker_id, SteadyTime now,
                                                   std::size_t scan_limit) {
  const auto worker = workers_.find(worker_id);
  if (worker == workers_.end() || queued_.empty() || !available(worker->second, now)) {
    return std::nullopt;
  }
  std::optional<Key> best;
  for (const auto kind : worker->second.capabilities.task_kinds) {
    const auto queue = by_kind_.find(kind);
    if (queue == by_kind_.end()) {
      continue;
    }
    std::size_t scanned = 0;
    for (auto it = queue->second.begin(); it != queue->second.end() && scanned < scan_limit;
         ++it, ++scanned) {
      if (best && !(*it < *best)) {
        break;  // this kind's remaining jobs rank below the best found so far
      }
      if (can_take(worker->second, queued_.at(it->id), now)) {
        best = *it;
        break;
      }
    }
  }
  if (!best) {
    return std::nullopt;
  }
  const auto job = queued_.find(best->id);
  by_kind_[job->second.kind].erase(*best);
  order_.erase(*best);
  queued_.erase(job);
  ++worker->second.held;
  return Assignment{best->id, worker_id};
}

std::optional<Waiting> Scheduler::unfit(const QueuedJob& job, SteadyTime now,
                                        Occupancy& occupancy) const {
  if (workers_.empty()) {
    return Waiting{WaitClass::NoWorker, "", "waiting: no worker connected"};
  }
  bool kind = false;
  bool engine = false;
  bool vram = false;
  bool uploads = false;
  for (const auto& [id, worker] : workers_) {
    const auto& caps = worker.capabilities;
    if (!lists_kind(caps, job.kind)) {
      continue;
    }
    kind = true;
    if (!serves(caps, job)) {
      continue;
    }
    engine = true;
    if (caps.vram_threshold_gb < job.vram_gb_estimate) {
      continue;
    }
    vram = true;
    if (job.needs_uploads && !worker.fetches_uploads) {
      continue;
    }
    uploads = true;
    // Paused first: a paused worker announces no room (capacity.room 0), which reads as busy.
    if (paused(caps)) {
      occupancy.paused = true;
    } else if (worker.busy()) {
      occupancy.busy = true;
    } else if (now < worker.held_until) {
      occupancy.held_off = true;
    } else {
      occupancy.free.push_back(&worker);
    }
  }
  if (!kind) {
    const std::string name(proto::to_string(job.kind));
    return Waiting{WaitClass::NoKind, name, "waiting: no connected worker serves kind " + name};
  }
  if (!engine) {
    const std::string name = job.engine.empty() ? job.model : job.engine;
    return Waiting{WaitClass::NoEngine, name, "waiting: no connected worker has engine " + name};
  }
  if (!vram) {
    // fmt prints the shortest exact form: 24 → "24", 12.5 → "12.5".
    const std::string gb = fmt::format("{}", job.vram_gb_estimate);
    return Waiting{WaitClass::NoVram, gb, "waiting: no connected worker has ≥ " + gb + " GB free"};
  }
  if (!uploads) {
    return Waiting{WaitClass::NoUploads, "",
                   "waiting: no connected worker fetches studio uploads (feature \"uploads\")"};
  }
  return std::nullopt;
}

Waiting Scheduler::occupied(const QueuedJob& job, SteadyTime now, const Occupancy& occupancy) {
  bool declined = false;
  for (const auto* worker : occupancy.free) {
    const auto it = worker->excluded.find(job.id);
    if (it != worker->excluded.end() && now < it->second) {
      declined = true;
    } else {
      return Waiting{WaitClass::Pending, "", "waiting: an eligible worker is free; offer pending"};
    }
  }
  std::string states;
  for (const auto& [present, label] :
       {std::pair(occupancy.busy, "busy"), std::pair(occupancy.paused, "paused"),
        std::pair(occupancy.held_off, "held off"), std::pair(declined, "kept off this job")}) {
    if (present) {
      states.append(states.empty() ? "" : " or ").append(label);
    }
  }
  return Waiting{WaitClass::Busy, "", "waiting: all eligible workers " + states};
}

std::optional<Waiting> Scheduler::waiting(const std::string& job_id, SteadyTime now) const {
  const auto it = queued_.find(job_id);
  if (it == queued_.end()) {
    return std::nullopt;
  }
  Occupancy occupancy;
  if (auto reason = unfit(it->second, now, occupancy)) {
    return reason;
  }
  return occupied(it->second, now, occupancy);
}

std::map<std::pair<WaitClass, std::string>, std::size_t> Scheduler::waiting_counts(
    SteadyTime now) const {
  std::map<std::pair<WaitClass, std::string>, std::size_t> counts;
  // One verdict per shape; only the "kept off this job" part is per job.
  using Shape = std::tuple<proto::TaskKind, const std::string*, const std::string*, double, bool>;
  struct Verdict {
    std::optional<Waiting> unfit;
    Occupancy occupancy;
  };
  struct ShapeLess {
    bool operator()(const Shape& a, const Shape& b) const {
      return std::tie(std::get<0>(a), *std::get<1>(a), *std::get<2>(a), std::get<3>(a),
                      std::get<4>(a)) < std::tie(std::get<0>(b), *std::get<1>(b), *std::get<2>(b),
                                                 std::get<3>(b), std::get<4>(b));
    }
  };
  std::map<Shape, Verdict, ShapeLess> verdicts;
  for (const auto& [id, job] : queued_) {
    const Shape shape{job.kind, &job.engine, &job.model, job.vram_gb_estimate, job.needs_uploads};
    auto found = verdicts.find(shape);
    if (found == verdicts.end()) {
      Verdict verdict;
      verdict.unfit = unfit(job, now, verdict.occupancy);
      found = verdicts.emplace(shape, std::move(verdict)).first;
    }
    const auto& verdict = found->second;
    if (verdict.unfit) {
      ++counts[{verdict.unfit->reason, verdict.unfit->detail}];
    } else {
      ++counts[{occupied(job, now, verdict.occupancy).reason, ""}];
    }
  }
  return counts;
}

}  // namespace sw::studio
