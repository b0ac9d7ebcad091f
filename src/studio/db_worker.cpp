#include "studio/db_worker.h"

#include <boost/asio/post.hpp>

#include "common/log.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::db");
  return instance;
}

}  // namespace

DbWorker::DbWorker(std::unique_ptr<store::StudioStore> store, boost::asio::any_io_executor loop)
    : store_(std::move(store)), loop_(std::move(loop)), thread_([this] { run(); }) {}

DbWorker::~DbWorker() {
  stop();
}

void DbWorker::submit(Op op) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(std::move(op));
      wake_.notify_one();
      return;
    }
  }
  boost::asio::post(loop_, [complete = std::move(op.complete)] {
    complete(Error::unavailable("the studio is shutting down"));
  });
}

void DbWorker::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard lock(mutex_);
  // Ops per batch is what the batching buys: each batch is one commit.
  logger().info("db.stopped", {{"batches", batches_}, {"ops", ops_}});
}

std::uint64_t DbWorker::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

void DbWorker::run() {
  std::vector<Op> batch;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (pending_.empty() && stopping_) {
        return;
      }
      batch.swap(pending_);
      ++batches_;
      ops_ += batch.size();
    }
    run_batch(batch);
    batch.clear();
  }
}

Status DbWorker::Statements::prepare(store::Db& db) {
  auto make = [&db](std::optional<store::Stmt>& slot, std::string_view sql) -> Status {
    if (!slot) {
      auto stmt = db.prepare(sql);
      if (!stmt) {
        return fail(std::move(stmt).error());
      }
      slot.emplace(std::move(*stmt));
    }
    return {};
  };
  SW_TRY(make(begin, "BEGIN IMMEDIATE"));
  SW_TRY(make(commit, "COMMIT"));
  SW_TRY(make(rollback, "ROLLBACK"));
  SW_TRY(make(savepoint, "SAVEPOINT op"));
  SW_TRY(make(release, "RELEASE op"));
  SW_TRY(make(rollback_to, "ROLLBACK TO op"));
  return {};
}

namespace {
// Steps a cached transaction-control statement and rewinds it for the next batch.
Status step_once(store::Stmt& stmt) {
  auto ran = stmt.run();
  stmt.reset();
  return ran;
}
}  // namespace

void DbWorker::run_batch(std::vector<Op>& batch) {
  std::optional<Error> batch_error;
  if (auto prepared = statements_.prepare(store_->db()); !prepared) {
    batch_error = prepared.error();
  } else if (auto begun = step_once(*statements_.begin); !begun) {
    batch_error = begun.error();
  } else {
    for (auto& op : batch) {
      (void)step_once(*statements_.savepoint);
      if (!op.execute(*store_)) {
        (void)step_once(*statements_.rollback_to);
      }
      (void)step_once(*statements_.release);
    }
    if (auto committed = step_once(*statements_.commit); !committed) {
      batch_error = committed.error();
      (void)step_once(*statements_.rollback);
    }
  }
  if (batch_error) {
    logger().error("db.batch_failed", {{"ops", batch.size()}, {"error", batch_error->message}});
  }
  // One hand-over per batch: the loop runs the completions in order, after the commit.
  std::vector<std::function<void(const std::optional<Error>&)>> completions;
  completions.reserve(batch.size());
  for (auto& op : batch) {
    completions.push_back(std::move(op.complete));
  }
  boost::asio::post(loop_, [completions = std::move(completions), batch_error] {
    for (const auto& complete : completions) {
      complete(batch_error);
    }
  });
}

}  // namespace sw::studio
