#pragma once
// A GGUF header reader: metadata and tensor table only, never the weights. Used to estimate the
// memory a model needs and to pick its context size. The file is untrusted: every length and
// count is bounded by the file's size and by sane limits before anything is allocated.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "common/error.h"

namespace sw::models {

struct GgufInfo {
  std::uint32_t version = 0;
  std::uint64_t tensor_count = 0;
  std::uint64_t metadata_count = 0;
  std::string architecture;                     // general.architecture
  std::optional<std::string> name;              // general.name
  std::optional<std::uint64_t> context_length;  // <arch>.context_length (training context)
  std::optional<std::uint64_t> block_count;     // <arch>.block_count (layers)
  std::optional<std::uint64_t> embedding_length;
  std::optional<std::uint64_t> head_count;
  std::optional<std::uint64_t> head_count_kv;
  std::optional<std::string> chat_template;             // tokenizer.chat_template
  std::optional<std::uint64_t> vocab_size;              // length of tokenizer.ggml.tokens
  std::map<std::string, std::uint64_t> bytes_per_type;  // ggml type name → bytes of weights
  std::uint64_t tensor_bytes = 0;                       // all weights
  std::uint64_t data_offset = 0;                        // where tensor data begins
  std::uint64_t file_bytes = 0;
};

Result<GgufInfo> read_gguf(const std::filesystem::path& path);

// The context to run with: the requested size (default 8192) capped by the training context.
std::uint32_t pick_context(const GgufInfo& info, std::optional<std::uint32_t> requested);

// Bytes of memory a runner needs for this model at `context` tokens: weights, an f16 KV cache
// (2 × layers × context × kv_width × 2 bytes) and a compute overhead of 10 % + 64 MiB.
std::uint64_t estimate_memory_bytes(const GgufInfo& info, std::uint32_t context);

}  // namespace sw::models
