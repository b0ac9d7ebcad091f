#pragma once
// stable-diffusion.cpp's command-line option tables as test fixtures
// (tests/unit/engines/sdcpp/{sd-cli,sd-server}.options: names read from the upstream source at a
// pinned commit, see the files' headers), and an argv parse with upstream parse_options()'s rules:
// an argument that is no option's short or long name is refused ("error: unknown argument: X"); a
// `value` option takes the next argument ("error: invalid parameter for argument: X" when there is
// none); a `switch` takes none. Used by the fake sd-cli / sd-server (so a flag the worker passes
// that upstream would refuse makes the fake refuse it too) and by the argv unit tests. No shared
// state; thread-safe.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sw::testing {

enum class OptionArity { Value, Switch, Exit };

struct OptionTable {
  std::map<std::string, OptionArity, std::less<>> options;  // name → arity
};

// Reads a fixture (`name arity` per line, `#` comments). nullopt and `error` set on a bad file.
std::optional<OptionTable> load_option_table(const std::filesystem::path& path, std::string* error);

// The argv after the program, as upstream reads it: (option, value) in order; value empty for a
// switch. An unknown argument or a value option at the end gives upstream's error line instead.
struct ParsedArgs {
  std::vector<std::pair<std::string, std::optional<std::string>>> items;
  std::optional<std::string> error;

  // The last value given under any of `names` (upstream keeps the last), if any.
  std::optional<std::string> value(std::initializer_list<std::string_view> names) const;
  bool has(std::initializer_list<std::string_view> names) const;
};
ParsedArgs parse_with_table(const OptionTable& table, const std::vector<std::string>& args);

// What both upstream programs do before anything else (new_sd_ctx): a model or diffusion model
// must be named, and every model file named must open. nullopt when they do, else the error
// lines upstream prints (`program` names the fake in them).
std::optional<std::string> check_model_files(const ParsedArgs& parsed, std::string_view program);

// The fixture directory (compile definition SW_SDCPP_OPTIONS_DIR).
std::filesystem::path sdcpp_options_dir();

}  // namespace sw::testing
