#include "support/sd_option_table.h"

#include <fstream>
#include <sstream>

namespace sw::testing {

std::optional<OptionTable> load_option_table(const std::filesystem::path& path,
                                             std::string* error) {
  std::ifstream in(path);
  if (!in) {
    if (error) *error = "cannot read " + path.string();
    return std::nullopt;
  }
  OptionTable table;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, arity;
    fields >> name >> arity;
    OptionArity parsed;
    if (arity == "value")
      parsed = OptionArity::Value;
    else if (arity == "switch")
      parsed = OptionArity::Switch;
    else if (arity == "exit")
      parsed = OptionArity::Exit;
    else {
      if (error)
        *error = path.string() + ":" + std::to_string(number) + ": bad line `" + line + "`";
      return std::nullopt;
    }
    table.options.emplace(name, parsed);
  }
  if (table.options.empty()) {
    if (error) *error = path.string() + " lists no option";
    return std::nullopt;
  }
  return table;
}

ParsedArgs parse_with_table(const OptionTable& table, const std::vector<std::string>& args) {
  ParsedArgs out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto it = table.options.find(arg);
    if (it == table.options.end()) {
      out.error = "error: unknown argument: " + arg;
      return out;
    }
    switch (it->second) {
      case OptionArity::Value:
        if (i + 1 >= args.size()) {
          out.error = "error: invalid parameter for argument: " + arg;
          return out;
        }
        out.items.emplace_back(arg, args[++i]);
        break;
      case OptionArity::Switch: out.items.emplace_back(arg, std::nullopt); break;
      case OptionArity::Exit: out.items.emplace_back(arg, std::nullopt); return out;
    }
  }
  return out;
}

std::optional<std::string> ParsedArgs::value(std::initializer_list<std::string_view> names) const {
  std::optional<std::string> found;
  for (const auto& [name, value] : items) {
    for (std::string_view wanted : names) {
      if (name == wanted) found = value;
    }
  }
  return found;
}

bool ParsedArgs::has(std::initializer_list<std::string_view> names) const {
  for (const auto& item : items) {
    for (std::string_view wanted : names) {
      if (item.first == wanted) return true;
    }
  }
  return false;
}

std::filesystem::path sdcpp_options_dir() {
  return SW_SDCPP_OPTIONS_DIR;
}

std::optional<std::string> check_model_files(const ParsedArgs& parsed, std::string_view program) {
  if (!parsed.value({"-m", "--model"}) && !parsed.value({"--diffusion-model"})) {
    return "error: the following arguments are required: model_path/diffusion_model";
  }
  const std::pair<std::string_view, std::string_view> model_flags[] = {
      {"-m", "--model"},
      {"--diffusion-model", "--diffusion-model"},
      {"--vae", "--vae"},
      {"--llm", "--llm"},
      {"--llm_vision", "--llm_vision"}};
  for (const auto& [short_name, long_name] : model_flags) {
    if (auto path = parsed.value({short_name, long_name});
        path && !std::filesystem::is_regular_file(*path)) {
      return std::string(program) + ": cannot open " + *path + "\nnew_sd_ctx_t failed";
    }
  }
  return std::nullopt;
}

}  // namespace sw::testing
