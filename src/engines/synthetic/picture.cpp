#include "engines/synthetic/picture.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace sw::engines::synthetic {
namespace {

struct Colour {
  double r, g, b;
};

struct Blob {
  double cx, cy, radius, orbit, orbit_phase;
  Colour colour;
};

// Saturated colours read better than uniform RGB noise: pick a hue, fixed-ish saturation/value.
Colour hsv(double h, double s, double v) {
  h = std::fmod(h, 1.0) * 6.0;
  int sector = static_cast<int>(h);
  double f = h - sector;
  double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (sector % 6) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

double smoothstep(double edge0, double edge1, double x) {
  double t = std::clamp((x - edge0) / (edge1 - edge0), 0.0, 1.0);
  return t * t * (3 - 2 * t);
}

std::uint8_t to_byte(double v) {
  return static_cast<std::uint8_t>(std::clamp(v, 0.0, 1.0) * 255.0 + 0.5);
}

}  // namespace

SeededRandom::SeededRandom(const Sha256Digest& seed) : state_(0) {
  for (int i = 0; i < 8; ++i) state_ = (state_ << 8) | seed[static_cast<std::size_t>(i)];
  state_ ^= 0x9e3779b97f4a7c15ULL;
}

std::uint64_t SeededRandom::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double SeededRandom::unit() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

media::RgbaImage render_picture(const Sha256Digest& seed, std::uint32_t width, std::uint32_t height,
                                double phase) {
  constexpr double kTau = 2 * std::numbers::pi;
  SeededRandom rng(seed);
  const double base_hue = rng.unit();
  const Colour top = hsv(base_hue, 0.55 + 0.3 * rng.unit(), 0.35 + 0.4 * rng.unit());
  const Colour bottom = hsv(base_hue + 0.25 + 0.5 * rng.unit(), 0.6, 0.25 + 0.5 * rng.unit());
  const double angle = rng.unit() * kTau;
  const double dx = std::cos(angle), dy = std::sin(angle);

  std::vector<Blob> blobs(3 + rng.next() % 5);
  for (Blob& blob : blobs) {
    blob.cx = 0.1 + 0.8 * rng.unit();
    blob.cy = 0.1 + 0.8 * rng.unit();
    blob.radius = 0.08 + 0.25 * rng.unit();
    blob.orbit = 0.04 + 0.1 * rng.unit();
    blob.orbit_phase = rng.unit() * kTau;
    blob.colour = hsv(base_hue + rng.unit(), 0.65 + 0.3 * rng.unit(), 0.75 + 0.25 * rng.unit());
  }
  const double stripe_fx = (2 + 10 * rng.unit()) * kTau;
  const double stripe_fy = (2 + 10 * rng.unit()) * kTau;
  const double stripe_phase = rng.unit() * kTau;

  // Blob positions for this phase, in pixels, computed once per frame.
  const double scale = std::min(width, height);
  struct Placed {
    double x, y, r;
    Colour colour;
  };
  std::vector<Placed> placed;
  placed.reserve(blobs.size());
  for (const Blob& blob : blobs) {
    double a = blob.orbit_phase + phase * kTau;
    placed.push_back({(blob.cx + blob.orbit * std::cos(a)) * width,
                      (blob.cy + blob.orbit * std::sin(a)) * height, blob.radius * scale,
                      blob.colour});
  }

  media::RgbaImage image(width, height);
  for (std::uint32_t y = 0; y < height; ++y) {
    std::uint8_t* px = image.row(y);
    const double v = (y + 0.5) / height;
    for (std::uint32_t x = 0; x < width; ++x, px += 4) {
      const double u = (x + 0.5) / width;
      double t = std::clamp(0.5 + 0.5 * ((u - 0.5) * dx + (v - 0.5) * dy) * 1.4, 0.0, 1.0);
      Colour c{top.r + (bottom.r - top.r) * t, top.g + (bottom.g - top.g) * t,
               top.b + (bottom.b - top.b) * t};
      for (const Placed& blob : placed) {
        double ddx = x + 0.5 - blob.x, ddy = y + 0.5 - blob.y;
        double dist = std::sqrt(ddx * ddx + ddy * ddy);
        double alpha = 0.85 * (1.0 - smoothstep(blob.r * 0.75, blob.r, dist));
        if (alpha <= 0) continue;
        c.r += (blob.colour.r - c.r) * alpha;
        c.g += (blob.colour.g - c.g) * alpha;
        c.b += (blob.colour.b - c.b) * alpha;
      }
      double stripe =
          1.0 + 0.12 * std::sin(stripe_fx * u + stripe_fy * v + stripe_phase + phase * kTau);
      px[0] = to_byte(c.r * stripe);
      px[1] = to_byte(c.g * stripe);
      px[2] = to_byte(c.b * stripe);
      px[3] = 255;
    }
  }
  return image;
}

}  // namespace sw::engines::synthetic
