#pragma once
// The studio's single database writer (house style: one SQLite writer thread). Operations queue
// up while a batch runs and then run together in one BEGIN IMMEDIATE transaction, each inside its
// own savepoint, so that thousands of small writes per second cost a few commits. An operation's
// completion runs on the loop thread only after the batch has committed: nothing is acknowledged
// before it is committed (WAL, synchronous=NORMAL: safe from a process crash; a power cut may
// lose the last commits).
//
// Thread-safe: call() from any thread; completions are posted to the loop executor.

#include <boost/asio/any_io_executor.hpp>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/error.h"
#include "store/studio_store.h"

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

 private:
  struct Op {
    std::function<bool(store::StudioStore&)> execute;  // false: roll back this op
    std::function<void(const std::optional<Error>&)> complete;
  };
  void submit(Op op);
  void run();
  void run_batch(std::vector<Op>& batch);

  // The transaction-control statements, prepared once on the database thread: a batch of N ops
  // runs 2N + 2 of them, and sqlite3_exec parsed each one anew (a profile showed the parser).
  struct Statements {
    std::optional<store::Stmt> begin, commit, rollback, savepoint, release, rollback_to;
    Status prepare(store::Db& db);
  };

  std::unique_ptr<store::StudioStore> store_;
  boost::asio::any_io_executor loop_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Op> pending_;    // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_
  std::uint64_t batches_ = 0;  // guarded by mutex_
  std::uint64_t ops_ = 0;      // guarded by mutex_
  Statements statements_;      // database thread only
  std::thread thread_;
};

}  // namespace sw::studio
