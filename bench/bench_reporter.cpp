#include "bench_reporter.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace sw::bench {
namespace {

struct Figure {
  std::string benchmark;
  std::string counter;
  std::string name;
  std::string unit;
  double scale;
  double at_least;
};

int& misses() {
  static int count = 0;
  return count;
}
int& errors() {
  static int count = 0;
  return count;
}

std::vector<Figure>& figures() {
  static std::vector<Figure> all;
  return all;
}

class FigureReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) {
        // A failed run's numbers measure the failure: report it, print no figure.
        std::fprintf(stderr, "%s failed: %s\n", run.benchmark_name().c_str(),
                     run.error_message.c_str());
        ++errors();
        continue;
      }
      if (run.aggregate_name != "median") continue;
      for (const Figure& figure : figures()) {
        if (run.run_name.function_name != figure.benchmark) continue;
        auto it = run.counters.find(figure.counter);
        if (it == run.counters.end()) continue;
        double value = it->second.value / figure.scale;
        // Plain digits for scripts and humans: no exponent, three significant decimals below 100.
        std::printf(value >= 100 ? "%s: %.0f %s\n" : "%s: %.3g %s\n", figure.name.c_str(), value,
                    figure.unit.c_str());
        if (figure.at_least > 0 && value < figure.at_least) {
          std::printf("MISS: %s %.3g < %.3g %s (targets.md)\n", figure.name.c_str(), value,
                      figure.at_least, figure.unit.c_str());
          ++misses();
        }
      }
    }
    std::fflush(stdout);
  }
};

}  // namespace

void add_figure(std::string benchmark, std::string counter, std::string name, std::string unit,
                double scale, double at_least) {
  figures().push_back({std::move(benchmark), std::move(counter), std::move(name), std::move(unit),
                       scale, at_least});
}

int run_benchmarks(int argc, char** argv) {
  // --check is ours: take it out before Google Benchmark reads the rest.
  bool check = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  FigureReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (errors() > 0) return 1;
  return check && misses() > 0 ? 2 : 0;
}

}  // namespace sw::bench
