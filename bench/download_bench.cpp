// Model download + sha256 verification of a 1 GiB file from a loopback HTTP server (the
// project's Beast test server), written to disk with fsync and renamed into place; and raw
// sha256 throughput, the ceiling the download cannot beat.

#include <unistd.h>

#include <filesystem>

#include "bench_reporter.h"
#include "common/sha256.h"
#include "support/http_test_server.h"
#include "transfer/download.h"

namespace {

constexpr std::size_t kFileBytes = 1ull << 30;

std::shared_ptr<const std::string> payload() {
  static auto body = [] {
    std::string s(kFileBytes, '\0');
    std::uint64_t x = 88172645463325252ull;
    auto* words = reinterpret_cast<std::uint64_t*>(s.data());
    for (std::size_t i = 0; i < kFileBytes / 8; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      words[i] = x;
    }
    return std::make_shared<const std::string>(std::move(s));
  }();
  return body;
}

// Into `dir`: the disk figure (what an operator gets) or tmpfs (the network + hash pipeline alone).
void download_into(benchmark::State& state, const std::filesystem::path& dir_path) {
  auto body = payload();
  const std::string sha = sw::sha256_hex(*body);
  sw::testing::HttpTestServer server;
  server.set_route("/model.gguf", sw::testing::serving(body));
  std::filesystem::path dir = dir_path / ("sw-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    sw::transfer::DownloadRequest request;
    request.url = server.url("/model.gguf");
    request.destination = dir / "model.gguf";
    request.sha256 = sha;
    auto result = sw::transfer::download_file(request);
    if (!result) {
      state.SkipWithError(result.error().message.c_str());
      return;
    }
    bytes += result->bytes;
    state.PauseTiming();
    std::filesystem::remove(request.destination);
    state.ResumeTiming();
  }
  std::filesystem::remove_all(dir);
  state.counters["bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsRate);
}

void BM_Download1GiB(benchmark::State& state) {
  download_into(state, std::filesystem::temp_directory_path());
}

void BM_Download1GiBTmpfs(benchmark::State& state) {
  if (!std::filesystem::is_directory("/dev/shm")) {
    state.SkipWithError("no /dev/shm");
    return;
  }
  download_into(state, "/dev/shm");
}

void BM_Sha256(benchmark::State& state) {
  auto body = payload();
  std::string_view view(*body);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sw::sha256(view.substr(0, 256ull << 20)));
    bytes += 256ull << 20;
  }
  state.counters["bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Download1GiB)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();
BENCHMARK(BM_Download1GiBTmpfs)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond)->Repetitions(5)->ReportAggregatesOnly(true);

}  // namespace

int main(int argc, char** argv) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  // targets.md: model download + sha256 verification from a loopback server ≥ 1 GiB/s.
  sw::bench::add_figure("BM_Download1GiB", "bytes", "models.download_verify_1gib", "GiB/s", kGiB,
                        1.0);
  sw::bench::add_figure("BM_Download1GiBTmpfs", "bytes", "models.download_verify_1gib_tmpfs",
                        "GiB/s", kGiB);
  sw::bench::add_figure("BM_Sha256", "bytes", "sha256.openssl_evp", "GiB/s", kGiB);
  return sw::bench::run_benchmarks(argc, argv);
}
