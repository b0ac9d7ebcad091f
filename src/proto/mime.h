#pragma once
// The one table of result extensions and their MIME types: the worker labels its upload part and
// its local API answers with it, the studio serves stored results with it. Thread-safe (constant).
//
// It covers every format an engine can produce: images png, webp, gif (and jpg/jpeg), audio wav,
// mp3, flac, ogg, opus, video mp4, webm (animated webp and gif under their image types), and the
// JSON and text results. The reference's upload table (reference-worker.md §2.3) stops at png,
// webp, gif, wav, mp3 and mp4 and labels flac, ogg and opus application/octet-stream; its local
// API table (§4.8) has the audio ones, which this table follows: Ogg Opus is audio/ogg (RFC 7845
// §9), FLAC audio/flac. Toward a reference studio only the value of the upload part's type
// changes for those three (no new part or field); this studio reads the `ext` part.

#include <string>
#include <string_view>

namespace sw::proto {

// The MIME type of `ext` (case-insensitive, no dot); application/octet-stream when the table
// does not know it.
std::string mime_for_ext(std::string_view ext);

}  // namespace sw::proto
