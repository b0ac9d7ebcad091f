#include "studio/scheduler.h"

#include <algorithm>

namespace sw::studio {

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

void Scheduler::set_busy(const std::string& worker_id, bool busy) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.busy = busy;
  }
}

void Scheduler::hold_off(const std::string& worker_id, SteadyTime until) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.held_until = until;
  }
}

void Scheduler::exclude(const std::string& worker_id, const std::string& job_id, SteadyTime until) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.excluded[job_id] = until;
  }
}

void Scheduler::record_completion(const std::string& worker_id, const std::string& model) {
  if (auto it = workers_.find(worker_id); it != workers_.end()) {
    it->second.last_model = model;
  }
}

bool Scheduler::available(const WorkerState& worker, SteadyTime now) const {
  const auto& caps = worker.capabilities;
  if (worker.busy || !caps.auto_enabled || now < worker.held_until) {
    return false;
  }
  if (caps.only_when_idle && caps.user_presence != proto::UserPresence::Idle) {
    return false;
  }
  return true;
}

bool Scheduler::can_take(const WorkerState& worker, const QueuedJob& job, SteadyTime now) {
  const auto& caps = worker.capabilities;
  if (std::find(caps.task_kinds.begin(), caps.task_kinds.end(), job.kind) ==
      caps.task_kinds.end()) {
    return false;
  }
  if (caps.vram_threshold_gb < job.vram_gb_estimate) {
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
      std::erase_if(worker.excluded, [&](const auto& e) { return e.second <= now; });
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
    idle[best].second->busy = true;
    idle.erase(idle.begin() + static_cast<std::ptrdiff_t>(best));
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
  worker->second.busy = true;
  return Assignment{best->id, worker_id};
}

}  // namespace sw::studio
