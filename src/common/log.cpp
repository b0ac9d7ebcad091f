#include "common/log.h"
#include "common/log_journal.h"

#include <fmt/chrono.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>  // SD_ERR etc.: macros only, nothing is linked
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <streambuf>

namespace sw::log {
namespace {

// std::cerr's lines prefixed "<3>" (SD_ERR): what the programs write there themselves is the
// reason they exit (a port in use, a config that does not parse), which `journalctl -p err` must
// show; without the prefix journald files it as info. Characters pass through unbuffered.
class JournalErrorBuffer : public std::streambuf {
 public:
  explicit JournalErrorBuffer(std::streambuf* to) : to_(to) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return to_->pubsync() == 0 ? 0 : c;
    if (line_start_ && to_->sputn("<3>", 3) != 3) return traits_type::eof();
    line_start_ = traits_type::to_char_type(c) == '\n';
    return to_->sputc(traits_type::to_char_type(c));
  }
  int sync() override { return to_->pubsync(); }

 private:
  std::streambuf* to_;
  bool line_start_ = true;
};

struct Registry {
  std::shared_mutex mutex;
  Filter filter = Filter::parse("info").value();
  std::optional<Level> capture_floor;  // a Capture lowering the filter
  int capture_floor_users = 0;
  std::vector<Sink*> sinks;
  Format format = Format::Text;
  bool journal = false;  // stderr is the journal: "<N>" prefixes, no timestamp of ours
  std::shared_ptr<spdlog::logger> out;

  Registry() {
    if (const char* stream = std::getenv("JOURNAL_STREAM"); stream != nullptr) {
      journal = journal_stream_names(stream, STDERR_FILENO);
    }
    if (journal) {
      // Never destroyed, like the registry: std::cerr may be written during exit.
      std::cerr.rdbuf(new JournalErrorBuffer(std::cerr.rdbuf()));
    }
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    out = std::make_shared<spdlog::logger>("studio_worker", std::move(sink));
    out->set_level(spdlog::level::trace);
    apply_pattern();
  }
  void apply_pattern() {
    if (format == Format::Json || journal) {
      out->set_pattern("%v");
    } else {
      // The level is written by log() from our own names: spdlog's are `warning` and `critical`,
      // which a five-column pattern field cut to `warni`.
      out->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc);
    }
  }
};

Registry& registry() {
  static Registry* instance = new Registry();  // never destroyed: loggers may run during exit
  return *instance;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::Trace: return spdlog::level::trace;
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warn: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
    case Level::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::optional<Level> parse_level(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "trace") return Level::Trace;
  if (lower == "debug") return Level::Debug;
  if (lower == "info") return Level::Info;
  if (lower == "warn" || lower == "warning") return Level::Warn;
  if (lower == "error") return Level::Error;
  if (lower == "off") return Level::Off;
  return std::nullopt;
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  return std::any_of(value.begin(), value.end(), [](unsigned char c) {
    return c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f;
  });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view journal_prefix(Level level) {
  switch (level) {
    case Level::Trace:
    case Level::Debug: return SD_DEBUG;
    case Level::Info: return SD_INFO;
    case Level::Warn: return SD_WARNING;
    case Level::Error: return SD_ERR;
    case Level::Off: break;
  }
  return SD_INFO;
}

bool journal_stream_names(std::string_view journal_stream, int fd) {
  const auto colon = journal_stream.find(':');
  if (colon == std::string_view::npos) return false;
  const auto number = [](std::string_view text, unsigned long long& out) {
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return !text.empty() && ec == std::errc() && ptr == end;
  };
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (!number(journal_stream.substr(0, colon), device) ||
      !number(journal_stream.substr(colon + 1), inode)) {
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == device &&
         static_cast<unsigned long long>(st.st_ino) == inode;
}

std::string_view to_string(Level level) {
  switch (level) {
    case Level::Trace: return "trace";
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
    case Level::Off: return "off";
  }
  return "info";
}

const std::string* Record::field(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return &v;
  }
  return nullptr;
}

Result<Filter> Filter::parse(std::string_view spec) {
  Filter filter;
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view directive = trim(spec.substr(start, comma - start));
    start = comma + 1;
    if (directive.empty()) continue;
    std::size_t eq = directive.find('=');
    if (eq == std::string_view::npos) {
      if (auto level = parse_level(directive)) {
        filter.default_level_ = *level;
      } else {
        // A bare target enables everything for it, as in RUST_LOG.
        filter.directives_.emplace_back(std::string(directive), Level::Trace);
      }
      continue;
    }
    std::string_view target = trim(directive.substr(0, eq));
    std::string_view level_text = trim(directive.substr(eq + 1));
    auto level = parse_level(level_text);
    if (target.empty() || !level) {
      return fail(Error::invalid_argument(
          "log filter directive \"{}\": expected target=level with level one of "
          "trace, debug, info, warn, error, off",
          directive));
    }
    filter.directives_.emplace_back(std::string(target), *level);
  }
  std::stable_sort(filter.directives_.begin(), filter.directives_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return filter;
}

Level Filter::level_for(std::string_view target) const {
  for (const auto& [prefix, level] : directives_) {
    if (target.starts_with(prefix)) return level;
  }
  return default_level_;
}

Logger::Logger(std::string target) : target_(std::move(target)) {}

namespace {
// What the operator's filter lets through for `target`, and the lower floor a test capture may
// set; callers hold the registry lock.
std::pair<Level, Level> thresholds(const Registry& reg, std::string_view target) {
  Level operator_level = reg.filter.level_for(target);
  Level effective = operator_level;
  if (reg.capture_floor && *reg.capture_floor < effective) effective = *reg.capture_floor;
  return {operator_level, effective};
}
}  // namespace

bool Logger::enabled(Level level) const {
  if (level == Level::Off) return false;
  Registry& reg = registry();
  std::shared_lock lock(reg.mutex);
  return level >= thresholds(reg, target_).second;
}

void Logger::log(Level level, std::string_view event, std::initializer_list<Field> fields) const {
  if (level == Level::Off) return;
  Registry& reg = registry();
  std::shared_lock lock(reg.mutex);
  const auto [operator_level, effective] = thresholds(reg, target_);
  if (level < effective) return;

  Record record;
  record.level = level;
  record.target = target_;
  record.event = std::string(event);
  record.fields.reserve(fields.size());
  std::string line(event);
  for (const Field& field : fields) {
    record.fields.emplace_back(std::string(field.key), field.value);
    line += ' ';
    line += field.key;
    line += '=';
    if (needs_quotes(field.value)) {
      line += nlohmann::json(field.value)
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      line += field.value;
    }
  }
  record.line = std::move(line);

  // The stderr output obeys the operator's filter even while a test capture lowers it.
  if (level >= operator_level) {
    if (reg.format == Format::Json) {
      nlohmann::json j;
      auto now = std::chrono::system_clock::now();
      j["ts"] =
          fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::milliseconds>(now));
      j["level"] = to_string(level);
      j["target"] = target_;
      j["event"] = record.event;
      for (const auto& [k, v] : record.fields) j[k] = v;
      const std::string_view prefix = reg.journal ? journal_prefix(level) : "";
      reg.out->log(to_spdlog(level), "{}{}", prefix,
                   j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      const std::string_view prefix = reg.journal ? journal_prefix(level) : "";
      reg.out->log(to_spdlog(level), "{}{:<5} {}: {}", prefix, to_string(level), target_,
                   record.line);
    }
  }
  for (Sink* sink : reg.sinks) sink->write(record);
}

void set_filter(Filter filter) {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.filter = std::move(filter);
}

void init_from_env() {
  (void)registry();  // decides the journal form now, before a program writes std::cerr
  const char* spec = std::getenv("STUDIO_WORKER_LOG");
  if (spec == nullptr || *spec == '\0') return;
  auto filter = Filter::parse(spec);
  if (!filter) {
    Logger("studio_worker::log")
        .warn("log.filter_invalid",
              {{"variable", "STUDIO_WORKER_LOG"}, {"error", filter.error().message}});
    return;
  }
  set_filter(std::move(*filter));
}

void set_format(Format format) {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.format = format;
  reg.apply_pattern();
}

void set_journal_output(bool on) {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.journal = on;
  reg.apply_pattern();
}

bool journal_output() {
  Registry& reg = registry();
  std::shared_lock lock(reg.mutex);
  return reg.journal;
}

void shutdown() {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.out->flush();
}

void add_sink(Sink* sink) {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.sinks.push_back(sink);
}

void remove_sink(Sink* sink) {
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  std::erase(reg.sinks, sink);
}

struct Capture::State {
  mutable std::mutex mutex;
  std::vector<Record> records;
  Level level = Level::Trace;
};

Capture::Capture(Level level) : state_(std::make_unique<State>()) {
  state_->level = level;
  Registry& reg = registry();
  std::unique_lock lock(reg.mutex);
  reg.sinks.push_back(this);
  ++reg.capture_floor_users;
  if (!reg.capture_floor || level < *reg.capture_floor) reg.capture_floor = level;
}

Capture::~Capture() {
  {
    Registry& reg = registry();
    std::unique_lock lock(reg.mutex);
    std::erase(reg.sinks, static_cast<Sink*>(this));
    if (--reg.capture_floor_users == 0) reg.capture_floor.reset();
  }
}

void Capture::write(const Record& record) {
  if (record.level < state_->level) return;
  std::lock_guard lock(state_->mutex);
  state_->records.push_back(record);
}

std::vector<Record> Capture::records() const {
  std::lock_guard lock(state_->mutex);
  return state_->records;
}

std::vector<Record> Capture::find(std::string_view event) const {
  std::lock_guard lock(state_->mutex);
  std::vector<Record> out;
  for (const Record& r : state_->records) {
    if (r.event == event) out.push_back(r);
  }
  return out;
}

}  // namespace sw::log
