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
// Thread-safety: the verdict functions are stateless (any thread). JobBook holds the active jobs
// and is not synchronised: the studio's loop thread owns it. It takes time as arguments and
// returns effects (send the offer, arm or cancel a deadline, publish, put in the queue) that the
// studio carries out; it touches no socket, timer or database.
// Only the book changes an active job: find() hands out read-only views, so the studio, the
// cluster and the routes change a job's phase or fields through the transitions below alone.

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "studio/scheduler.h"
#include "studio/store/studio_store.h"

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
// `engine_missing`: the worker does not have the job's engine (routing chose wrong);
// `no_room_beside_others`: a worker with the "capacity" feature answered `busy` while it runs
// other jobs, i.e. this job does not fit beside them (its memory): a smaller job may, so the
// worker is not rested, and this job waits for one of the others to end (issue 19).
struct RejectOutcome {
  bool count_attempt = false;    // the refusal may use up the job (never: no run started)
  bool hold_off_worker = false;  // the worker gets no offers for a while (busy, paused)
  bool exclude_job = false;      // the worker is not offered this job for a while
  bool until_room = false;       // ...or until one of its jobs ends, whichever comes first
};
RejectOutcome judge_reject_outcome(bool busy, bool engine_missing,
                                   bool no_room_beside_others = false);

// What a client's cancel does to a job.
enum class Cancel {
  Unqueue,   // queued: out of the queue; over once the row says cancelled
  MarkHeld,  // held: the row says cancelled; the holder's result is dropped when it comes
  AskStore,  // not active (or being settled): the row answers (cancelling twice is harmless)
};
Cancel judge_cancel(const ActiveView* job);

// What a process does with a job's row as another studio process may have left it (issue 18:
// several processes on one database). `job`: this process's active job (nullptr: not in its
// book); `row`: the row as read (nullopt: gone); `process_id`: this process's.
enum class RowChange {
  Nothing,             // the row agrees, or this process's own write in flight will settle it
  Mirror,              // not in the book and queued: this process offers it too
  Forget,              // queued here, no longer queued there (claimed, over or gone): drop it
  GiveUp,              // held here, but taken over by another process, or over, or gone: let go
  GiveUpAndMirror,     // held here, but queued again elsewhere: let go, then offer it as queued
  CancelledElsewhere,  // held here and cancelled through another process: as a cancel here
};
struct RowVerdict {
  RowChange change = RowChange::Nothing;
  std::string why;  // for GiveUp and GiveUpAndMirror: what the row says
  // For GiveUp: the holder's work is of no use any more (the job is done, or its row gone), so
  // it is told to stop. Not when the job failed (the holder's late result is still taken) or
  // another process took the claim over (the worker moved there).
  bool stop_holder = false;
};
RowVerdict judge_row(const ActiveView* job, const std::optional<store::JobRecord>& row,
                     std::string_view process_id);

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

// ---- the book: the active jobs, their phases and deadlines ----

// A deadline the book asked for (offer timeout, run limit or claim grace). The studio's timer
// reports `generation` back (JobBook::deadline_due): a timer armed for an older deadline of the
// same job, or for a job no longer active, changes nothing.
struct Deadline {
  SteadyTime at{};
  std::string reason;  // the error recorded when it fires
  std::uint64_t generation = 0;
};

// An active job: a job queued or claimed in the database, as the book holds it.
struct ActiveJob {
  store::JobRecord record;
  std::string offer_frame;  // the encoded offer, built once
  Phase phase = Phase::Queued;
  std::string holder;         // worker id unless queued
  std::uint64_t session = 0;  // the holder's session (its welcome order) while it has the job
  bool cancelled = false;     // cancelled by a client while active
  std::optional<Deadline> deadline;     // none while queued, claiming or finishing
  std::optional<SteadyTime> run_until;  // the run limit's end, kept through a detach
  SteadyTime enqueued_at{};
  std::string engine;  // the model source's engine, decoded once (routing, issue 14)
  // Its task names a studio upload as an input: only workers with feature "uploads" get it.
  bool needs_uploads = false;
  // The claim was refused (its worker's row was gone) after a release had started: that
  // release finds the row still queued and puts the job back in the queue instead of dropping it.
  bool claim_refused = false;

  ActiveView view() const {
    return ActiveView{.phase = phase, .holder = holder, .cancelled = cancelled, .record = &record};
  }
  QueuedJob queued() const {
    return QueuedJob{.id = record.id,
                     .seq = record.seq,
                     .priority = record.priority,
                     .kind = record.kind,
                     .vram_gb_estimate = record.vram_gb_estimate,
                     .model = record.model,
                     .engine = engine,
                     .needs_uploads = needs_uploads};
  }
};

// What the studio carries out for a transition, in order.
namespace effect {
struct Enqueue {  // give the job (now Queued) to the scheduler and dispatch
  std::string job_id;
};
struct SendOffer {  // send the job's offer_frame over the holder's session `session`
  std::string job_id;
  std::uint64_t session = 0;
};
struct ArmDeadline {  // (re)arm the job's one timer for `at`; it reports `generation`
  std::string job_id;
  SteadyTime at{};
  std::uint64_t generation = 0;
};
struct CancelDeadline {  // stop the job's timer, if any
  std::string job_id;
};
struct Publish {  // the job's row changed: tell event streams
  store::JobRecord record;
};
}  // namespace effect
using Effect = std::variant<effect::Enqueue, effect::SendOffer, effect::ArmDeadline,
                            effect::CancelDeadline, effect::Publish>;
using Effects = std::vector<Effect>;

// The active jobs by id. Transitions check the phase they start from; called from a phase they
// do not leave from, they change nothing and return no effects.
class JobBook {
 public:
  // Read-only on purpose: a job changes only through a transition.
  const ActiveJob* find(const std::string& job_id) const;
  std::size_t size() const { return jobs_.size(); }
  // Removes the job (it is over, or forgotten); returns it. The caller cancels its deadline.
  std::optional<ActiveJob> erase(const std::string& job_id);

  // ---- questions (the verdict functions over the held job; not active: as for nullptr) ----
  Standing standing(const std::string& job_id, std::string_view worker_id) const;
  ActiveCompletion judge_active(const std::string& job_id, std::string_view worker_id) const;
  // An accept or reject over session `session` (0: none).
  Answer judge_accept(const std::string& job_id, std::uint64_t session) const;
  Answer judge_reject(const std::string& job_id, std::uint64_t session) const;
  Cancel judge_cancel(const std::string& job_id) const;
  // True or false when the job is active: `worker_id` holds or once held it; nullopt when it is
  // not active (the row decides).
  std::optional<bool> held_by(const std::string& job_id, std::string_view worker_id) const;
  // Jobs held by a worker (offered, running or detached), e.g. to re-read their rows.
  std::vector<std::string> held_ids() const;
  // Claims of `worker_id` waiting out their grace (Detached). O(the worker's detached claims),
  // not O(active jobs): every returning session asks, and after a studio restart thousands
  // return at once.
  std::vector<std::string> detached_claims_of(std::string_view worker_id) const;
  // The deadline with `generation` is still the job's and the job waits on it (offered, running
  // or detached): it fires now. nullptr: stale, or the job is being settled.
  const Deadline* deadline_due(const std::string& job_id, std::uint64_t generation) const;

  // ---- transitions ----
  // any → Queued (a new job, a requeue, a claim given back): holder, session and deadlines go.
  Effects enqueue(ActiveJob job, SteadyTime now);
  // A claim of a studio's previous run (or, in a cluster, of a process that died): held by the
  // row's worker, Detached for `grace`. `why` starts the requeue reason if the worker stays away.
  Effects restore_claimed(ActiveJob job, SteadyTime now, std::chrono::milliseconds grace,
                          std::string_view why = "the studio restarted");
  // Queued → Claiming: the scheduler chose `holder` (session `session`); the claim is stored next.
  void begin_claim(const std::string& job_id, std::string holder, std::uint64_t session);
  // Claiming: the claim is stored; the held row says claimed by the holder at `unix_now`.
  void claim_stored(const std::string& job_id, std::int64_t unix_now);
  // The claim's store answered after the job left Claiming (a release of it began: its session
  // closed) and refused it (the worker's row was gone) or did not store it: the row is still
  // queued, so the release that finds it so requeues the job (requeue_unclaimed) instead of
  // taking it for lost. Nothing while Claiming (the answer settles the job itself).
  void claim_refused_late(const std::string& job_id);
  // The row says queued though the job left the queue here (its claim was refused or not
  // stored): back to the queue (Enqueue), or, when a client cancelled it meanwhile, over: it
  // leaves the book and nothing comes back.
  Effects requeue_unclaimed(const std::string& job_id, SteadyTime now);
  // Claiming → Offered: the offer goes out and the offer timeout starts.
  Effects offer(const std::string& job_id, SteadyTime now, std::chrono::milliseconds offer_timeout);
  // Offered → Running: the holder accepted; attempts+1 (a run started, issue 17), the run limit
  // starts from now.
  Effects accept(const std::string& job_id, SteadyTime now, std::int64_t unix_now,
                 std::chrono::milliseconds run_limit);
  // The holder reports a fail of an offer it never accepted: a run still started and ended
  // (attempts+1, accepted at `unix_now`), so a worker that fails at once uses the job's attempts
  // up instead of failing it for ever. Nothing once the run was accepted (counted then).
  void fail_reported(const std::string& job_id, std::int64_t unix_now);
  // Offered|Running → Detached: the holder's session is gone; the claim waits `grace`.
  Effects detach(const std::string& job_id, SteadyTime now, std::chrono::milliseconds grace,
                 std::string_view why);
  // Detached, holder back without it (its first heartbeat does not name the job): the claim
  // waits at most `grace` more, for a result from the holder's outbox. Nothing when it waits
  // less already, or the job is not detached.
  Effects returned_without(const std::string& job_id, SteadyTime now,
                           std::chrono::milliseconds grace);
  // Detached → Running: the holder is back over `session` and reports the job; the run limit
  // goes on from where it was (or starts, after a studio restart).
  Effects reattach(const std::string& job_id, std::uint64_t session, SteadyTime now,
                   std::chrono::milliseconds run_limit);
  // Any held phase → Finishing (a release or a completion is being stored): the deadline stops.
  // Returns the phase to go back to (resume) if storing fails.
  struct Held {
    Phase previous = Phase::Queued;
    Effects effects;
  };
  Held hold(const std::string& job_id);
  // Finishing → `previous`: storing failed; the deadline it had is armed again (a queued job
  // goes back to the queue).
  Effects resume(const std::string& job_id, Phase previous, SteadyTime now);
  // The holder lets go (release): session and deadline go, the job is Finishing.
  Effects let_go(const std::string& job_id);
  // The release after let_go() is stored: the holder becomes a former holder and the job is
  // requeued (Publish, then Queued and Enqueue) or, when `failed`, over (Publish; it leaves the
  // book). `attempts` and `error` are as stored.
  Effects release_stored(const std::string& job_id, int attempts, const std::string& error,
                         bool failed, std::int64_t unix_now, SteadyTime now);
  // A completion by `worker_id` (the holder or a former holder) is stored: the job is done
  // (Publish) and leaves the book.
  Effects completion_stored(const std::string& job_id, const std::string& worker_id,
                            std::int64_t unix_now);
  // A client cancels the job (judge_cancel said Unqueue or MarkHeld): from now on a result for it
  // is dropped, a release only clears its holder. The row is cancelled next (cancel_stored).
  void mark_cancelled(const std::string& job_id);
  // The row says cancelled: a queued job is over (erased); a held one stays until its holder
  // lets go, with the row's status.
  void cancel_stored(const std::string& job_id);
  // Storing the cancel failed: the job goes on as before (a queued one back to the queue).
  Effects cancel_failed(const std::string& job_id);

 private:
  ActiveJob* find_mutable(const std::string& job_id);
  Effects arm(ActiveJob& job, SteadyTime at, std::string reason);
  // The job enters Detached: indexed by its holder for detached_claims_of.
  void index_detached(const std::string& job_id, const ActiveJob& job);
  std::unordered_map<std::string, ActiveJob> jobs_;
  // Holder → ids of jobs that entered Detached under it. A superset: an id stays after its job
  // left Detached until detached_claims_of reads it (and checks the phase) or the job is erased;
  // hence mutable (the reader prunes).
  mutable std::unordered_map<std::string, std::set<std::string>> detached_by_holder_;
  std::uint64_t next_generation_ = 0;
};

}  // namespace sw::studio::jobs
