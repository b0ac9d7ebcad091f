#pragma once
// Random identifiers and secrets from the OS CSPRNG (OpenSSL RAND_bytes), and constant-time
// comparison for tokens. Thread-safe.

#include <cstddef>
#include <string>
#include <string_view>

namespace sw {

// `bytes` random bytes as lowercase hex (2 × bytes characters). Aborts if the CSPRNG fails:
// a predictable token is worse than a crash.
std::string random_hex(std::size_t bytes);
// 16 random bytes formatted 8-4-4-4-12 (lowercase hex, RFC 4122 version 4 bits set).
std::string random_uuid();
// A UUID version 7 (RFC 9562 §5.7): the first 48 bits are the Unix time in milliseconds, the
// other 74 free bits random. Ids made in turn sort (almost) in creation order, so rows keyed by
// them land on the last pages of a B-tree index instead of a random page each (the studio's job
// ids: each job's index entries and attempt rows were one more page written per commit).
// Reveals when it was made; 74 random bits keep it unguessable.
std::string time_ordered_uuid();
// True when a == b, in time that depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace sw
