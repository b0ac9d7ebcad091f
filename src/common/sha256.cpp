#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace sw {
namespace {
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// OpenSSL only fails here on allocation failure or a broken build: crash beats wrong hashes.
void check(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "fatal: OpenSSL %s failed\n", what);
    std::abort();
  }
}
// The SHA-256 implementation, fetched from the default provider once: OpenSSL 3 looks EVP_sha256()
// up again (locks, a hash table) on every DigestInit, which showed in the studio's profile: a
// bearer token is hashed on every API request.
const EVP_MD* sha256_md() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) check(0, "EVP_MD_fetch");
    return fetched;  // kept for the life of the process
  }();
  return md;
}
}  // namespace

struct Sha256::Impl {
  MdCtxPtr ctx{EVP_MD_CTX_new()};
  Impl() {
    if (!ctx) check(0, "EVP_MD_CTX_new");
    check(EVP_DigestInit_ex(ctx.get(), sha256_md(), nullptr), "EVP_DigestInit_ex");
  }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::span<const std::uint8_t> bytes) {
  check(EVP_DigestUpdate(impl_->ctx.get(), bytes.data(), bytes.size()), "EVP_DigestUpdate");
}

void Sha256::update(std::string_view text) {
  check(EVP_DigestUpdate(impl_->ctx.get(), text.data(), text.size()), "EVP_DigestUpdate");
}

Sha256Digest Sha256::finish() {
  Sha256Digest digest{};
  unsigned int length = 0;
  check(EVP_DigestFinal_ex(impl_->ctx.get(), digest.data(), &length), "EVP_DigestFinal_ex");
  check(EVP_DigestInit_ex(impl_->ctx.get(), sha256_md(), nullptr), "EVP_DigestInit_ex");
  return digest;
}

Sha256Digest sha256(std::span<const std::uint8_t> bytes) {
  Sha256Digest digest{};
  unsigned int length = 0;
  check(EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256_md(), nullptr),
        "EVP_Digest");
  return digest;
}

Sha256Digest sha256(std::string_view text) {
  return sha256(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t byte : bytes) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0x0f]);
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  return to_hex(sha256(text));
}

}  // namespace sw
