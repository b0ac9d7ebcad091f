#pragma once
// The studio's single database writer (house style: one SQLite writer thread). Operations queue
// up and then run together in one transaction, each inside its own savepoint (StudioStore's batch
// control: BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL), so that thousands of small writes per
// second cost a few commits. An operation's completion runs on the loop thread only after the
// batch has committed: nothing is acknowledged before it is committed (SQLite: WAL,
// synchronous=NORMAL: safe from a process crash; a power cut may lose the last commits).
//
// Group commit: the ops the loop thread submits in one turn (the handlers it has ready, e.g. the
// frames of one epoll wake-up) form one batch. The first op of a batch posts a release to the loop
// executor; the database thread starts the batch when the release has run, i.e. once the loop has
// worked through the handlers queued before it. When the loop is idle this costs one hand-off;
// under load a batch carries the many ops of a busy turn, and the commit (on SQLite: the WAL frames
// of every page it changed, written once however many ops changed the page) is shared among them.
// A batch takes at most kMaxBatchOps ops, so that no completion waits behind an endless one.
//
// A lost PostgreSQL connection (the server restarted, the network failed) fails the batch that
// meets it: every op in it is answered Unavailable, nothing of it committed. Before the next
// batch the worker reconnects, waiting 100 ms, then twice as long after each failed attempt (at
// most 2 s) while ops queue up; each attempt is logged `db.reconnect`. Callers treat Unavailable
// as "not written, try again": the row stays the truth.
//
// Thread-safe: call() from any thread; completions are posted to the loop executor. A batch
// starts only through the loop (the release), so the loop must be running; stop() runs whatever
// is queued without it.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/error.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

class DbWorker {
 public:
  DbWorker(std::unique_ptr<store::StudioStore> store, boost::asio::any_io_executor loop);
  ~DbWorker();
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // Runs `op` on the database thread; `done` gets its result on the loop thread after commit,
  // or the commit's error. An op that returns an error is rolled back to its savepoint alone.
  template <class T>
  void call(std::function<Result<T>(store::StudioStore&)> op, std::function<void(Result<T>)> done) {
    auto slot = std::make_shared<std::optional<Result<T>>>();
    submit(Op{[op = std::move(op), slot](store::StudioStore& s) {
                *slot = op(s);
                return slot->value().has_value();
              },
              [done = std::move(done), slot](const std::optional<Error>& commit_error) {
                if (commit_error) {
                  done(fail(*commit_error));
                } else {
                  done(std::move(slot->value()));
                }
              }});
  }

  // Runs everything queued so far, then stops the thread. Later calls are answered with an
  // Unavailable error.
  void stop();
  std::uint64_t batches() const;

  static constexpr std::size_t kMaxBatchOps = 512;

 private:
  struct Op {
    std::function<bool(store::StudioStore&)> execute;  // false: roll back this op
    std::function<void(const std::optional<Error>&)> complete;
  };
  // What the submitting threads, the database thread and the release posted to the loop share
  // (the release may run after the DbWorker is gone). All fields guarded by `mutex`.
  struct Queue {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<Op> pending;
    bool released = false;        // a release ran since the database thread last took ops
    bool release_posted = false;  // a release is on its way through the loop
    bool stopping = false;
    std::uint64_t batches = 0;  // counted for the db.stopped line
    std::uint64_t ops = 0;
  };
  void submit(Op op);
  void run();
  void run_batch(std::vector<Op>& batch);
  // Reconnects a lost store before a batch, after the backoff; the error when it cannot.
  std::optional<Error> recover();

  std::unique_ptr<store::StudioStore> store_;
  boost::asio::any_io_executor loop_;
  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  // Reconnection (database thread only): the wait before the next attempt and its count.
  std::chrono::milliseconds backoff_{0};
  int reconnect_attempts_ = 0;
  std::thread thread_;
};

}  // namespace sw::studio
