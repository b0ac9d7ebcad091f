#include "studio/jobs/job_book.h"

#include <algorithm>

#include <fmt/format.h>

namespace sw::studio::jobs {

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::Queued: return "queued";
    case Phase::Claiming: return "claiming";
    case Phase::Offered: return "offered";
    case Phase::Running: return "running";
    case Phase::Detached: return "detached";
    case Phase::Finishing: return "finishing";
  }
  return "unknown";
}

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::Take: return "take";
    case Verdict::Repeat: return "repeat";
    case Verdict::Drop: return "drop";
    case Verdict::Busy: return "busy";
    case Verdict::NotYours: return "not_yours";
    case Verdict::AskStore: return "ask_store";
  }
  return "unknown";
}

Standing standing(const ActiveView& job, std::string_view worker_id) {
  const bool held = !job.holder.empty() && job.holder == worker_id;
  const bool formerly = job.record->formerly_held_by(worker_id);
  switch (job.phase) {
    case Phase::Claiming:
    case Phase::Finishing: return held || formerly ? Standing::Busy : Standing::Unknown;
    case Phase::Offered:
    case Phase::Running:
    case Phase::Detached:
      if (held) {
        return Standing::Holder;
      }
      break;
    case Phase::Queued: break;
  }
  return formerly ? Standing::Former : Standing::Unknown;
}

ActiveCompletion judge_active(const ActiveView* job, std::string_view worker_id) {
  if (job == nullptr) {
    return {Verdict::AskStore, false};
  }
  switch (standing(*job, worker_id)) {
    case Standing::Holder:
    case Standing::Former:
      if (job->cancelled) {
        // Cancelled by a client: it stays cancelled. The holder lets go of the job now.
        return {Verdict::Drop, job->holder == worker_id};
      }
      return {Verdict::Take, false};
    case Standing::Busy: return {Verdict::Busy, false};
    case Standing::Unknown: break;
  }
  // Active, and never this worker's.
  return {Verdict::NotYours, false};
}

bool held_by(const store::JobRecord& job, std::string_view worker_id) {
  return job.worker_id == worker_id || job.last_worker_id == worker_id ||
         job.formerly_held_by(worker_id);
}

Verdict judge_settled(const std::optional<store::JobRecord>& job, std::string_view worker_id,
                      bool same_result) {
  if (!job) {
    return Verdict::NotYours;
  }
  const bool had_it = held_by(*job, worker_id);
  switch (job->status) {
    case store::JobStatus::Queued:
    case store::JobStatus::Claimed:
      // Active in the database but not in memory: a race with a load or a release. Ask again.
      return had_it ? Verdict::Busy : Verdict::NotYours;
    case store::JobStatus::Done:
      if (job->worker_id == worker_id) {
        // Other bytes than it stored are not a repeat: that worker is confused.
        return same_result ? Verdict::Repeat : Verdict::NotYours;
      }
      return had_it ? Verdict::Drop : Verdict::NotYours;
    case store::JobStatus::Failed:
      // Issue 18: failing decided when to try elsewhere, not whose result counts.
      return had_it ? Verdict::Take : Verdict::NotYours;
    case store::JobStatus::Cancelled: return had_it ? Verdict::Drop : Verdict::NotYours;
  }
  return Verdict::NotYours;
}

Answer judge_accept(const ActiveView* job, bool from_holder_session) {
  if (job == nullptr || !from_holder_session) {
    return Answer::AskHeld;
  }
  switch (job->phase) {
    case Phase::Offered: return Answer::Start;
    case Phase::Running: return Answer::Repeat;
    default: return Answer::AskHeld;
  }
}

Answer judge_reject(const ActiveView* job, bool from_holder_session) {
  if (job == nullptr || !from_holder_session || job->phase != Phase::Offered) {
    return Answer::AskHeld;
  }
  return Answer::Release;
}

RejectOutcome judge_reject_outcome(bool busy, bool engine_missing, bool no_room_beside_others) {
  if (busy && no_room_beside_others) {
    return {
        .count_attempt = false, .hold_off_worker = false, .exclude_job = true, .until_room = true};
  }
  if (busy) {
    // busy / paused: not the job's fault. No attempt counted; this worker rests a moment.
    return {.count_attempt = false, .hold_off_worker = true, .exclude_job = false};
  }
  // This worker is not offered this job again for a while; others are. A worker without the
  // job's engine says routing chose wrong, not that the job is bad.
  return {.count_attempt = !engine_missing, .hold_off_worker = false, .exclude_job = true};
}

Cancel judge_cancel(const ActiveView* job) {
  if (job == nullptr || job->cancelled || job->phase == Phase::Finishing) {
    return Cancel::AskStore;
  }
  return job->phase == Phase::Queued ? Cancel::Unqueue : Cancel::MarkHeld;
}

RowVerdict judge_row(const ActiveView* job, const std::optional<store::JobRecord>& row,
                     std::string_view process_id) {
  const bool queued = row && row->status == store::JobStatus::Queued;
  if (job == nullptr) {
    return {queued ? RowChange::Mirror : RowChange::Nothing, {}};
  }
  // This process's own claim, release or completion is being stored: its answer settles the job.
  if (job->phase == Phase::Claiming || job->phase == Phase::Finishing) {
    return {};
  }
  if (job->phase == Phase::Queued) {
    return {queued ? RowChange::Nothing : RowChange::Forget, {}};
  }
  if (!row) {
    return {RowChange::GiveUp, "its row is gone", true};
  }
  switch (row->status) {
    case store::JobStatus::Claimed:
      if (row->process_id != process_id || row->worker_id != job->holder) {
        return {RowChange::GiveUp, "another studio process took the claim over"};
      }
      return {};
    case store::JobStatus::Cancelled:
      return {job->cancelled ? RowChange::Nothing : RowChange::CancelledElsewhere, {}};
    case store::JobStatus::Queued:
    case store::JobStatus::Done:
    case store::JobStatus::Failed:
      return {
          queued ? RowChange::GiveUpAndMirror : RowChange::GiveUp,
          "it is " + std::string(store::to_string(row->status)) + " through another studio process",
          row->status == store::JobStatus::Done};
  }
  return {};
}

ReleaseOutcome judge_release(const store::JobRecord& job, store::AttemptOutcome ending,
                             bool count_attempt, bool terminal) {
  const bool ran = job.accepted_at.has_value();
  const bool exhausted = terminal || (count_attempt && ran && job.attempts >= job.max_attempts);
  ReleaseOutcome outcome{exhausted, ending};
  if (exhausted && ending == store::AttemptOutcome::Requeued) {
    outcome.attempt = store::AttemptOutcome::Failed;  // this lapse used up the job's attempts
  }
  return outcome;
}

SteadyTime run_deadline(std::optional<SteadyTime> run_until, SteadyTime now,
                        std::chrono::milliseconds limit) {
  return run_until ? *run_until : now + limit;
}

std::chrono::milliseconds time_left(SteadyTime deadline, SteadyTime now) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
}

// ---- JobBook ----

ActiveJob* JobBook::find_mutable(const std::string& job_id) {
  const auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const ActiveJob* JobBook::find(const std::string& job_id) const {
  const auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::optional<ActiveJob> JobBook::erase(const std::string& job_id) {
  auto node = jobs_.extract(job_id);
  if (node.empty()) {
    return std::nullopt;
  }
  return std::move(node.mapped());
}

Standing JobBook::standing(const std::string& job_id, std::string_view worker_id) const {
  const auto* job = find(job_id);
  return job ? jobs::standing(job->view(), worker_id) : Standing::Unknown;
}

ActiveCompletion JobBook::judge_active(const std::string& job_id,
                                       std::string_view worker_id) const {
  const auto* job = find(job_id);
  if (!job) {
    return jobs::judge_active(nullptr, worker_id);
  }
  const auto view = job->view();
  return jobs::judge_active(&view, worker_id);
}

Answer JobBook::judge_accept(const std::string& job_id, std::uint64_t session) const {
  const auto* job = find(job_id);
  if (!job) {
    return jobs::judge_accept(nullptr, false);
  }
  const auto view = job->view();
  return jobs::judge_accept(&view, session != 0 && job->session == session);
}

Answer JobBook::judge_reject(const std::string& job_id, std::uint64_t session) const {
  const auto* job = find(job_id);
  if (!job) {
    return jobs::judge_reject(nullptr, false);
  }
  const auto view = job->view();
  return jobs::judge_reject(&view, session != 0 && job->session == session);
}

Cancel JobBook::judge_cancel(const std::string& job_id) const {
  const auto* job = find(job_id);
  if (!job) {
    return jobs::judge_cancel(nullptr);
  }
  const auto view = job->view();
  return jobs::judge_cancel(&view);
}

std::optional<bool> JobBook::held_by(const std::string& job_id, std::string_view worker_id) const {
  const auto* job = find(job_id);
  if (!job) {
    return std::nullopt;
  }
  return job->holder == worker_id || job->record.formerly_held_by(worker_id);
}

std::vector<std::string> JobBook::held_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, job] : jobs_) {
    if (job.phase == Phase::Offered || job.phase == Phase::Running ||
        job.phase == Phase::Detached) {
      ids.push_back(id);
    }
  }
  return ids;
}

std::vector<std::string> JobBook::detached_claims_of(std::string_view worker_id) const {
  std::vector<std::string> out;
  const auto indexed = detached_by_holder_.find(std::string(worker_id));
  if (indexed == detached_by_holder_.end()) return out;
  auto& ids = indexed->second;
  for (auto it = ids.begin(); it != ids.end();) {
    const auto* job = find(*it);
    if (job && job->phase == Phase::Detached && job->holder == worker_id) {
      out.push_back(*it);
      ++it;
    } else {
      it = ids.erase(it);  // it left Detached (or the book) since
    }
  }
  if (ids.empty()) detached_by_holder_.erase(indexed);
  return out;
}

void JobBook::index_detached(const std::string& job_id, const ActiveJob& job) {
  detached_by_holder_[job.holder].insert(job_id);
}

const Deadline* JobBook::deadline_due(const std::string& job_id, std::uint64_t generation) const {
  const auto* job = find(job_id);
  if (!job || !job->deadline || job->deadline->generation != generation ||
      (job->phase != Phase::Offered && job->phase != Phase::Running &&
       job->phase != Phase::Detached)) {
    return nullptr;
  }
  return &*job->deadline;
}

Effects JobBook::arm(ActiveJob& job, SteadyTime at, std::string reason) {
  job.deadline = Deadline{.at = at, .reason = std::move(reason), .generation = ++next_generation_};
  return {effect::ArmDeadline{job.record.id, at, job.deadline->generation}};
}

Effects JobBook::enqueue(ActiveJob job, SteadyTime now) {
  Effects out;
  if (job.deadline) {
    out.emplace_back(effect::CancelDeadline{job.record.id});
  }
  job.phase = Phase::Queued;
  job.holder.clear();
  job.session = 0;
  job.deadline.reset();
  job.run_until.reset();
  job.enqueued_at = now;
  std::string id = job.record.id;
  out.emplace_back(effect::Enqueue{id});
  jobs_.insert_or_assign(std::move(id), std::move(job));
  return out;
}

Effects JobBook::restore_claimed(ActiveJob job, SteadyTime now, std::chrono::milliseconds grace,
                                 std::string_view why) {
  job.holder = job.record.worker_id.value_or("");
  job.session = 0;
  job.phase = Phase::Running;  // detach() leaves from a held phase
  std::string id = job.record.id;
  jobs_.insert_or_assign(id, std::move(job));
  return detach(id, now, grace, why);
}

void JobBook::begin_claim(const std::string& job_id, std::string holder, std::uint64_t session) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Queued) {
    return;
  }
  job->phase = Phase::Claiming;
  job->holder = std::move(holder);
  job->session = session;
}

void JobBook::claim_stored(const std::string& job_id, std::int64_t unix_now) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Claiming) {
    return;
  }
  job->record.status = store::JobStatus::Claimed;
  job->record.worker_id = job->holder;
  job->record.last_worker_id = job->holder;
  job->record.claimed_at = unix_now;
  job->record.accepted_at.reset();
}

void JobBook::claim_refused_late(const std::string& job_id) {
  if (auto* job = find_mutable(job_id); job && job->phase != Phase::Claiming) {
    job->claim_refused = true;
  }
}

Effects JobBook::requeue_unclaimed(const std::string& job_id, SteadyTime now) {
  auto job = erase(job_id);
  if (!job || job->cancelled) {
    return job && job->deadline ? Effects{effect::CancelDeadline{job_id}} : Effects{};
  }
  job->claim_refused = false;
  return enqueue(std::move(*job), now);
}

void JobBook::fail_reported(const std::string& job_id, std::int64_t unix_now) {
  auto* job = find_mutable(job_id);
  if (!job || job->record.accepted_at ||
      (job->phase != Phase::Offered && job->phase != Phase::Running &&
       job->phase != Phase::Detached)) {
    return;
  }
  ++job->record.attempts;
  job->record.accepted_at = unix_now;
}

Effects JobBook::offer(const std::string& job_id, SteadyTime now,
                       std::chrono::milliseconds offer_timeout) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Claiming) {
    return {};
  }
  job->phase = Phase::Offered;
  Effects out{effect::SendOffer{job_id, job->session}};
  auto armed = arm(*job, now + offer_timeout,
                   fmt::format("offer not answered within {} ms", offer_timeout.count()));
  out.insert(out.end(), armed.begin(), armed.end());
  out.emplace_back(effect::Publish{job->record});
  return out;
}

Effects JobBook::accept(const std::string& job_id, SteadyTime now, std::int64_t unix_now,
                        std::chrono::milliseconds run_limit) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Offered) {
    return {};
  }
  job->phase = Phase::Running;
  job->record.accepted_at = unix_now;
  ++job->record.attempts;  // a run started (issue 17); the database counts it in mark_accepted
  job->run_until = run_deadline(std::nullopt, now, run_limit);
  return arm(*job, *job->run_until,
             fmt::format("no result within the run limit of {} s",
                         std::chrono::duration_cast<std::chrono::seconds>(run_limit).count()));
}

Effects JobBook::detach(const std::string& job_id, SteadyTime now, std::chrono::milliseconds grace,
                        std::string_view why) {
  auto* job = find_mutable(job_id);
  if (!job || (job->phase != Phase::Offered && job->phase != Phase::Running)) {
    return {};
  }
  job->phase = Phase::Detached;
  job->session = 0;
  index_detached(job_id, *job);
  return arm(*job, now + grace,
             fmt::format("{} while worker {} held the job, and it did not return within {} ms", why,
                         job->holder, grace.count()));
}

Effects JobBook::returned_without(const std::string& job_id, SteadyTime now,
                                  std::chrono::milliseconds grace) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Detached ||
      (job->deadline && job->deadline->at <= now + grace)) {
    return {};
  }
  return arm(*job, now + grace,
             fmt::format("worker {} came back without the job (it restarted or lost it) and "
                         "delivered no result within {} ms",
                         job->holder, grace.count()));
}

Effects JobBook::reattach(const std::string& job_id, std::uint64_t session, SteadyTime now,
                          std::chrono::milliseconds run_limit) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Detached) {
    return {};
  }
  job->phase = Phase::Running;
  job->session = session;
  job->run_until = run_deadline(job->run_until, now, run_limit);
  return arm(*job, *job->run_until,
             fmt::format("no result within the run limit of {} s",
                         std::chrono::duration_cast<std::chrono::seconds>(run_limit).count()));
}

JobBook::Held JobBook::hold(const std::string& job_id) {
  auto* job = find_mutable(job_id);
  if (!job) {
    return {};
  }
  Held held{.previous = job->phase, .effects = {}};
  job->phase = Phase::Finishing;
  // The deadline's value is kept (resume arms it again); only its timer stops.
  held.effects.emplace_back(effect::CancelDeadline{job_id});
  return held;
}

Effects JobBook::resume(const std::string& job_id, Phase previous, SteadyTime now) {
  auto* job = find_mutable(job_id);
  if (!job || job->phase != Phase::Finishing) {
    return {};
  }
  if (previous == Phase::Queued) {
    auto taken = erase(job_id);
    return enqueue(std::move(*taken), now);
  }
  job->phase = previous;
  if (previous == Phase::Detached) index_detached(job_id, *job);
  if (!job->deadline) {
    return {};
  }
  // Armed again with the time it had left (a fresh generation: the old timer was cancelled).
  const auto at = std::max(job->deadline->at, now);
  return arm(*job, at, job->deadline->reason);
}

Effects JobBook::let_go(const std::string& job_id) {
  auto* job = find_mutable(job_id);
  if (!job) {
    return {};
  }
  Effects out;
  if (job->deadline) {
    out.emplace_back(effect::CancelDeadline{job_id});
  }
  job->deadline.reset();
  job->session = 0;
  job->phase = Phase::Finishing;
  return out;
}

Effects JobBook::release_stored(const std::string& job_id, int attempts, const std::string& error,
                                bool failed, std::int64_t unix_now, SteadyTime now) {
  auto* job = find_mutable(job_id);
  if (!job) {
    return {};
  }
  auto& record = job->record;
  record.former_workers += job->holder + ",";
  record.attempts = attempts;
  record.error = error;
  record.worker_id.reset();
  record.claimed_at.reset();
  record.accepted_at.reset();
  Effects out;
  if (failed) {
    record.status = store::JobStatus::Failed;
    record.finished_at = unix_now;
    out.emplace_back(effect::Publish{record});
    jobs_.erase(job_id);
    return out;
  }
  record.status = store::JobStatus::Queued;
  out.emplace_back(effect::Publish{record});
  auto requeued = erase(job_id);
  auto queued = enqueue(std::move(*requeued), now);
  out.insert(out.end(), std::make_move_iterator(queued.begin()),
             std::make_move_iterator(queued.end()));
  return out;
}

Effects JobBook::completion_stored(const std::string& job_id, const std::string& worker_id,
                                   std::int64_t unix_now) {
  auto* job = find_mutable(job_id);
  if (!job) {
    return {};
  }
  auto& record = job->record;
  record.status = store::JobStatus::Done;
  record.attempts = std::max(record.attempts, 1);  // as stored
  record.worker_id = worker_id;
  record.last_worker_id = worker_id;
  record.finished_at = unix_now;
  Effects out{effect::Publish{record}};
  if (job->deadline) {
    out.emplace_back(effect::CancelDeadline{job_id});
  }
  jobs_.erase(job_id);
  return out;
}

void JobBook::mark_cancelled(const std::string& job_id) {
  if (auto* job = find_mutable(job_id)) {
    job->cancelled = true;
  }
}

void JobBook::cancel_stored(const std::string& job_id) {
  auto* job = find_mutable(job_id);
  if (!job) {
    return;
  }
  if (job->phase == Phase::Queued) {
    jobs_.erase(job_id);
    return;
  }
  job->record.status = store::JobStatus::Cancelled;
}

Effects JobBook::cancel_failed(const std::string& job_id) {
  auto* job = find_mutable(job_id);
  if (!job || !job->cancelled) {
    return {};
  }
  job->cancelled = false;
  if (job->phase == Phase::Queued) {
    return {effect::Enqueue{job_id}};
  }
  return {};
}

}  // namespace sw::studio::jobs
