#include "studio/metrics.h"

#include <fmt/format.h>

namespace sw::studio {
namespace {

// A label value as the exposition format wants it: backslash, quote and newline escaped.
std::string label_value(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The label that carries a reason's detail.
std::string_view detail_label(WaitClass reason) {
  switch (reason) {
    case WaitClass::NoKind: return "kind";
    case WaitClass::NoEngine: return "engine";
    case WaitClass::NoVram: return "vram_gb";
    case WaitClass::NoWorker:
    case WaitClass::Busy:
    case WaitClass::Pending: return "";
  }
  return "";
}

}  // namespace

void Metrics::observe_offer_latency(std::chrono::steady_clock::duration latency) {
  const double seconds = std::chrono::duration<double>(latency).count();
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) {
      ++latency_counts[i];
    }
  }
  ++latency_count;
  latency_sum += seconds;
}

std::string Metrics::render(
    const std::map<proto::TaskKind, std::size_t>& queued_per_kind,
    const std::map<std::string, std::int64_t>& jobs_by_status, std::size_t workers_connected,
    const std::map<std::pair<WaitClass, std::string>, std::size_t>& waiting) const {
  std::string out;
  auto line = [&out](std::string_view text) {
    out.append(text);
    out.push_back('\n');
  };
  line("# HELP studio_queue_depth Jobs waiting for a worker, per task kind.");
  line("# TYPE studio_queue_depth gauge");
  for (const auto& [kind, count] : queued_per_kind) {
    line(fmt::format("studio_queue_depth{{kind=\"{}\"}} {}", proto::to_string(kind), count));
  }
  line("# HELP studio_jobs Jobs in the database, per status.");
  line("# TYPE studio_jobs gauge");
  for (const auto* status : {"queued", "claimed", "done", "failed", "cancelled"}) {
    const auto it = jobs_by_status.find(status);
    line(fmt::format("studio_jobs{{status=\"{}\"}} {}", status,
                     it == jobs_by_status.end() ? 0 : it->second));
  }
  line(
      "# HELP studio_jobs_waiting Queued jobs by why no connected worker takes them: no_worker, "
      "no_kind, no_engine, no_vram, busy (every eligible worker busy or paused), pending.");
  line("# TYPE studio_jobs_waiting gauge");
  for (const auto reason : {WaitClass::NoWorker, WaitClass::Busy, WaitClass::Pending}) {
    if (!waiting.contains({reason, ""})) {
      line(fmt::format("studio_jobs_waiting{{reason=\"{}\"}} 0", to_string(reason)));
    }
  }
  for (const auto& [key, count] : waiting) {
    const auto& [reason, detail] = key;
    const auto label = detail_label(reason);
    if (label.empty()) {
      line(fmt::format("studio_jobs_waiting{{reason=\"{}\"}} {}", to_string(reason), count));
    } else {
      line(fmt::format("studio_jobs_waiting{{reason=\"{}\",{}=\"{}\"}} {}", to_string(reason),
                       label, label_value(detail), count));
    }
  }
  line("# HELP studio_workers_connected Welcomed worker sessions.");
  line("# TYPE studio_workers_connected gauge");
  line(fmt::format("studio_workers_connected {}", workers_connected));
  line("# HELP studio_frames_in_total WebSocket frames received from workers.");
  line("# TYPE studio_frames_in_total counter");
  line(fmt::format("studio_frames_in_total {}", frames_in));
  line("# HELP studio_frames_out_total WebSocket frames sent to workers.");
  line("# TYPE studio_frames_out_total counter");
  line(fmt::format("studio_frames_out_total {}", frames_out));
  line("# HELP studio_upload_bytes_total Result bytes received over multipart complete.");
  line("# TYPE studio_upload_bytes_total counter");
  line(fmt::format("studio_upload_bytes_total {}", upload_bytes));
  line(
      "# HELP studio_uploads_deferred_total Result uploads answered 503 because the bytes of "
      "uploads in flight were at their limit.");
  line("# TYPE studio_uploads_deferred_total counter");
  line(fmt::format("studio_uploads_deferred_total {}", uploads_deferred));
  line("# HELP studio_offers_total Offers sent.");
  line("# TYPE studio_offers_total counter");
  line(fmt::format("studio_offers_total {}", offers));
  line("# HELP studio_requeues_total Jobs returned to the queue.");
  line("# TYPE studio_requeues_total counter");
  line(fmt::format("studio_requeues_total {}", requeues));
  line(
      "# HELP studio_withdrawn_claims_total Claims withdrawn because a former holder's late "
      "result completed the job.");
  line("# TYPE studio_withdrawn_claims_total counter");
  line(fmt::format("studio_withdrawn_claims_total {}", withdrawn_claims));
  line(
      "# HELP studio_repeated_completions_total Completions received again and acknowledged "
      "again (a worker retrying a delivery).");
  line("# TYPE studio_repeated_completions_total counter");
  line(fmt::format("studio_repeated_completions_total {}", repeated_completions));
  line(
      "# HELP studio_late_results_total Results from a former holder that completed a job "
      "already failed by its run limit or a lapse.");
  line("# TYPE studio_late_results_total counter");
  line(fmt::format("studio_late_results_total {}", late_results_taken));
  line("# HELP studio_protocol_violations_total Sessions ended for breaking the protocol.");
  line("# TYPE studio_protocol_violations_total counter");
  line(fmt::format("studio_protocol_violations_total {}", protocol_violations));
  line("# HELP studio_offer_latency_seconds Time from queued (or requeued) to offer sent.");
  line("# TYPE studio_offer_latency_seconds histogram");
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    line(fmt::format("studio_offer_latency_seconds_bucket{{le=\"{}\"}} {}", kLatencyBuckets[i],
                     latency_counts[i]));
  }
  line(fmt::format("studio_offer_latency_seconds_bucket{{le=\"+Inf\"}} {}", latency_count));
  line(fmt::format("studio_offer_latency_seconds_sum {}", latency_sum));
  line(fmt::format("studio_offer_latency_seconds_count {}", latency_count));
  return out;
}

}  // namespace sw::studio
