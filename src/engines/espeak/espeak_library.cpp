#include "engines/espeak/espeak_library.h"

#include <dlfcn.h>

#include <mutex>
#include <optional>
#include <string>

#include "common/log.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::espeak");

// Debian's libespeak-ng1 (the SONAME the build links against would have named).
constexpr const char* kLibrary = "libespeak-ng.so.1";

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
    return fail(
        Error::not_found("espeak-ng is not usable here: {} has no `{}`", kLibrary, missing));
  }
  const int rate = initialize(AUDIO_OUTPUT_SYNCHRONOUS, 500, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    return fail(
        Error::not_found("libespeak-ng could not initialise (is espeak-ng-data installed?)"));
  }
  library.sample_rate = static_cast<std::uint32_t>(rate);
  kLog.info("espeak.loaded", {{"library", kLibrary}, {"sample_rate_hz", rate}});
  return &library;
}

}  // namespace

Result<const EspeakLibrary*> espeak_library() {
  static std::once_flag once;
  static std::optional<Result<const EspeakLibrary*>> loaded;
  std::call_once(once, [] { loaded = load(); });
  return *loaded;
}

}  // namespace sw::engines
