#pragma once
// The verdicts of a job's life in the studio, in one place: who stands how towards a job, what a
// completion, a late result or a repeat does, how a released job goes on, and when its deadlines
// fall. Pure: no sockets, timers or database; the caller passes what it knows (the job's phase and
// row, the time) and carries out what comes back. The worker protocol (sessions.cpp) and the
// result upload (api/worker_routes.cpp) ask here; neither decides on its own.
//
//   job:  queued ──claim──▶ claimed(offered) ──accept (attempts+1)──▶ claimed(running) ──▶ done
//           ▲                   │ reject / offer timeout / run limit / fail     ▲
//           └── requeue ────────┘  (a run ended at maxAttempts, or fail{retryable:false}: failed)
//           ▲                                                                   │
//           └─ grace over ── claimed(detached) ◀── session gone / studio restart │
//                              │  holder's heartbeat reports the job ──▶ running │
//                              └─ holder's result ───────────────────────────────┘
//         queued|claimed ──cancel──▶ cancelled (a running worker's result is accepted, dropped)
//         failed ──the first result of a worker that held it (issue 18)──▶ done
//   `attempts` counts runs started (accepted offers), nothing else (issue 17). In memory an active
//   job also passes through Claiming (the claim is being stored) and Finishing (a release or a
//   completion is being stored): frames about it then wait (Busy).
//
//   Completion rule (issue 18): the first valid result from any worker that held the job wins.
//   The holder's result is taken; a former holder's result is taken while the job is not over
//   (the newer claim is withdrawn) and also after the job failed (its run limit, a lapse or a
//   fail decided when to try elsewhere, not whose result counts). A job cancelled by a client
//   stays cancelled; a result for a job already done by another is acknowledged and dropped; the
//   same result again from the worker that completed the job is a repeat, acknowledged again.
//   A withdrawn claim's accept is ignored and its own result acknowledged and dropped.
//
// Thread-safety: stateless functions over values; call from any thread. Today the studio's loop
// thread holds the active jobs (Studio::ActiveJob) and their timers, and calls these.
// TODO(h18): own the active jobs' phases and return effects (offer, arm deadline, persist,
// publish) instead of verdicts, so that Studio only executes them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "store/studio_store.h"

namespace sw::studio::jobs {

// An active job's phase (a job queued or claimed in the database, held in memory).
enum class Phase {
  Queued,     // waiting in the scheduler
  Claiming,   // the claim is being stored; the offer goes out once it is
  Offered,    // the holder has the offer and has not answered
  Running,    // the holder accepted: the run limit runs
  Detached,   // the holder's session is gone: the claim waits the grace for it to come back
  Finishing,  // a release or a completion is being stored
};
std::string_view to_string(Phase phase);

// What the book needs to know of an active job.
struct ActiveView {
  Phase phase = Phase::Queued;
  std::string_view holder;  // empty while queued
  bool cancelled = false;   // cancelled by a client while held (the row says cancelled)
  const store::JobRecord* record = nullptr;  // never null
};

// How a worker that sends a completion (or a fail) stands towards an active job.
enum class Standing {
  Holder,   // holds the claim (any of its sessions)
  Former,   // its claim lapsed; the job is not over: a late result is taken
  Busy,     // the job is being claimed, released or completed: come back later
  Unknown,  // not an active job of this worker: the database row decides
};
Standing standing(const ActiveView& job, std::string_view worker_id);

// What to do with a result delivered for a job.
enum class Verdict {
  Take,      // store it: the job becomes done with this result
  Repeat,    // this worker's result is already stored: acknowledge again, change nothing
  Drop,      // acknowledge and drop it (cancelled, or done by another worker first)
  Busy,      // no answer now: the job is moving; the worker delivers again shortly
  NotYours,  // never this worker's job (or other bytes than it stored): a protocol error
  AskStore,  // not active: judge the stored row (judge_settled)
};
std::string_view to_string(Verdict verdict);

struct ActiveCompletion {
  Verdict verdict = Verdict::AskStore;
  // The holder delivered for a cancelled job: it lets go of the job now (release it).
  bool release_holder = false;
};
// A result from `worker_id` for an active job (nullptr when the job is not active).
ActiveCompletion judge_active(const ActiveView* job, std::string_view worker_id);

// A result from `worker_id` for a job that is not active, from its stored row (nullopt: no such
// job). `same_result` says whether the delivered result equals the one stored (asked only for a
// job done by this worker; pass true to judge before the bytes are in). Take means the row may be
// completed (store::StudioStore::complete_job_* checks the same rule again in its statement).
Verdict judge_settled(const std::optional<store::JobRecord>& job, std::string_view worker_id,
                      bool same_result);

// True when `worker_id` holds, held or last held the job (the row's view).
bool held_by(const store::JobRecord& job, std::string_view worker_id);

// What an answer to an offer (accept, reject) does. `from_holder_session`: it came over the
// session that holds the job (a newer session of the same worker does not answer an old offer).
enum class Answer {
  Start,    // accept: the run starts (attempts+1, run limit armed)
  Release,  // reject: the job is let go (judge_reject says how)
  Repeat,   // a repeated accept: nothing changes
  AskHeld,  // not the holder's offer: a worker that once held the job is ignored (its claim
            // lapsed while the frame was in flight); any other breaks the protocol
};
Answer judge_accept(const ActiveView* job, bool from_holder_session);
Answer judge_reject(const ActiveView* job, bool from_holder_session);

// How a reject lets go of an offer. `busy`: the worker answered busy or paused (a code);
// `engine_missing`: the worker does not have the job's engine (routing chose wrong).
struct RejectOutcome {
  bool count_attempt = false;    // the refusal may use up the job (never: no run started)
  bool hold_off_worker = false;  // the worker gets no offers for a while (busy, paused)
  bool exclude_job = false;      // the worker is not offered this job for a while
};
RejectOutcome judge_reject_outcome(bool busy, bool engine_missing);

// What a client's cancel does to a job.
enum class Cancel {
  Unqueue,   // queued: out of the queue; over once the row says cancelled
  MarkHeld,  // held: the row says cancelled; the holder's result is dropped when it comes
  AskStore,  // not active (or being settled): the row answers (cancelling twice is harmless)
};
Cancel judge_cancel(const ActiveView* job);

// How a held job goes on when its holder lets go of it (reject, fail, offer timeout, run limit,
// lost session, grace over).
struct ReleaseOutcome {
  bool fail = false;                // the job is over: failed
  store::AttemptOutcome attempt{};  // how the holder's attempt ends
};
// `count_attempt`: this end uses up a run (not a busy reject, an unanswered offer or the
// operator's removal); `terminal`: fail{retryable:false}. A run that ended without a result uses
// up the job when it was the last allowed (attempts counts runs started, at the accept); an offer
// that never started never does.
ReleaseOutcome judge_release(const store::JobRecord& job, store::AttemptOutcome ending,
                             bool count_attempt, bool terminal);

// The run limit's end: kept from `run_until` when the job already had one (a reattach keeps it),
// else `now + limit`.
SteadyTime run_deadline(std::optional<SteadyTime> run_until, SteadyTime now,
                        std::chrono::milliseconds limit);
// Time left until `deadline`, never negative.
std::chrono::milliseconds time_left(SteadyTime deadline, SteadyTime now);

}  // namespace sw::studio::jobs
