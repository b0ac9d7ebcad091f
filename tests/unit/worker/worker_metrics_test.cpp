// The worker's /metrics registry (issue 19): counts from several threads, the exposition text as
// an independent reader sees it, the phase histogram, and the per-device memory probe.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/prom_text.h"
#include "support/prom_exposition.h"
#include "support/temp_dir.h"
#include "worker/vram_probe.h"
#include "worker/worker_metrics.h"

namespace sw::worker {
namespace {

using namespace std::chrono_literals;

TEST(WorkerMetrics, CountsFromManyThreadsAndRendersValidExposition) {
  WorkerMetrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.count_job(proto::TaskKind::Image, JobOutcome::Ok);
        metrics.observe_phase(JobPhase::Encode, 3ms);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  metrics.count_job(proto::TaskKind::Llm, JobOutcome::Failed);
  metrics.count_result_bytes(proto::TaskKind::Image, 1234);
  metrics.observe_phase(JobPhase::Load, 90s);
  metrics.observe_phase(JobPhase::Load, 2h);  // above every bound
  metrics.count_reconnect();
  metrics.count_runner_start("llama-server");
  metrics.count_runner_death("llama-server");
  metrics.count_runner_start("a \"quoted\\ program\nname");

  MetricGauges gauges;
  gauges.connected = true;
  gauges.outbox_entries = 2;
  gauges.outbox_bytes = 4096;
  gauges.devices = {{"0", 24.0 * (1 << 30), 20.5 * (1 << 30), "CUDA_VISIBLE_DEVICES"},
                    {"1", 8.0 * (1 << 30), std::nullopt, "CUDA_VISIBLE_DEVICES"}};
  const std::string text = metrics.render(gauges);
  const auto exposition = testing::parse_exposition(text);
  ASSERT_TRUE(exposition.errors.empty()) << ::testing::PrintToString(exposition.errors) << text;

  EXPECT_EQ(exposition.value(R"(studio_worker_jobs_total{kind="image",outcome="ok"})"), 4000);
  EXPECT_EQ(exposition.value(R"(studio_worker_jobs_total{kind="llm",outcome="failed"})"), 1);
  EXPECT_EQ(exposition.value(R"(studio_worker_jobs_total{kind="video",outcome="deadline"})"), 0);
  EXPECT_EQ(exposition.types.at("studio_worker_jobs_total"), "counter");
  EXPECT_EQ(exposition.types.at("studio_worker_job_phase_seconds"), "histogram");
  EXPECT_EQ(exposition.value(R"(studio_worker_job_phase_seconds_count{phase="encode"})"), 4000);
  EXPECT_EQ(
      exposition.value(R"(studio_worker_job_phase_seconds_bucket{le="0.005",phase="encode"})"),
      4000);
  EXPECT_EQ(exposition.value(R"(studio_worker_job_phase_seconds_bucket{le="120",phase="load"})"),
            1);
  EXPECT_EQ(exposition.value(R"(studio_worker_job_phase_seconds_bucket{le="+Inf",phase="load"})"),
            2);
  EXPECT_NEAR(exposition.value(R"(studio_worker_job_phase_seconds_sum{phase="load"})"), 7290, 1e-6);
  EXPECT_EQ(exposition.value(R"(studio_worker_job_phase_seconds_count{phase="upload"})"), 0);
  EXPECT_EQ(exposition.value(R"(studio_worker_result_bytes_total{kind="image"})"), 1234);
  EXPECT_EQ(exposition.value("studio_worker_reconnects_total"), 1);
  EXPECT_EQ(exposition.value(R"(studio_worker_runner_starts_total{program="llama-server"})"), 1);
  EXPECT_EQ(exposition.value(R"(studio_worker_runner_deaths_total{program="llama-server"})"), 1);
  EXPECT_EQ(
      exposition.value("studio_worker_runner_starts_total{program=\"a \"quoted\\ program\nname\"}"),
      1)
      << "label values are escaped and read back";
  EXPECT_EQ(exposition.value("studio_worker_connected"), 1);
  EXPECT_EQ(exposition.value("studio_worker_up"), 1);
  EXPECT_EQ(exposition.value("studio_worker_outbox_entries"), 2);
  EXPECT_EQ(exposition.value(R"(studio_worker_device_memory_total_bytes{device="1"})"),
            8.0 * (1 << 30));
  EXPECT_EQ(exposition.value(R"(studio_worker_device_memory_free_bytes{device="0"})"),
            20.5 * (1 << 30));
  EXPECT_EQ(exposition.samples.count(R"(studio_worker_device_memory_free_bytes{device="1"})"), 0u)
      << "unknown free memory is left out, not written as 0";
}

TEST(WorkerMetrics, TheExpositionReaderCatchesWhatAScraperWouldRefuse) {
  EXPECT_FALSE(testing::parse_exposition("a 1\n").errors.empty()) << "no TYPE";
  EXPECT_FALSE(testing::parse_exposition("# TYPE a gauge\na 1\na 2\n").errors.empty())
      << "duplicate series";
  EXPECT_FALSE(testing::parse_exposition("# TYPE a gauge\na{b=\"x} 1\n").errors.empty());
  EXPECT_FALSE(testing::parse_exposition("# TYPE a gauge\na one\n").errors.empty());
  EXPECT_FALSE(testing::parse_exposition("# TYPE a gauge\n# TYPE a gauge\na 1\n").errors.empty());
  EXPECT_TRUE(
      testing::parse_exposition("# HELP a x\n# TYPE a gauge\na{b=\"\\\"\"} +Inf\n").errors.empty());
}

TEST(WorkerMetrics, DevicesComeFromOneNvidiaSmiQueryElseAmdSysfs) {
  VramProbeSources sources;
  sources.sys_root = "/nonexistent";
  std::string asked;
  sources.run_nvidia_smi = [&asked](const std::string& args) -> std::optional<std::string> {
    asked = args;
    return "0, 24576, 20480\n1, 8192, [N/A]\n";
  };
  const auto devices = probe_device_memory(sources);
  EXPECT_EQ(asked, "--query-gpu=index,memory.total,memory.free --format=csv,noheader,nounits");
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].device, "0");
  EXPECT_EQ(devices[0].total_bytes, 24576.0 * 1024 * 1024);
  EXPECT_EQ(devices[0].free_bytes, 20480.0 * 1024 * 1024);
  EXPECT_EQ(devices[1].device, "1");
  EXPECT_FALSE(devices[1].free_bytes);
  sources.run_nvidia_smi = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  EXPECT_TRUE(probe_device_memory(sources).empty());
}

// An AMD device's name is its HIP index, what HIP_VISIBLE_DEVICES pins: an Intel iGPU as card0
// takes none, card10 comes after card2, and where ROCm's KFD topology exists its GPU node order
// is HIP's (here the reverse of the card numbers).
TEST(WorkerMetrics, AmdDevicesAreNamedByTheirHipIndexNotTheirCardNumber) {
  sw::testing::TempDir dir;
  VramProbeSources sources;
  sources.proc_root = dir.path() / "proc";
  sources.sys_root = dir.path() / "sys";
  const auto drm = sources.sys_root / "class/drm";
  auto amd = [&](const std::string& card, int gib) {
    std::filesystem::create_directories(drm / card / "device");
    std::ofstream(drm / card / "device/mem_info_vram_total")
        << (static_cast<long long>(gib) << 30) << "\n";
  };
  std::filesystem::create_directories(drm / "card0/device");  // i915: no mem_info_vram_*
  std::filesystem::create_directories(drm / "card0-HDMI-A-1");
  amd("card10", 8);
  amd("card2", 16);
  auto devices = probe_device_memory(sources);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].device, "0");
  EXPECT_EQ(devices[0].total_bytes, 16 * 1073741824.0) << "card2 before card10";
  EXPECT_EQ(devices[1].device, "1");
  EXPECT_EQ(devices[1].total_bytes, 8 * 1073741824.0);
  EXPECT_EQ(devices[1].visible_env, "HIP_VISIBLE_DEVICES");

  // The KFD topology: a CPU node (gpu_id 0), then the GPU whose render node is card10's.
  amd("renderD128", 16);
  amd("renderD129", 8);
  const auto nodes = sources.sys_root / "class/kfd/kfd/topology/nodes";
  auto node = [&](const std::string& n, const std::string& properties) {
    std::filesystem::create_directories(nodes / n);
    std::ofstream(nodes / n / "properties") << properties;
  };
  node("0", "cpu_cores_count 16\ngpu_id 0\ndrm_render_minor 0\n");
  node("1", "simd_count 240\ndrm_render_minor 129\ngpu_id 4022\n");
  node("2", "drm_render_minor 128\ngpu_id 53111\n");
  devices = probe_device_memory(sources);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].total_bytes, 8 * 1073741824.0) << "KFD node 1 is HIP device 0";
  EXPECT_EQ(devices[1].total_bytes, 16 * 1073741824.0);
  EXPECT_EQ(devices[1].device, "1");
}

TEST(PromText, WritesFamiliesSamplesAndHistogramsAsTheFormatWants) {
  prom::TextWriter out;
  out.family("x_seconds", "histogram", "A \\ help\nline.");
  const std::array<double, 2> bounds = {0.5, 1};
  const std::array<std::uint64_t, 3> counts = {1, 0, 2};
  out.histogram("x_seconds", {{"k", "v"}}, bounds, counts, 4.25);
  EXPECT_EQ(out.text(),
            "# HELP x_seconds A \\\\ help\\nline.\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{k=\"v\",le=\"0.5\"} 1\nx_seconds_bucket{k=\"v\",le=\"1\"} 1\n"
            "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\nx_seconds_sum{k=\"v\"} 4.25\n"
            "x_seconds_count{k=\"v\"} 3\n");
}

}  // namespace
}  // namespace sw::worker
