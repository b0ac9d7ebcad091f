// The studio's side of client uploads (issue 20): storing one (file on the blocking pool, then
// the row), the URLs handed out, and the sweep that deletes uploads whose job is over or that no
// job took within the retention period. The routes are studio/api/upload_routes.cpp.

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/log.h"
#include "studio/db_worker.h"
#include "studio/studio.h"
#include "studio/transactions.h"
#include "studio/uploads.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::uploads");
  return instance;
}

// Rows deleted per sweep round; a fuller round runs again at once.
constexpr int kSweepBatch = 256;
// A client's file name is shown back, never used as a path: only its length is bounded.
constexpr std::size_t kMaxFilenameBytes = 255;

bool terminal(store::JobStatus status) {
  return status == store::JobStatus::Done || status == store::JobStatus::Failed ||
         status == store::JobStatus::Cancelled;
}

}  // namespace

void Studio::store_upload(std::string bytes, std::string content_type, std::string filename,
                          std::string owner,
                          std::function<void(Result<store::UploadRecord>)> done) {
  store::UploadRecord record;
  record.id = uploads::new_upload_id();
  record.bytes = static_cast<std::int64_t>(bytes.size());
  record.content_type = content_type.empty() ? "application/octet-stream" : std::move(content_type);
  if (filename.size() > kMaxFilenameBytes) {
    filename.resize(kMaxFilenameBytes);
  }
  record.filename = std::move(filename);
  record.owner = std::move(owner);
  // The bytes go to the pool and are freed there once written; the loop never touches the disk.
  boost::asio::post(*blocking_, [weak = weak_from_this(), loop = loop_, dir = uploads_dir(),
                                 bytes = std::move(bytes), record = std::move(record),
                                 done = std::move(done)]() mutable {
    auto sha256 = uploads::write_upload_file(dir, record.id, bytes);
    bytes = std::string();
    boost::asio::post(loop, [weak, dir, sha256 = std::move(sha256), record = std::move(record),
                             done = std::move(done)]() mutable {
      auto self = weak.lock();
      if (!self) {
        return;
      }
      if (!sha256) {
        logger().error("upload.write_failed",
                       {{"upload_id", record.id}, {"error", sha256.error().message}});
        done(fail(std::move(sha256).error()));
        return;
      }
      record.sha256 = std::move(*sha256);
      record.created_at = self->unix_millis();
      self->db_->call<store::UploadRecord>(
          [record](store::StudioStore& st) -> Result<store::UploadRecord> {
            SW_TRY(st.insert_upload(record));
            return record;
          },
          [weak, dir, id = record.id, done = std::move(done)](Result<store::UploadRecord> stored) {
            auto studio = weak.lock();
            if (!studio) {
              return;
            }
            if (!stored) {
              // Not recorded: its file would be nobody's.
              boost::asio::post(*studio->blocking_,
                                [dir, id] { (void)uploads::remove_upload_file(dir, id); });
            } else {
              logger().info("upload.stored", {{"upload_id", stored->id},
                                              {"bytes", stored->bytes},
                                              {"owner", stored->owner},
                                              {"content_type", stored->content_type}});
            }
            done(std::move(stored));
          });
    });
  });
}

void Studio::discard_upload(const std::string& id) {
  db_->call<store::UploadRecord>(
      [id](store::StudioStore& st) { return tx::delete_upload(st, id); },
      [weak = weak_from_this(), id](Result<store::UploadRecord> deleted) {
        auto self = weak.lock();
        if (!self) {
          return;
        }
        if (!deleted) {
          logger().warn("upload.discard_failed",
                        {{"upload_id", id}, {"error", deleted.error().message}});
          return;
        }
        boost::asio::post(*self->blocking_, [dir = self->uploads_dir(), id] {
          (void)uploads::remove_upload_file(dir, id);
        });
        logger().info("upload.discarded", {{"upload_id", id}});
      });
}

std::string Studio::upload_url(const net::HttpRequest& request, const std::string& id) const {
  std::string base = config_.public_url;
  if (base.empty()) {
    const auto* host = request.header("host");
    base = "http://" + (host != nullptr && !host->empty() ? *host : std::string("localhost"));
  }
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  return base + std::string(uploads::kDownloadPrefix) + id;
}

void Studio::job_ended_for_uploads(const store::JobRecord& job) {
  if (terminal(job.status) && jobs_with_uploads_.erase(job.id) > 0) {
    sweep_uploads();
  }
}

void Studio::schedule_upload_sweep(std::chrono::milliseconds after) {
  if (stopping_) {
    return;
  }
  upload_sweep_timer_ = std::make_shared<boost::asio::steady_timer>(loop_, after);
  upload_sweep_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) {
      return;
    }
    self->sweep_uploads();
  });
}

void Studio::sweep_uploads() {
  if (stopping_) {
    return;
  }
  if (upload_sweep_running_) {
    upload_sweep_again_ = true;
    return;
  }
  upload_sweep_running_ = true;
  const auto cut = unix_millis() - config_.upload_retention.count();
  db_->call<std::vector<store::UploadRecord>>(
      [cut](store::StudioStore& st) { return st.disposable_uploads(cut, kSweepBatch); },
      [weak = weak_from_this()](Result<std::vector<store::UploadRecord>> found) {
        auto self = weak.lock();
        if (!self) {
          return;
        }
        if (!found) {
          logger().warn("upload.sweep_failed", {{"error", found.error().message}});
          self->upload_sweep_finished(false);
          return;
        }
        if (found->empty()) {
          self->upload_sweep_finished(false);
          return;
        }
        // Files first, then rows: a crash between them leaves a row whose file is gone, which the
        // next sweep deletes; the other order would leave files no row names.
        std::vector<std::string> ids;
        for (const auto& upload : *found) {
          ids.push_back(upload.id);
        }
        const bool full = found->size() == static_cast<std::size_t>(kSweepBatch);
        boost::asio::post(*self->blocking_, [weak, loop = self->loop_, dir = self->uploads_dir(),
                                             ids = std::move(ids), full]() mutable {
          std::vector<std::string> removed;
          for (const auto& id : ids) {
            if (auto gone = uploads::remove_upload_file(dir, id); gone) {
              removed.push_back(id);
            } else {
              logger().warn("upload.remove_failed",
                            {{"upload_id", id}, {"error", gone.error().message}});
            }
          }
          boost::asio::post(loop, [weak, removed = std::move(removed), full]() mutable {
            auto alive = weak.lock();
            if (!alive) {
              return;
            }
            alive->db_->call<std::size_t>(
                [removed](store::StudioStore& st) -> Result<std::size_t> {
                  std::size_t deleted = 0;
                  for (const auto& id : removed) {
                    auto row = st.delete_upload(id);
                    if (!row) {
                      return fail(std::move(row).error());
                    }
                    deleted += *row ? 1 : 0;
                  }
                  return deleted;
                },
                [weak, full](Result<std::size_t> deleted) {
                  auto studio = weak.lock();
                  if (!studio) {
                    return;
                  }
                  if (!deleted) {
                    logger().warn("upload.sweep_failed", {{"error", deleted.error().message}});
                  } else {
                    logger().info("upload.swept", {{"uploads", *deleted}});
                  }
                  studio->upload_sweep_finished(full && deleted);
                });
          });
        });
      });
}

void Studio::upload_sweep_finished(bool more) {
  upload_sweep_running_ = false;
  if (more || upload_sweep_again_) {
    upload_sweep_again_ = false;
    sweep_uploads();
    return;
  }
  schedule_upload_sweep(config_.sweep_interval);
}

}  // namespace sw::studio
