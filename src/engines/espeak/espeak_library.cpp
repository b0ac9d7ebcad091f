#include "engines/espeak/espeak_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

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

template <class Fn>
bool bind(void* handle, const char* symbol, Fn& into, std::string& missing) {
  void* address = dlsym(handle, symbol);
  if (address == nullptr) {
    missing = symbol;
    return false;
  }
  into = reinterpret_cast<Fn>(address);
  return true;
}

Result<const EspeakLibrary*> load() {
  static EspeakLibrary library;
  void* handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return fail(Error::not_found("espeak-ng is not usable here: {} (install libespeak-ng1)",
                                 why != nullptr ? why : kLibrary));
  }
  decltype(&::espeak_Initialize) initialize = nullptr;
  std::string missing;
  const bool bound = bind(handle, "espeak_Initialize", initialize, missing) &&
                     bind(handle, "espeak_SetSynthCallback", library.set_synth_callback, missing) &&
                     bind(handle, "espeak_SetVoiceByName", library.set_voice_by_name, missing) &&
                     bind(handle, "espeak_SetParameter", library.set_parameter, missing) &&
                     bind(handle, "espeak_Synth", library.synth, missing) &&
                     bind(handle, "espeak_Synchronize", library.synchronize, missing) &&
                     bind(handle, "espeak_Info", library.info, missing);
  if (!bound) {
    dlclose(handle);
    return fail(
        Error::not_found("espeak-ng is not usable here: {} has no `{}`", kLibrary, missing));
  }
  const int rate = initialize(AUDIO_OUTPUT_SYNCHRONOUS, 500, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    dlclose(handle);
    return fail(
        Error::not_found("libespeak-ng could not initialise (is espeak-ng-data installed?)"));
  }
  library.sample_rate = static_cast<std::uint32_t>(rate);
  kLog.info("espeak.loaded", {{"library", kLibrary}, {"sample_rate_hz", rate}});
  return &library;
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
