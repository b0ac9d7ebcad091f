#pragma once
// The studio's settings: everything `studio-server serve` can change, with the spec's defaults.
// Tests shorten the timeouts instead of sleeping through them.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "proto/types.h"

namespace sw::studio {

using namespace std::chrono_literals;

// The WebSocket message cap that honours a JSON limit (issue 16): a completeJson frame carries the
// job's prompt (at most one JSON body) beside a JSON result of up to the same size, plus keys.
// Never below 16 MiB, the cap studios had before it was derived.
inline constexpr std::uint64_t kMinFrameLimit = 16ull << 20;
inline constexpr std::uint64_t kFrameOverhead = 1ull << 20;
constexpr std::uint64_t frame_limit_for(std::uint64_t json_body_limit) {
  return std::max(kMinFrameLimit, 2 * json_body_limit + kFrameOverhead);
}
// The largest JSON limit `serve` can honour: an offer carries a job's task to its worker in one
// WebSocket message, and workers (ours, and the reference's tungstenite default) read messages of
// at most 64 MiB; the rest is room for the offer's other fields.
inline constexpr std::uint64_t kMaxJsonBodyLimit = 48ull << 20;
// What a worker reads in one WebSocket message (ours: net::WsClientOptions; the reference's
// tungstenite default). An offer carries the job's task AND its model's source, each within the
// JSON limit, so a job is checked as a whole when it is submitted: one whose offer could never be
// read would make every worker it is offered to drop its session (issue 16, found in review).
inline constexpr std::uint64_t kWorkerMessageLimit = 64ull << 20;
inline constexpr std::uint64_t kOfferOverhead = 64ull << 10;  // ids, keys, the frame's own fields
constexpr bool offer_fits_a_worker(std::uint64_t task_json_bytes, std::uint64_t source_json_bytes) {
  return task_json_bytes + source_json_bytes + kOfferOverhead <= kWorkerMessageLimit;
}

struct StudioConfig {
  // This process's own directory: its lock file, studio.db (unless database_uri is set) and, by
  // default, results/. Each studio process has its own, also when they share a database.
  std::filesystem::path data_dir;
  // `--database postgresql://USER@HOST:PORT/DB` (or STUDIO_SERVER_DATABASE): the studio's store
  // on PostgreSQL instead of <data_dir>/studio.db. Never logged with its password.
  std::optional<std::string> database_uri;
  // Result bytes, one file per sha256 written atomically (temp + rename), so several processes may
  // share the directory; studios on one PostgreSQL database that serve each other's results must
  // share it. Empty: <data_dir>/results. Bytes stay out of the database (its WAL, backups and
  // replication) and are served straight from disk.
  std::filesystem::path results_dir;
  std::filesystem::path results_path() const {
    return results_dir.empty() ? data_dir / "results" : results_dir;
  }

  // Scheduling (studio-server.md "Scheduling rules").
  std::chrono::milliseconds offer_timeout = 30s;            // offer unanswered → requeue
  std::chrono::milliseconds session_silence_timeout = 30s;  // no frame → close, release job
  std::chrono::milliseconds sweep_interval = 5s;            // how often silence is checked
  std::chrono::milliseconds reject_hold_off = 5s;           // after reject busy/paused
  // After a retryable `fail`, the worker that failed is not offered that job again for this long
  // (others are), so one broken box cannot use up a job's attempts in a second while a healthy
  // worker is idle. 0: no hold (the job may go straight back to the same worker).
  std::chrono::milliseconds fail_hold_off = 5s;
  // A claim outlives its holder's session this long (a network blip, a worker or studio restart)
  // before the job is requeued; the holder's result is accepted meanwhile.
  std::chrono::milliseconds claim_grace = 60s;
  // A holder that came back and whose first heartbeat does not name a job it held (it restarted,
  // or lost it) keeps the claim only this much longer, for the result its outbox may still
  // deliver (it sends finished results right after the welcome); then the job is requeued.
  std::chrono::milliseconds returned_without_job_grace = 15s;
  std::chrono::milliseconds default_run_limit = 30min;  // claimed with no result → requeue
  std::map<proto::TaskKind, std::chrono::milliseconds> run_limits;  // per-kind overrides

  // Request limits: refused before the body is buffered. `serve` sets frame_limit from
  // json_body_limit (frame_limit_for); a worker that announced the "limits" feature is told
  // frame_limit and result_body_limit in its welcome.
  std::uint64_t json_body_limit = 1ull << 20;      // a JSON request body (a job's task)
  std::uint64_t result_body_limit = 512ull << 20;  // a multipart result upload, whole
  std::uint64_t frame_limit = 16ull << 20;  // a WebSocket message: completeJson carries LLM outputs
  // Routes that need no token (register-request, its poll, /healthz, /metrics): the body must be
  // at most this big and arrive within this long of the headers (else 413 / 408).
  std::uint64_t anonymous_body_limit = 64ull << 10;
  std::chrono::seconds anonymous_body_timeout = 10s;
  // Result upload bytes being received at once, across all uploads (each reserves its
  // Content-Length when admitted); over it a new upload is answered 503 with Retry-After. Never
  // less than result_body_limit, so that one upload of the largest size always fits.
  std::uint64_t upload_in_flight_limit = 1ull << 30;

  // Client uploads (issue 20): job inputs (audio to transcribe, images to edit) that a client
  // sends with POST /api/v1/uploads and workers fetch from /graphics/api/uploads/<id>. The bytes
  // are files under uploads_path() (0700, each 0600). An upload no job took goes after
  // `upload_retention`; one a job took goes when the job is done, failed or cancelled.
  std::uint64_t upload_body_limit = 64ull << 20;  // one upload's request body, whole
  std::chrono::milliseconds upload_retention = 1h;
  // The base of the URLs the studio hands out for uploads (`<public_url>/graphics/api/uploads/
  // <id>`), as workers reach it (e.g. https://studio.example.com). Empty: `http://` + the
  // upload request's Host header, which is right only when clients and workers reach the studio
  // at the same address without TLS termination in front of it.
  std::string public_url;
  // Like results_dir: one file per upload id, written atomically, so several processes may share
  // it; studios on one PostgreSQL database must share it when a worker or client may reach any
  // of them. Empty: <data_dir>/uploads.
  std::filesystem::path uploads_dir;
  std::filesystem::path uploads_path() const {
    return uploads_dir.empty() ? data_dir / "uploads" : uploads_dir;
  }

  // Registration (reference §2.1): requests per source IP per window.
  int register_rate_limit = 10;
  std::chrono::seconds register_rate_window = 60s;

  // Waiting for a job's end inside one request (issue 20): the most `POST /api/v1/jobs?waitMs=`
  // may ask, and how long an OpenAI route without `stream` waits before it answers 504 (the job
  // goes on; its id is in the answer). Both stay under the HTTP server's 5-minute answer limit.
  std::chrono::milliseconds job_wait_limit = 120s;
  std::chrono::milliseconds openai_wait_limit = 270s;
  // An OpenAI request whose job no connected worker can serve (no worker, kind, engine or
  // memory for it) is given this long for one to connect; then the job is cancelled and the
  // client gets 503 with the scheduler's reason.
  std::chrono::milliseconds openai_unroutable_grace = 5s;

  int log_keep_per_worker = 10'000;
  int default_max_attempts = 3;

  // The admin token in clear (STUDIO_SERVER_ADMIN_TOKEN); otherwise one is minted at first start.
  std::optional<std::string> admin_token;

  std::chrono::milliseconds run_limit_for(proto::TaskKind kind) const {
    const auto it = run_limits.find(kind);
    return it == run_limits.end() ? default_run_limit : it->second;
  }
};

}  // namespace sw::studio
