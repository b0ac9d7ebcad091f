#pragma once
// Structured logging facade over spdlog (house style C.2 §7).
//
// Each module owns one Logger with a stable target ("studio_worker::engine::multi"); a line is an
// event name plus key=value fields, so operators can filter by target (STUDIO_WORKER_LOG, same
// syntax as RUST_LOG) and grep by field. Thread-safe: loggers may be used from any thread.

#include <concepts>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"

namespace sw::log {

enum class Level { Trace = 0, Debug, Info, Warn, Error, Off };

std::string_view to_string(Level level);

// One key=value pair, rendered to text at the call site (before the level is checked): guard an
// expensive field with Logger::enabled().
struct Field {
  std::string_view key;
  std::string value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  template <class T>
  requires(std::integral<T> || std::floating_point<T>) &&
      (!std::same_as<T, bool>)Field(std::string_view k, T v)
      : key(k),
  value(fmt::format("{}", v)) {}
};

// A formatted event, as handed to capture sinks.
struct Record {
  Level level = Level::Info;
  std::string target;
  std::string event;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string line;  // "event k=v k2=\"v 2\"", what the text format prints after the target

  // The value of the first field named `key`, or nullptr.
  const std::string* field(std::string_view key) const;
};

class Logger {
 public:
  explicit Logger(std::string target);

  const std::string& target() const { return target_; }
  bool enabled(Level level) const;

  void log(Level level, std::string_view event, std::initializer_list<Field> fields) const;
  void trace(std::string_view event, std::initializer_list<Field> fields = {}) const {
    log(Level::Trace, event, fields);
  }
  void debug(std::string_view event, std::initializer_list<Field> fields = {}) const {
    log(Level::Debug, event, fields);
  }
  void info(std::string_view event, std::initializer_list<Field> fields = {}) const {
    log(Level::Info, event, fields);
  }
  void warn(std::string_view event, std::initializer_list<Field> fields = {}) const {
    log(Level::Warn, event, fields);
  }
  void error(std::string_view event, std::initializer_list<Field> fields = {}) const {
    log(Level::Error, event, fields);
  }

 private:
  std::string target_;
};

// A parsed filter in RUST_LOG syntax: comma-separated directives, each `level`, `target` (all
// levels) or `target=level`; the longest matching target prefix wins, else the bare level.
class Filter {
 public:
  static Result<Filter> parse(std::string_view spec);
  Level level_for(std::string_view target) const;

 private:
  Level default_level_ = Level::Info;
  std::vector<std::pair<std::string, Level>> directives_;  // sorted longest target first
};

enum class Format { Text, Json };

// Replaces the process-wide filter. Thread-safe.
void set_filter(Filter filter);
// Reads STUDIO_WORKER_LOG (default "info"); a malformed value is reported and the default kept.
void init_from_env();
void set_format(Format format);
// Flushes and releases spdlog; call as the last line of main.
void shutdown();

// Receives every record that passes the filter, on the logging thread. For tests and for the
// worker's log shipping; implementations must be thread-safe.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Record& record) = 0;
};
void add_sink(Sink* sink);
void remove_sink(Sink* sink);

// RAII capture of log records for tests: everything logged while it lives, optionally with the
// filter lowered to `level` for the duration. Thread-safe.
class Capture : public Sink {
 public:
  explicit Capture(Level level = Level::Trace);
  ~Capture() override;
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  void write(const Record& record) override;
  std::vector<Record> records() const;
  // Records whose event equals `event` (any target).
  std::vector<Record> find(std::string_view event) const;
  bool contains(std::string_view event) const { return !find(event).empty(); }

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace sw::log
