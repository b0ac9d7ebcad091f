#include "bench_reporter.h"

#include <cstdio>
#include <vector>

namespace sw::bench {
namespace {

struct Figure {
  std::string benchmark;
  std::string counter;
  std::string name;
  std::string unit;
  double scale;
};

std::vector<Figure>& figures() {
  static std::vector<Figure> all;
  return all;
}

class FigureReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.aggregate_name != "median") continue;
      for (const Figure& figure : figures()) {
        if (run.run_name.function_name != figure.benchmark) continue;
        auto it = run.counters.find(figure.counter);
        if (it == run.counters.end()) continue;
        double value = it->second.value / figure.scale;
        // Plain digits for scripts and humans: no exponent, three significant decimals below 100.
        std::printf(value >= 100 ? "%s: %.0f %s\n" : "%s: %.3g %s\n", figure.name.c_str(), value,
                    figure.unit.c_str());
      }
    }
    std::fflush(stdout);
  }
};

}  // namespace

void add_figure(std::string benchmark, std::string counter, std::string name, std::string unit,
                double scale) {
  figures().push_back(
      {std::move(benchmark), std::move(counter), std::move(name), std::move(unit), scale});
}

int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  FigureReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace sw::bench
