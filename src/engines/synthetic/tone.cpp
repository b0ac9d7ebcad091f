#include "engines/synthetic/tone.h"

#include "engines/synthetic/words.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace sw::engines::synthetic {
namespace {

// Characters counted as UTF-8 code points, so "é" is one character of speech, not two.
std::size_t count_characters(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

double speech_seconds(std::string_view text, double speed) {
  double seconds = std::max(kMinSpeechSeconds,
                            kSecondsPerCharacter * static_cast<double>(count_characters(text)));
  return seconds / speed;
}

Result<std::vector<std::int16_t>> render_speech(std::string_view text, double speed,
                                                const Sha256Digest& seed) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return fail(Error::invalid_argument("text: must contain something to say"));
  }
  if (!(speed >= 0.25 && speed <= 4.0)) {
    return fail(Error::invalid_argument("speed: {} is outside 0.25..4", speed));
  }
  const std::size_t characters = count_characters(text);
  if (characters > kMaxSpeechCharacters) {
    return fail(
        Error::invalid_argument("text: {} characters exceed the synthetic engine's limit "
                                "of {}",
                                characters, kMaxSpeechCharacters));
  }

  const double seconds = speech_seconds(text, speed);
  const auto total = static_cast<std::size_t>(std::llround(seconds * kSpeechSampleRate));
  std::vector<std::int16_t> samples(total, 0);

  // Time is shared out per byte; a word's tone lasts as long as its bytes, spaces are silence.
  const double samples_per_byte = static_cast<double>(total) / static_cast<double>(text.size());
  const double base_pitch = 110.0 + 60.0 * (seed[0] / 255.0);
  constexpr double kTau = 2 * std::numbers::pi;
  constexpr double kAmplitude = 0.4;
  const auto ramp = static_cast<std::size_t>(0.01 * kSpeechSampleRate);  // 10 ms, no clicks

  for (std::string_view word : split_words(text)) {
    const auto start = static_cast<std::size_t>(word.data() - text.data());
    const std::size_t end = start + word.size();

    const auto digest = sha256(word);
    const double pitch = base_pitch * (1.0 + 0.6 * (digest[0] / 255.0));
    const double glide = 0.85 + 0.3 * (digest[1] / 255.0);  // intonation across the word
    const auto first = static_cast<std::size_t>(static_cast<double>(start) * samples_per_byte);
    const auto last =
        std::min(total, static_cast<std::size_t>(static_cast<double>(end) * samples_per_byte));
    const std::size_t length = last > first ? last - first : 0;
    double angle = 0;
    for (std::size_t i = 0; i < length; ++i) {
      double progress = static_cast<double>(i) / static_cast<double>(length);
      double frequency = pitch * (1.0 + (glide - 1.0) * progress);
      angle += kTau * frequency / kSpeechSampleRate;
      double envelope = 1.0;
      if (i < ramp) envelope = static_cast<double>(i) / ramp;
      if (length - i < ramp) envelope = std::min(envelope, static_cast<double>(length - i) / ramp);
      // Fundamental plus two harmonics: a buzzy, voice-like timbre rather than a pure beep.
      double value = 0.7 * std::sin(angle) + 0.2 * std::sin(2 * angle) + 0.1 * std::sin(3 * angle);
      samples[first + i] = static_cast<std::int16_t>(
          std::lround(std::clamp(kAmplitude * envelope * value, -1.0, 1.0) * 32767.0));
    }
  }
  return samples;
}

}  // namespace sw::engines::synthetic
