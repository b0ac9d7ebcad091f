#pragma once
// libespeak-ng, loaded when it is first needed (issue 19: an idle worker does not carry a TTS
// library, its PulseAudio/ALSA/X11 dependencies and its voice data: about 2.9 MiB of resident
// pages, measured with `worker_bench --smaps`). dlopen("libespeak-ng.so.1") once per process,
// then espeak_Initialize once; the handle is never closed (the library keeps global state).
// The types and signatures are those of <espeak-ng/speak_lib.h> (libespeak-ng-dev), which this
// file includes: the compiler checks every pointer against the header.
//
// Thread-safety: espeak_library() may be called from any thread; the first call loads. The
// library itself is not reentrant: callers serialise synthesis (EspeakEngine's lock).

#include <espeak-ng/speak_lib.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"

namespace sw::engines {

struct EspeakLibrary {
  decltype(&::espeak_SetSynthCallback) set_synth_callback = nullptr;
  decltype(&::espeak_SetVoiceByName) set_voice_by_name = nullptr;
  decltype(&::espeak_SetParameter) set_parameter = nullptr;
  decltype(&::espeak_Synth) synth = nullptr;
  decltype(&::espeak_Synchronize) synchronize = nullptr;
  decltype(&::espeak_Info) info = nullptr;
  std::uint32_t sample_rate = 0;  // Hz, what espeak_Initialize returned
};

// Why espeak-ng cannot work here, without loading it: after a load, that load's error (or
// nullopt); before, whether libespeak-ng.so.1 is in LD_LIBRARY_PATH, the build's libdir or the
// usual library directories, and its voice data in $ESPEAK_DATA_PATH/espeak-ng-data,
// <libdir>/espeak-ng-data (Debian) or <prefix>/share/espeak-ng-data (upstream's default). A few
// stat(2) calls: fine on the pool (the engine's unavailable()), not on the loop's hot path.
std::optional<std::string> espeak_absence();

// The loaded and initialised library. NotFound naming the loader's error when the library
// cannot be opened or lacks an entry point, or when it cannot initialise (its voice data,
// espeak-ng-data, missing). A failure is remembered: later calls return it without retrying.
Result<const EspeakLibrary*> espeak_library();

}  // namespace sw::engines
