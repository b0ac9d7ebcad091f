#pragma once
// The studio's counters and the offer-latency histogram, rendered as Prometheus text.
// Loop-thread only.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "proto/types.h"
#include "studio/scheduler.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

struct Metrics {
  // Buckets of the queued → offer-sent latency, in seconds.
  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30};

  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t upload_bytes = 0;
  std::uint64_t uploads_deferred = 0;  // answered 503: the upload budget was full
  std::uint64_t offers = 0;
  std::uint64_t requeues = 0;
  std::uint64_t withdrawn_claims = 0;      // a former holder's late result won
  std::uint64_t repeated_completions = 0;  // idempotent repeats acknowledged again
  std::uint64_t late_results_taken = 0;    // a result completed a job that had failed (issue 18)
  std::uint64_t protocol_violations = 0;
  // Through this process (issue 21: the dashboard's jobs per minute and failures by reason).
  std::map<std::string, std::uint64_t> jobs_created;                        // by kind
  std::map<std::pair<std::string, std::string>, std::uint64_t> jobs_ended;  // by kind, status
  std::map<std::string, std::uint64_t> attempts_ended;  // by outcome other than done
  // Per bucket, not cumulative; the last one counts the latencies above every bound.
  std::array<std::uint64_t, kLatencyBuckets.size() + 1> latency_counts{};
  std::uint64_t latency_count = 0;
  double latency_sum = 0;

  void observe_offer_latency(std::chrono::steady_clock::duration latency);

  // The exposition text; gauges come from the caller's live state. `waiting` is the queue by
  // waiting reason (Scheduler::waiting_counts): `studio_jobs_waiting{reason="no_engine",
  // engine="llama-cpp"} 5`; the reasons without a detail always have a line.
  std::string render(const std::map<proto::TaskKind, std::size_t>& queued_per_kind,
                     const std::map<std::string, std::int64_t>& jobs_by_status,
                     std::size_t workers_connected,
                     const std::map<std::pair<WaitClass, std::string>, std::size_t>& waiting) const;

  // The same figures as JSON (GET /api/v1/stats, for the dashboard's charts: no Prometheus text
  // parser in the page): {"queueDepth": {kind: n}, "jobs": {status: n}, "workersConnected",
  // "waiting": [{"reason", "detail"?, "count"}], "jobsCreated": {kind: n}, "jobsEnded":
  // [{"kind", "status", "count"}], "attemptsEnded": {outcome: n}, "requeues", "offers",
  // "offerLatency": {"count", "sumSeconds", "buckets": [{"le": seconds | "+Inf", "count"}]}}
  // with cumulative bucket counts, as Prometheus's.
  nlohmann::json snapshot(
      const std::map<proto::TaskKind, std::size_t>& queued_per_kind,
      const std::map<std::string, std::int64_t>& jobs_by_status, std::size_t workers_connected,
      const std::map<std::pair<WaitClass, std::string>, std::size_t>& waiting) const;
};

// Every API key's usage since it was created (issue 20), from the database (so the same on every
// studio process): studio_api_key_jobs_total, studio_api_key_tokens_total{direction="in"|"out"},
// studio_api_key_run_seconds_total, each labelled key="<key id>". Keys are named by id only:
// /metrics needs no credential.
std::string render_key_usage(const std::map<std::string, store::KeyUsage>& usage_by_key);

}  // namespace sw::studio
