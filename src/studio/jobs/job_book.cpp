#include "studio/jobs/job_book.h"

#include <algorithm>

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

RejectOutcome judge_reject_outcome(bool busy, bool engine_missing) {
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

}  // namespace sw::studio::jobs
