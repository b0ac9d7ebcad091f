#pragma once
// A throwaway self-signed certificate for 127.0.0.1 (EC P-256, 1 day), written as PEM files, for
// TLS tests. Thread-safe.

#include <filesystem>

namespace sw::testing {

struct TestCertificate {
  std::filesystem::path cert_pem;
  std::filesystem::path key_pem;
};

// Writes cert.pem and key.pem into `dir`; fails the calling test on error.
TestCertificate make_test_certificate(const std::filesystem::path& dir);

}  // namespace sw::testing
