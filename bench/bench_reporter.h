#pragma once
// Google Benchmark glue: every benchmark runs 5 repetitions and reports the median of each
// counter as `<figure name>: <value> <unit>`, one line per figure, for scripts to read.

#include <benchmark/benchmark.h>

#include <string>

namespace sw::bench {

// Declares a rate figure for the report: `counter` is a benchmark counter name (set with
// kIsRate), printed as `<name>: <value> <unit>` after dividing by `scale`. `at_least`: the
// targets.md figure it must reach, checked under --check (0: none).
void add_figure(std::string benchmark, std::string counter, std::string name, std::string unit,
                double scale = 1.0, double at_least = 0);

// Runs every registered benchmark and prints the figures. Returns main's exit code: 1 when a
// benchmark reported an error (its figures are not printed), 2 under `--check` when a figure
// misses its target (a `MISS:` line each), else 0.
int run_benchmarks(int argc, char** argv);

}  // namespace sw::bench
