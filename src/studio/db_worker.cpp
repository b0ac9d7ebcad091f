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
    }
    run_batch(batch);
    batch.clear();
  }
}

void DbWorker::run_batch(std::vector<Op>& batch) {
  auto& db = store_->db();
  std::optional<Error> batch_error;
  auto tx = store::Tx::begin(db);
  if (!tx) {
    batch_error = tx.error();
  } else {
    for (auto& op : batch) {
      (void)db.exec("SAVEPOINT op");
      if (op.execute(*store_)) {
        (void)db.exec("RELEASE op");
      } else {
        (void)db.exec("ROLLBACK TO op; RELEASE op");
      }
    }
    if (auto committed = tx->commit(); !committed) {
      batch_error = committed.error();
    }
  }
  if (batch_error) {
    logger().error("db.batch_failed", {{"ops", batch.size()}, {"error", batch_error->message}});
  }
  for (auto& op : batch) {
    boost::asio::post(loop_,
                      [complete = std::move(op.complete), batch_error] { complete(batch_error); });
  }
}

}  // namespace sw::studio
