#include "engines/runner/footprint_book.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/file_io.h"
#include "common/json_text.h"
#include "common/log.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::runner::footprint");
constexpr std::uint64_t kMaxFileBytes = 1u << 20;
constexpr int kFileVersion = 1;

}  // namespace

FootprintBook::FootprintBook(std::filesystem::path file) : file_(std::move(file)) {
  if (!file_.empty()) load();
}

void FootprintBook::load() {
  std::error_code ec;
  if (!std::filesystem::exists(file_, ec)) return;
  auto started_afresh = [&](const std::string& why) {
    kLog.warn("footprint.file_ignored", {{"path", file_.string()}, {"error", why}});
    entries_.clear();
  };
  auto text = read_file(file_, kMaxFileBytes);
  if (!text) return started_afresh(text.error().message);
  auto doc = parse_json(*text, file_.filename().string(), JsonLimits{kMaxFileBytes, 8});
  if (!doc) return started_afresh(doc.error().message);
  // Checked type by type: nlohmann's value() throws on a mistyped field.
  const bool shaped = doc->is_object() && doc->contains("version") &&
                      (*doc)["version"].is_number_integer() &&
                      (*doc)["version"].get<std::int64_t>() == kFileVersion &&
                      doc->contains("footprints") && (*doc)["footprints"].is_object();
  if (!shaped) {
    return started_afresh("not a version-1 footprints file");
  }
  // Recency from the measurement times (RFC 3339 UTC sorts as text): the oldest go first.
  std::vector<std::pair<std::string, Entry>> read;
  for (const auto& [key, value] : (*doc)["footprints"].items()) {
    auto skipped = [&](std::string_view why) {
      kLog.warn("footprint.entry_ignored",
                {{"path", file_.string()}, {"key", key.substr(0, 200)}, {"error", why}});
    };
    if (key.empty() || !value.is_object() || !value.contains("gib") || !value["gib"].is_number()) {
      skipped("not an object with a numeric `gib`");
      continue;
    }
    const double gib = value["gib"].get<double>();
    if (!std::isfinite(gib) || gib <= 0 || gib > kFootprintMaxGib) {
      skipped(fmt::format("gib {} is not in (0, {}]", gib, kFootprintMaxGib));
      continue;
    }
    std::string measured_at;
    if (value.contains("measuredAt") && value["measuredAt"].is_string()) {
      measured_at = value["measuredAt"].get<std::string>();
    }
    read.emplace_back(key, Entry{gib, std::move(measured_at), 0});
  }
  std::sort(read.begin(), read.end(), [](const auto& a, const auto& b) {
    return a.second.measured_at < b.second.measured_at;
  });
  if (read.size() > kFootprintMaxEntries) {
    read.erase(read.begin(), read.end() - static_cast<std::ptrdiff_t>(kFootprintMaxEntries));
  }
  for (auto& [key, entry] : read) {
    entry.order = ++next_order_;
    entries_[key] = std::move(entry);
  }
  kLog.info("footprint.loaded", {{"path", file_.string()}, {"models", entries_.size()}});
}

std::optional<double> FootprintBook::learned_gib(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.gib;
}

double FootprintBook::need_gib(const std::string& key, double estimate_gib) const {
  if (auto learned = learned_gib(key)) return *learned * (1.0 + kFootprintMargin);
  return estimate_gib;
}

std::size_t FootprintBook::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

bool FootprintBook::record(const std::string& key, double gib) {
  if (key.empty() || !std::isfinite(gib) || gib <= 0 || gib > kFootprintMaxGib) return false;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end() &&
      std::abs(it->second.gib - gib) <= it->second.gib * kFootprintRewriteChange) {
    it->second.order = ++next_order_;
    return false;
  }
  const double before = it == entries_.end() ? 0.0 : it->second.gib;
  entries_[key] = Entry{gib, format_rfc3339_millis(unix_millis_now()), ++next_order_};
  while (entries_.size() > kFootprintMaxEntries) {
    auto oldest = std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
    entries_.erase(oldest);
  }
  kLog.info("footprint.learned",
            {{"key", key}, {"gib", gib}, {"previous_gib", before}, {"path", file_.string()}});
  save();
  return true;
}

void FootprintBook::save() const {
  if (file_.empty()) return;
  // Oldest first, so that a reload keeps the recency order.
  std::vector<std::pair<std::string, const Entry*>> ordered;
  ordered.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) ordered.emplace_back(key, &entry);
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.second->order < b.second->order; });
  nlohmann::ordered_json footprints = nlohmann::ordered_json::object();
  for (const auto& [key, entry] : ordered) {
    footprints[key] = {{"gib", entry->gib}, {"measuredAt", entry->measured_at}};
  }
  const nlohmann::ordered_json doc = {{"version", kFileVersion}, {"footprints", footprints}};
  auto written =
      write_file_atomically(file_, doc.dump(2) + "\n", Durability::RenameOnly, kPrivateFileMode);
  if (!written) {
    kLog.warn("footprint.not_saved",
              {{"path", file_.string()}, {"error", written.error().message}});
  }
}

}  // namespace sw::engines
