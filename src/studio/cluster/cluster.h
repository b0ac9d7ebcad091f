#pragma once
// Several studio processes on one PostgreSQL database (issue 18). Each process holds its own
// worker sessions; this component keeps it in step with the others. The database is the truth;
// LISTEN/NOTIFY only wakes a process sooner than its polls would.
//
//   lease      the process's row in studio_processes, renewed every 2 s (lease 10 s), its times
//              read from PostgreSQL's clock (StudioStore::shared_clock), so that hosts whose
//              clocks disagree compare leases alike. A row found gone (another process took us
//              for dead) is registered again and every job we hold is re-read: those no longer
//              ours are given up.
//   adoption   every 2 s, the process that wins the advisory lock takes the claims of processes
//              whose lease ended and holds them like claims of a studio restart (detached for the
//              claim grace: the holder's worker that comes back reattaches, else the job is
//              requeued).
//   mirror     every queued job, whichever process queued it, is in this process's book so that
//              its idle workers get it: from NOTIFY sw_jobs and a 1 s poll queued_after(cursor),
//              with a full rescan every 10 s (a sequence value taken earlier may commit later than
//              one already seen). A claim that fails because another process claimed first is
//              normal here: the job leaves the mirror.
//   held jobs  a notification about a job we hold makes us re-read its row: cancelled elsewhere →
//              marked cancelled (its worker's result is acknowledged and dropped); done, failed,
//              requeued or claimed by another process → given up (slot freed, timer stopped).
//   take-over  a worker whose heartbeat reports a job it runs that this process does not hold
//              moves the claim here (UPDATE … WHERE worker_id = it), and the former owner gives it
//              up when notified.
//   caches     worker tokens, API keys, models and the admin token are reloaded on NOTIFY sw_cache
//              and every 5 s; a hello whose worker misses the cache reads the row.
//   events     published SSE chunks are sent as NOTIFY sw_events "<process id>\n<chunks>" (chunks
//              packed up to 7,800 bytes; a larger one is not relayed) and other processes write
//              them to their own streams.
//   polls      NOTIFY sw_requests "<request id>" wakes registration polls held open here.
//
// Threading: loop-thread only (like Studio, which owns it); database work goes through the
// studio's DbWorker. The listening connection is its own (pg::Listener), reconnected on the
// database thread when lost.

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "studio/store/studio_store.h"

namespace sw::sql::pg {
class Connection;
class Listener;
struct Notification;
}  // namespace sw::sql::pg

namespace sw::studio {
class Studio;
class WorkerSession;
}  // namespace sw::studio

namespace sw::studio::cluster {

using namespace std::chrono_literals;

struct Timing {
  std::chrono::milliseconds lease = 10s;         // a process silent this long is taken for dead
  std::chrono::milliseconds renew_every = 2s;    // lease renewal and adoption sweep
  std::chrono::milliseconds poll_every = 1s;     // queued_after poll
  std::chrono::milliseconds rescan_every = 10s;  // full rescan of the queue
  std::chrono::milliseconds reload_every = 5s;   // caches
};

// "sp-<uuid>": a new process id.
std::string new_process_id();
// The row a starting process registers (lease from `now`).
store::ProcessRecord process_record(const std::string& id, std::int64_t now, const Timing& timing);

class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  // Opens the listening connection to `uri` and LISTENs on the channels (blocking: call before
  // the loop runs). The process row must already be registered through the studio's store.
  static Result<std::shared_ptr<Cluster>> create(std::weak_ptr<Studio> studio, std::string uri,
                                                 std::string process_id, Timing timing = {});
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const std::string& process_id() const { return process_id_; }

  // Starts the timers and the listener.
  void start();
  // Stops them and queues the removal of the process row (so survivors adopt our claims at
  // once); the studio then stops its DbWorker, which commits it.
  void stop();

  // ---- hooks the studio calls ----
  // An SSE chunk ("event: …\ndata: …\n\n") published here: relayed to the other processes.
  void relay_event(const std::string& chunk);
  // The worker of `session` reports running `job_id`, which this process does not hold.
  void take_over(const std::shared_ptr<WorkerSession>& session, const std::string& job_id);

 private:
  Cluster(std::weak_ptr<Studio> studio, std::shared_ptr<sql::pg::Connection> conn, std::string uri,
          std::string process_id, Timing timing);
  void listen();
  void reconnect_listener();
  void on_notifications(std::vector<sql::pg::Notification> notes);
  void every(boost::asio::steady_timer& timer, std::chrono::milliseconds period,
             void (Cluster::*tick)());
  void renew_and_adopt();
  void poll_queue();
  void reload_caches();
  void read_jobs();
  void flush_events();
  // The job's row says what became of it: the book follows.
  void apply_row(const std::string& job_id, const std::optional<store::JobRecord>& row);
  void mirror(store::JobRecord record);
  // Lets go of a job this process holds; `stop_holder`: its worker is told to stop the work.
  void give_up(const std::string& job_id, std::string_view why, bool stop_holder = false);
  void verify_held();

  std::weak_ptr<Studio> studio_;
  std::shared_ptr<sql::pg::Connection> conn_;  // the listening connection
  std::unique_ptr<sql::pg::Listener> listener_;
  std::string uri_;
  std::string process_id_;
  Timing timing_;
  boost::asio::steady_timer lease_timer_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer reload_timer_;
  boost::asio::steady_timer retry_timer_;
  bool stopped_ = false;
  bool listening_ = false;
  std::int64_t cursor_ = 0;  // the highest queue_seq seen by the poll
  std::chrono::steady_clock::time_point next_rescan_{};
  bool poll_running_ = false;
  bool reload_running_ = false;
  bool reload_again_ = false;
  std::set<std::string> jobs_to_read_;  // notified job ids not yet re-read
  bool read_scheduled_ = false;
  std::set<std::string> taking_over_;  // take-overs in flight
  std::string events_out_;             // chunks waiting to be relayed
  bool events_scheduled_ = false;
};

}  // namespace sw::studio::cluster
