#pragma once
// What a runner really holds once loaded, learned per runner key (program + model files + launch
// flags such as the context size: runner_pool.h's residency identity) and kept across restarts
// (issue 19, "admission that learns").
//
// Admission starts from an estimate (the GGUF header's weights + KV cache, the sd weights' size
// on disk, the studio's vramGbEstimate). Both errors cost: an over-estimate refuses jobs that
// would fit, an under-estimate lets a second job OOM the first. So once a runner for a key has
// served a request, its measured footprint (GPU memory the process holds where a GPU is used,
// else its peak resident set) replaces the estimate, with a margin for what grows later (a
// longer prompt's buffers): need = measured × (1 + kFootprintMargin).
//
// File: JSON `{"version":1,"footprints":{"<key>":{"gib":1.25,"measuredAt":"<RFC 3339>"}}}`, mode
// 0600, replaced atomically on change. Read at open with the size (1 MiB) and depth checked first;
// a file that is missing, unreadable or not of this shape is logged and started afresh (learning
// again is cheap, refusing to start is not); an entry that is not a figure in (0, 4096] GiB is
// logged by key and skipped. At most kFootprintMaxEntries keys: the oldest
// measurement goes first. A write that fails is logged; the figures stay in memory.
//
// Thread-safe. record() writes the file: call it off the I/O thread.

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace sw::engines {

inline constexpr double kFootprintMargin = 0.10;
inline constexpr std::size_t kFootprintMaxEntries = 512;
// A new measurement within this fraction of the known one changes nothing (no rewrite per job).
inline constexpr double kFootprintRewriteChange = 0.02;
// No runner process holds more (a 4 TiB figure is a damaged or hand-edited file): an entry above
// it is ignored with a log line, as one that is not a positive number is, instead of refusing
// every job for that model as needing more memory than any machine has.
inline constexpr double kFootprintMaxGib = 4096.0;

class FootprintBook {
 public:
  // Empty `file`: learned figures are kept in memory only.
  explicit FootprintBook(std::filesystem::path file = {});

  // The measured footprint (GiB) for `key`, if any.
  std::optional<double> learned_gib(const std::string& key) const;
  // What admission should charge for `key`: the measurement plus the margin, else `estimate_gib`.
  double need_gib(const std::string& key, double estimate_gib) const;
  // A measurement of `key`'s runner (GiB > 0); replaces the previous one. Returns true when the
  // known figure changed (and the file was rewritten, or tried).
  bool record(const std::string& key, double gib);
  std::size_t size() const;

 private:
  struct Entry {
    double gib = 0;
    std::string measured_at;  // RFC 3339, UTC
    std::uint64_t order = 0;  // recency, for eviction
  };
  void load();
  void save() const;  // with mutex_ held

  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::uint64_t next_order_ = 0;
};

}  // namespace sw::engines
