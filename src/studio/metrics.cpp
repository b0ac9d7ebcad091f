#include "studio/metrics.h"

#include "common/prom_text.h"

namespace sw::studio {
namespace {

// The label that carries a reason's detail.
std::string_view detail_label(WaitClass reason) {
  switch (reason) {
    case WaitClass::NoKind: return "kind";
    case WaitClass::NoEngine: return "engine";
    case WaitClass::NoVram: return "vram_gb";
    case WaitClass::NoWorker:
    case WaitClass::NoUploads:
    case WaitClass::Busy:
    case WaitClass::Pending: return "";
  }
  return "";
}

}  // namespace

void Metrics::observe_offer_latency(std::chrono::steady_clock::duration latency) {
  const double seconds = std::chrono::duration<double>(latency).count();
  std::size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  ++latency_counts[bucket];
  ++latency_count;
  latency_sum += seconds;
}

std::string Metrics::render(
    const std::map<proto::TaskKind, std::size_t>& queued_per_kind,
    const std::map<std::string, std::int64_t>& jobs_by_status, std::size_t workers_connected,
    const std::map<std::pair<WaitClass, std::string>, std::size_t>& waiting) const {
  prom::TextWriter out;
  auto counter = [&out](std::string_view name, std::string_view help, std::uint64_t value) {
    out.family(name, "counter", help);
    out.sample(name, {}, value);
  };
  out.family("studio_queue_depth", "gauge", "Jobs waiting for a worker, per task kind.");
  for (const auto& [kind, count] : queued_per_kind) {
    out.sample("studio_queue_depth", {{"kind", std::string(proto::to_string(kind))}},
               std::uint64_t{count});
  }
  out.family("studio_jobs", "gauge", "Jobs in the database, per status.");
  for (const auto* status : {"queued", "claimed", "done", "failed", "cancelled"}) {
    const auto it = jobs_by_status.find(status);
    out.sample("studio_jobs", {{"status", status}},
               it == jobs_by_status.end() ? std::int64_t{0} : it->second);
  }
  out.family("studio_jobs_waiting", "gauge",
             "Queued jobs by why no connected worker takes them: no_worker, no_kind, no_engine, "
             "no_vram, no_uploads, busy (every eligible worker busy or paused), pending.");
  for (const auto reason : {WaitClass::NoWorker, WaitClass::Busy, WaitClass::Pending}) {
    if (!waiting.contains({reason, ""})) {
      out.sample("studio_jobs_waiting", {{"reason", std::string(to_string(reason))}},
                 std::uint64_t{0});
    }
  }
  for (const auto& [key, count] : waiting) {
    const auto& [reason, detail] = key;
    const auto label = detail_label(reason);
    prom::Labels labels = {{"reason", std::string(to_string(reason))}};
    if (!label.empty()) labels.emplace_back(label, detail);
    out.sample("studio_jobs_waiting", labels, std::uint64_t{count});
  }
  out.family("studio_workers_connected", "gauge", "Welcomed worker sessions.");
  out.sample("studio_workers_connected", {}, std::uint64_t{workers_connected});
  counter("studio_frames_in_total", "WebSocket frames received from workers.", frames_in);
  counter("studio_frames_out_total", "WebSocket frames sent to workers.", frames_out);
  counter("studio_upload_bytes_total", "Result bytes received over multipart complete.",
          upload_bytes);
  counter("studio_uploads_deferred_total",
          "Result uploads answered 503 because the bytes of uploads in flight were at their "
          "limit.",
          uploads_deferred);
  counter("studio_offers_total", "Offers sent.", offers);
  counter("studio_requeues_total", "Jobs returned to the queue.", requeues);
  counter("studio_withdrawn_claims_total",
          "Claims withdrawn because a former holder's late result completed the job.",
          withdrawn_claims);
  counter("studio_repeated_completions_total",
          "Completions received again and acknowledged again (a worker retrying a delivery).",
          repeated_completions);
  counter("studio_late_results_total",
          "Results from a former holder that completed a job already failed by its run limit or "
          "a lapse.",
          late_results_taken);
  counter("studio_protocol_violations_total", "Sessions ended for breaking the protocol.",
          protocol_violations);
  out.family("studio_jobs_created_total", "counter",
             "Jobs created through this process, per kind.");
  for (const auto& [kind, count] : jobs_created) {
    out.sample("studio_jobs_created_total", {{"kind", kind}}, count);
  }
  out.family("studio_jobs_ended_total", "counter",
             "Jobs that reached done, failed or cancelled through this process, per kind and "
             "status (a job failed by its run limit and then completed by a late result counts "
             "in both).");
  for (const auto& [key, count] : jobs_ended) {
    out.sample("studio_jobs_ended_total", {{"kind", key.first}, {"status", key.second}}, count);
  }
  out.family("studio_attempts_ended_total", "counter",
             "Attempts that ended without a result, per outcome: rejected (the worker refused "
             "the offer), failed (the worker failed it), requeued (offer timeout, run limit, "
             "session lost).");
  for (const auto& [outcome, count] : attempts_ended) {
    out.sample("studio_attempts_ended_total", {{"outcome", outcome}}, count);
  }
  out.family("studio_offer_latency_seconds", "histogram",
             "Time from queued (or requeued) to offer sent.");
  out.histogram("studio_offer_latency_seconds", {}, kLatencyBuckets, latency_counts, latency_sum);
  return out.take();
}

nlohmann::json Metrics::snapshot(
    const std::map<proto::TaskKind, std::size_t>& queued_per_kind,
    const std::map<std::string, std::int64_t>& jobs_by_status, std::size_t workers_connected,
    const std::map<std::pair<WaitClass, std::string>, std::size_t>& waiting) const {
  using nlohmann::json;
  json queue = json::object();
  for (const auto& [kind, count] : queued_per_kind) {
    queue[std::string(proto::to_string(kind))] = count;
  }
  json jobs = json::object();
  for (const auto* status : {"queued", "claimed", "done", "failed", "cancelled"}) {
    const auto it = jobs_by_status.find(status);
    jobs[status] = it == jobs_by_status.end() ? std::int64_t{0} : it->second;
  }
  json waits = json::array();
  for (const auto& [key, count] : waiting) {
    json entry = {{"reason", std::string(to_string(key.first))}, {"count", count}};
    if (!key.second.empty()) entry["detail"] = key.second;
    waits.push_back(std::move(entry));
  }
  json ended = json::array();
  for (const auto& [key, count] : jobs_ended) {
    ended.push_back({{"kind", key.first}, {"status", key.second}, {"count", count}});
  }
  json buckets = json::array();
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < latency_counts.size(); ++i) {
    cumulative += latency_counts[i];
    buckets.push_back({{"le", i < kLatencyBuckets.size() ? json(kLatencyBuckets[i]) : json("+Inf")},
                       {"count", cumulative}});
  }
  return {
      {"queueDepth", std::move(queue)},
      {"jobs", std::move(jobs)},
      {"workersConnected", workers_connected},
      {"waiting", std::move(waits)},
      {"jobsCreated", jobs_created},
      {"jobsEnded", std::move(ended)},
      {"attemptsEnded", attempts_ended},
      {"requeues", requeues},
      {"offers", offers},
      {"offerLatency",
       {{"count", latency_count}, {"sumSeconds", latency_sum}, {"buckets", std::move(buckets)}}}};
}

std::string render_key_usage(const std::map<std::string, store::KeyUsage>& usage_by_key) {
  prom::TextWriter out;
  out.family("studio_api_key_jobs_total", "counter", "Jobs created with an API key.");
  for (const auto& [key, usage] : usage_by_key) {
    out.sample("studio_api_key_jobs_total", {{"key", key}}, usage.jobs);
  }
  out.family("studio_api_key_tokens_total", "counter",
             "LLM tokens of an API key's finished jobs: prompt (in) and completion (out).");
  for (const auto& [key, usage] : usage_by_key) {
    out.sample("studio_api_key_tokens_total", {{"key", key}, {"direction", "in"}}, usage.tokens_in);
    out.sample("studio_api_key_tokens_total", {{"key", key}, {"direction", "out"}},
               usage.tokens_out);
  }
  out.family("studio_api_key_run_seconds_total", "counter",
             "Worker run time of an API key's finished jobs, every attempt counted.");
  for (const auto& [key, usage] : usage_by_key) {
    out.sample("studio_api_key_run_seconds_total", {{"key", key}},
               static_cast<double>(usage.run_ms) / 1000.0);
  }
  return out.take();
}

}  // namespace sw::studio
