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
  bool post_release = false;
  {
    std::unique_lock lock(queue_->mutex);
    if (queue_->stopping) {
      lock.unlock();
      boost::asio::post(loop_, [complete = std::move(op.complete)] {
        complete(Error::unavailable("the studio is shutting down"));
      });
      return;
    }
    queue_->pending.push_back(std::move(op));
    // The first op since the database thread last took some: the batch starts once the loop has
    // run what it has ready now (see the header). Later ops of this turn join it.
    post_release = !queue_->released && !queue_->release_posted;
    queue_->release_posted = queue_->release_posted || post_release;
  }
  if (post_release) {
    boost::asio::post(loop_, [queue = queue_] {
      std::lock_guard lock(queue->mutex);
      queue->release_posted = false;
      queue->released = true;
      queue->wake.notify_one();
    });
  }
}

void DbWorker::stop() {
  {
    std::lock_guard lock(queue_->mutex);
    if (queue_->stopping) {
      return;
    }
    queue_->stopping = true;
    queue_->wake.notify_one();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard lock(queue_->mutex);
  // Ops per batch is what the batching buys: each batch is one commit.
  logger().info("db.stopped", {{"batches", queue_->batches}, {"ops", queue_->ops}});
}

std::uint64_t DbWorker::batches() const {
  std::lock_guard lock(queue_->mutex);
  return queue_->batches;
}

void DbWorker::run() {
  std::vector<Op> batch;
  auto& q = *queue_;
  while (true) {
    {
      std::unique_lock lock(q.mutex);
      // Stopping: everything queued runs now, released or not.
      q.wake.wait(lock, [&] { return q.stopping || (q.released && !q.pending.empty()); });
      if (q.pending.empty() && q.stopping) {
        return;
      }
      if (q.pending.size() <= kMaxBatchOps) {
        batch.swap(q.pending);
        q.released = false;
      } else {
        // The rest stays released: it is the next batch.
        const auto cut = q.pending.begin() + static_cast<std::ptrdiff_t>(kMaxBatchOps);
        batch.assign(std::make_move_iterator(q.pending.begin()), std::make_move_iterator(cut));
        q.pending.erase(q.pending.begin(), cut);
      }
      ++q.batches;
      q.ops += batch.size();
    }
    run_batch(batch);
    batch.clear();
  }
}

std::optional<Error> DbWorker::recover() {
  if (store_->healthy()) {
    return std::nullopt;
  }
  if (backoff_.count() > 0) {
    // Ops that arrive meanwhile wait for the next batch; stop() cuts the wait short.
    std::unique_lock lock(queue_->mutex);
    queue_->wake.wait_for(lock, backoff_, [this] { return queue_->stopping; });
  }
  ++reconnect_attempts_;
  auto recovered = store_->recover();
  if (!recovered) {
    backoff_ =
        std::clamp(backoff_ * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
    logger().warn("db.reconnect", {{"attempt", reconnect_attempts_},
                                   {"ok", false},
                                   {"retry_in_ms", backoff_.count()},
                                   {"error", recovered.error().message}});
    return recovered.error();
  }
  logger().info("db.reconnect", {{"attempt", reconnect_attempts_}, {"ok", true}});
  backoff_ = std::chrono::milliseconds(0);
  reconnect_attempts_ = 0;
  return std::nullopt;
}

void DbWorker::run_batch(std::vector<Op>& batch) {
  std::optional<Error> batch_error = recover();
  if (!batch_error) {
    if (auto begun = store_->begin_batch(); !begun) {
      batch_error = begun.error();
    } else {
      for (auto& op : batch) {
        if (auto opened = store_->begin_op(); !opened) {
          batch_error = opened.error();
          break;
        }
        const bool keep = op.execute(*store_);
        if (auto ended = store_->end_op(keep); !ended) {
          batch_error = ended.error();
          break;
        }
      }
      if (!batch_error) {
        if (auto committed = store_->commit_batch(); !committed) {
          batch_error = committed.error();
        }
      }
      if (batch_error) {
        store_->rollback_batch();
      }
    }
    if (batch_error && !store_->healthy()) {
      // The connection went down under this batch: wait a little before reconnecting.
      backoff_ = std::chrono::milliseconds(100);
      batch_error =
          Error::unavailable("the database connection was lost: {}", batch_error->message);
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
