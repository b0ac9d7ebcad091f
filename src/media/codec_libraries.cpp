#include "media/codec_libraries.h"

#include <mutex>
#include <optional>

#include "common/log.h"

namespace sw::media {
namespace {

const log::Logger kLog("studio_worker::media");

// A library: the SONAME the build would have linked, what it does for the worker and the Debian
// package that installs it (both for the error message).
struct Library {
  const char* soname;
  const char* purpose;
  const char* package;
};
constexpr Library kPng{"libpng16.so.16", "PNG encoding and decoding", "libpng16-16"};
constexpr Library kGif{"libgif.so.7", "GIF encoding", "libgif7"};
constexpr Library kWebp{"libwebp.so.7", "WebP encoding", "libwebp7"};
constexpr Library kWebpMux{"libwebpmux.so.3", "animated WebP encoding", "libwebpmux3"};
constexpr Library kSndfile{"libsndfile.so.1", "audio decoding and encoding", "libsndfile1"};
constexpr Library kSoxr{"libsoxr.so.0", "audio resampling", "libsoxr0"};

Error unusable(const Library& about, const std::string& why) {
  return Error::not_found("{} is not available here: {} (install {})", about.purpose, why,
                          about.package);
}

// Opens `file`, binds every entry point of `Api` with `bind_all(library, table)` and keeps the
// library open (its functions stay bound in the table for the life of the process).
template <class Api, class BindAll>
Result<Api> load(const std::string& file, const Library& about, BindAll bind_all) {
  auto library = SharedLibrary::open(file);
  if (!library) return fail(unusable(about, library.error().message));
  Api table;
  const Status bound = bind_all(*library, table);
  if (!bound) return fail(unusable(about, bound.error().message));
  library->keep_open();
  kLog.info("media.library_loaded", {{"library", file}, {"purpose", about.purpose}});
  return table;
}

// The first call loads `soname` with `load`; every call returns that outcome. One mutex and one
// outcome per table type.
template <class Api>
Result<const Api*> load_once(Result<Api> (*load)(const std::string&), const Library& about) {
  static std::mutex mutex;
  static std::optional<Result<Api>> outcome;
  std::lock_guard lock(mutex);
  if (!outcome) outcome = load(about.soname);
  if (!*outcome) return fail(outcome->error());
  return &**outcome;
}

}  // namespace

namespace detail {

Result<PngApi> load_png_api(const std::string& file) {
  return load<PngApi>(file, kPng, [](const SharedLibrary& library, PngApi& table) {
    Status bound;
    SW_PNG_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

Result<GifApi> load_gif_api(const std::string& file) {
  return load<GifApi>(file, kGif, [](const SharedLibrary& library, GifApi& table) {
    Status bound;
    SW_GIF_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

Result<WebpApi> load_webp_api(const std::string& file) {
  return load<WebpApi>(file, kWebp, [](const SharedLibrary& library, WebpApi& table) {
    Status bound;
    SW_WEBP_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

Result<WebpMuxApi> load_webpmux_api(const std::string& file) {
  return load<WebpMuxApi>(file, kWebpMux, [](const SharedLibrary& library, WebpMuxApi& table) {
    Status bound;
    SW_WEBPMUX_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

Result<SndfileApi> load_sndfile_api(const std::string& file) {
  return load<SndfileApi>(file, kSndfile, [](const SharedLibrary& library, SndfileApi& table) {
    Status bound;
    SW_SNDFILE_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

Result<SoxrApi> load_soxr_api(const std::string& file) {
  return load<SoxrApi>(file, kSoxr, [](const SharedLibrary& library, SoxrApi& table) {
    Status bound;
    SW_SOXR_ENTRY_POINTS(SW_BIND_ENTRY_POINT)
    return bound;
  });
}

}  // namespace detail

Result<const PngApi*> png_api() {
  return load_once(&detail::load_png_api, kPng);
}
Result<const GifApi*> gif_api() {
  return load_once(&detail::load_gif_api, kGif);
}
Result<const WebpApi*> webp_api() {
  return load_once(&detail::load_webp_api, kWebp);
}
Result<const WebpMuxApi*> webpmux_api() {
  return load_once(&detail::load_webpmux_api, kWebpMux);
}
Result<const SndfileApi*> sndfile_api() {
  return load_once(&detail::load_sndfile_api, kSndfile);
}
Result<const SoxrApi*> soxr_api() {
  return load_once(&detail::load_soxr_api, kSoxr);
}

}  // namespace sw::media
