#pragma once
// Synthetic speech-like audio: one voiced tone per word, pauses between words, duration from
// the text length. Pure functions; thread-safe.

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/sha256.h"

namespace sw::engines::synthetic {

inline constexpr std::uint32_t kSpeechSampleRate = 22050;
inline constexpr double kSecondsPerCharacter = 0.06;
inline constexpr double kMinSpeechSeconds = 0.5;
inline constexpr std::size_t kMaxSpeechCharacters = 10000;

// Seconds of audio for `text` at `speed` (1 = normal): max(0.5, 0.06 × characters) / speed.
double speech_seconds(std::string_view text, double speed);

// Mono PCM16 at kSpeechSampleRate. Errors: empty text, speed outside 0.25..4, text over
// kMaxSpeechCharacters.
Result<std::vector<std::int16_t>> render_speech(std::string_view text, double speed,
                                                const Sha256Digest& seed);

}  // namespace sw::engines::synthetic
