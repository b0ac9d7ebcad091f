#pragma once
// Procedural pictures for the synthetic engine: a gradient, soft blobs and interference stripes,
// all derived from a digest, so different prompts give visibly different pictures and the same
// prompt always gives the same one. Pure functions; thread-safe.

#include "common/sha256.h"
#include "media/image.h"

namespace sw::engines::synthetic {

// `phase` in [0, 1) animates the picture (blobs orbit, stripes drift); 0 for stills.
media::RgbaImage render_picture(const Sha256Digest& seed, std::uint32_t width, std::uint32_t height,
                                double phase = 0.0);

// A small deterministic generator (splitmix64) seeded from a digest.
class SeededRandom {
 public:
  explicit SeededRandom(const Sha256Digest& seed);
  std::uint64_t next();
  double unit();  // [0, 1)

 private:
  std::uint64_t state_;
};

}  // namespace sw::engines::synthetic
