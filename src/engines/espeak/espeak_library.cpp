#include "engines/espeak/espeak_library.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/shared_library.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::espeak");

// Debian's libespeak-ng1 (the SONAME the build links against would have named).
constexpr const char* kLibrary = "libespeak-ng.so.1";
#ifndef SW_ESPEAK_LIBDIR
#define SW_ESPEAK_LIBDIR "/usr/lib"
#endif

std::mutex& load_mutex() {
  static std::mutex mutex;
  return mutex;
}
// The outcome of the one load, once it has run (under load_mutex).
std::optional<Result<const EspeakLibrary*>>& loaded() {
  static std::optional<Result<const EspeakLibrary*>> outcome;
  return outcome;
}

Result<const EspeakLibrary*> load() {
  static EspeakLibrary table;
  auto library = SharedLibrary::open(kLibrary);
  if (!library) {
    return fail(Error::not_found("espeak-ng is not usable here: {} (install libespeak-ng1)",
                                 library.error().message));
  }
  decltype(&::espeak_Initialize) initialize = nullptr;
  Status bound = library->bind("espeak_Initialize", initialize);
  if (bound) bound = library->bind("espeak_SetSynthCallback", table.set_synth_callback);
  if (bound) bound = library->bind("espeak_SetVoiceByName", table.set_voice_by_name);
  if (bound) bound = library->bind("espeak_SetParameter", table.set_parameter);
  if (bound) bound = library->bind("espeak_Synth", table.synth);
  if (bound) bound = library->bind("espeak_Synchronize", table.synchronize);
  if (bound) bound = library->bind("espeak_Info", table.info);
  if (!bound) {
    return fail(Error::not_found("espeak-ng is not usable here: {}", bound.error().message));
  }
  const int rate = initialize(AUDIO_OUTPUT_SYNCHRONOUS, 500, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    return fail(
        Error::not_found("libespeak-ng could not initialise (is espeak-ng-data installed?)"));
  }
  library->keep_open();  // espeak keeps global state; its functions stay bound in `table`
  table.sample_rate = static_cast<std::uint32_t>(rate);
  kLog.info("espeak.loaded", {{"library", kLibrary}, {"sample_rate_hz", rate}});
  return &table;
}

}  // namespace

Result<const EspeakLibrary*> espeak_library() {
  std::lock_guard lock(load_mutex());
  if (!loaded()) loaded() = load();
  return *loaded();
}

std::optional<std::string> espeak_absence() {
  {
    std::lock_guard lock(load_mutex());
    if (loaded()) {
      if (*loaded()) return std::nullopt;
      return loaded()->error().message;
    }
  }
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* paths = std::getenv("LD_LIBRARY_PATH"); paths != nullptr) {
    std::string_view rest(paths);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {SW_ESPEAK_LIBDIR, "/usr/local/lib", "/usr/lib", "/lib"}) {
    dirs.emplace_back(dir);
  }
  std::error_code ec;
  std::optional<fs::path> libdir;
  for (const auto& dir : dirs) {
    if (fs::exists(dir / kLibrary, ec)) {
      libdir = dir;
      break;
    }
  }
  if (!libdir) {
    return fmt::format("{} is not installed (install libespeak-ng1)", kLibrary);
  }
  std::vector<fs::path> data;
  if (const char* path = std::getenv("ESPEAK_DATA_PATH"); path != nullptr && *path != '\0') {
    data.push_back(fs::path(path) / "espeak-ng-data");
  }
  data.push_back(*libdir / "espeak-ng-data");
  data.push_back(libdir->parent_path() / "share" / "espeak-ng-data");
  data.push_back("/usr/share/espeak-ng-data");
  for (const auto& dir : data) {
    if (fs::is_directory(dir, ec)) return std::nullopt;
  }
  return fmt::format("espeak-ng's voice data is missing (looked in {}; install espeak-ng-data)",
                     data.front().string());
}

}  // namespace sw::engines
