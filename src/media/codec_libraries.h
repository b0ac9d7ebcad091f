#pragma once
// Debian's codec libraries, each opened with dlopen when a codec first needs it (issue 19: an idle
// worker does not carry libpng, giflib, libwebp, libwebpmux, libsndfile and libsoxr, about
// 1.5 MiB of resident pages, measured with `worker_bench --smaps`). Private to src/media.
//
// One entry-point table per library, listing the functions src/media calls. Each pointer has the
// type of the library's own header (`decltype(&::fn)`, common/shared_library.h), which this file
// includes: the compiler checks every call against the declaration the build would have linked.
// A header's inline wrappers and macros are not entry points; callers write what they expand to
// through the table:
//   png_jmpbuf(p)                    *png_set_longjmp_fn(p, longjmp, sizeof(jmp_buf))
//   WebPConfigInit(c)                WebPConfigInitInternal(c, WEBP_PRESET_DEFAULT, 75.f,
//                                                           WEBP_ENCODER_ABI_VERSION)
//   WebPPictureInit(p)               WebPPictureInitInternal(p, WEBP_ENCODER_ABI_VERSION)
//   WebPAnimEncoderOptionsInit(o)    WebPAnimEncoderOptionsInitInternal(o, WEBP_MUX_ABI_VERSION)
//   WebPAnimEncoderNew(w, h, o)      WebPAnimEncoderNewInternal(w, h, o, WEBP_MUX_ABI_VERSION)
//   WebPDataClear(d)                 WebPFree(d->bytes), then WebPDataInit(d)
//
// Thread-safety: the loaders may be called from any thread; the first call of each loads its
// library, under a mutex, and every later call returns that outcome (a failure is not retried).
// The tables are immutable once loaded and the libraries are never closed.

#include <gif_lib.h>
#include <png.h>
#include <sndfile.h>
#include <soxr.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <string>

#include "common/error.h"
#include "common/shared_library.h"

// libpng16.so.16 (Debian's libpng16-16).
#define SW_PNG_ENTRY_POINTS(X)        \
  X(png_create_write_struct)          \
  X(png_create_info_struct)           \
  X(png_destroy_write_struct)         \
  X(png_set_longjmp_fn)               \
  X(png_set_write_fn)                 \
  X(png_get_io_ptr)                   \
  X(png_set_IHDR)                     \
  X(png_set_compression_level)        \
  X(png_write_info)                   \
  X(png_write_row)                    \
  X(png_write_end)                    \
  X(png_image_begin_read_from_memory) \
  X(png_image_finish_read)            \
  X(png_image_free)

// libgif.so.7 (libgif7).
#define SW_GIF_ENTRY_POINTS(X) \
  X(GifMakeMapObject)          \
  X(GifFreeMapObject)          \
  X(GifErrorString)            \
  X(EGifOpen)                  \
  X(EGifSetGifVersion)         \
  X(EGifPutScreenDesc)         \
  X(EGifPutExtensionLeader)    \
  X(EGifPutExtensionBlock)     \
  X(EGifPutExtensionTrailer)   \
  X(EGifGCBToExtension)        \
  X(EGifPutExtension)          \
  X(EGifPutImageDesc)          \
  X(EGifPutLine)               \
  X(EGifCloseFile)

// libwebp.so.7 (libwebp7).
#define SW_WEBP_ENTRY_POINTS(X) \
  X(WebPEncodeRGBA)             \
  X(WebPFree)                   \
  X(WebPConfigInitInternal)     \
  X(WebPPictureInitInternal)    \
  X(WebPPictureImportRGBA)      \
  X(WebPPictureFree)

// libwebpmux.so.3 (libwebpmux3): the animation encoder.
#define SW_WEBPMUX_ENTRY_POINTS(X)      \
  X(WebPAnimEncoderOptionsInitInternal) \
  X(WebPAnimEncoderNewInternal)         \
  X(WebPAnimEncoderAdd)                 \
  X(WebPAnimEncoderAssemble)            \
  X(WebPAnimEncoderGetError)            \
  X(WebPAnimEncoderDelete)

// libsndfile.so.1 (libsndfile1).
#define SW_SNDFILE_ENTRY_POINTS(X) \
  X(sf_open_virtual)               \
  X(sf_strerror)                   \
  X(sf_readf_float)                \
  X(sf_write_float)                \
  X(sf_write_short)                \
  X(sf_close)

// libsoxr.so.0 (libsoxr0).
#define SW_SOXR_ENTRY_POINTS(X) \
  X(soxr_io_spec)               \
  X(soxr_quality_spec)          \
  X(soxr_oneshot)

namespace sw::media {

struct PngApi {
  SW_PNG_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};
struct GifApi {
  SW_GIF_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};
struct WebpApi {
  SW_WEBP_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};
struct WebpMuxApi {
  SW_WEBPMUX_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};
struct SndfileApi {
  SW_SNDFILE_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};
struct SoxrApi {
  SW_SOXR_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER)
};

// Each library's table, every entry point bound. NotFound naming the library file, the loader's
// error (or the missing entry point) and the Debian package to install when it cannot be loaded,
// e.g. "PNG encoding and decoding is not available here: libpng16.so.16: cannot open shared
// object file: No such file or directory (install libpng16-16)".
Result<const PngApi*> png_api();
Result<const GifApi*> gif_api();
Result<const WebpApi*> webp_api();
Result<const WebpMuxApi*> webpmux_api();
Result<const SndfileApi*> sndfile_api();
Result<const SoxrApi*> soxr_api();

namespace detail {
// The loads behind the functions above, from `file` (a name searched as the dynamic loader
// searches, or a path) instead of the library's SONAME, and without the once-per-process memory:
// every call opens the library again (dlopen counts references) and, on success, keeps it open
// and logs `media.library_loaded`. For tests.
Result<PngApi> load_png_api(const std::string& file);
Result<GifApi> load_gif_api(const std::string& file);
Result<WebpApi> load_webp_api(const std::string& file);
Result<WebpMuxApi> load_webpmux_api(const std::string& file);
Result<SndfileApi> load_sndfile_api(const std::string& file);
Result<SoxrApi> load_soxr_api(const std::string& file);
}  // namespace detail

}  // namespace sw::media
