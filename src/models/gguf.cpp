#include "models/gguf.h"

#include <array>
#include <cstring>
#include <fstream>
#include <type_traits>
#include <vector>

namespace sw::models {
namespace {

constexpr std::uint64_t kMaxKeyBytes = 64 * 1024;
constexpr std::uint64_t kMaxStringBytes = 64ull * 1024 * 1024;
constexpr std::uint64_t kMaxArrayCount = 64ull * 1024 * 1024;
constexpr std::uint64_t kMaxCount = 1ull << 24;  // tensors, metadata pairs
constexpr std::uint32_t kMaxDims = 4;            // GGML_MAX_DIMS

enum ValueType : std::uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64,
};

std::uint64_t scalar_size(std::uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool: return 1;
    case kU16:
    case kI16: return 2;
    case kU32:
    case kI32:
    case kF32: return 4;
    case kU64:
    case kI64:
    case kF64: return 8;
    default: return 0;
  }
}

struct GgmlType {
  const char* name;
  std::uint64_t block;  // elements per block
  std::uint64_t bytes;  // bytes per block
};

// ggml's type table (ggml.c type_traits), by type id. Ids never reused are left empty.
const GgmlType* ggml_type(std::uint32_t id) {
  static const std::array<GgmlType, 40> kTypes{{
      {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {"Q5_0", 32, 22},     {"Q5_1", 32, 24},
      {"Q8_0", 32, 34},     {"Q8_1", 32, 36},    {"Q2_K", 256, 84},    {"Q3_K", 256, 110},
      {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},   {"Q8_K", 256, 292},
      {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
      {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136},
      {"I8", 1, 1},         {"I16", 1, 2},       {"I32", 1, 4},        {"I64", 1, 8},
      {"F64", 1, 8},        {"IQ1_M", 256, 56},  {"BF16", 1, 2},       {nullptr, 0, 0},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},   {"TQ2_0", 256, 66},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {nullptr, 0, 0},      {"MXFP4", 32, 17},
  }};
  if (id >= kTypes.size() || kTypes[id].name == nullptr) return nullptr;
  return &kTypes[id];
}

// Reads little-endian values from the file, refusing to go past its end.
class Reader {
 public:
  Reader(std::ifstream& in, std::uint64_t size) : in_(in), size_(size) {}

  std::uint64_t position() const { return pos_; }
  std::uint64_t remaining() const { return size_ - pos_; }

  Status bytes(void* out, std::uint64_t n, const char* what) {
    if (n > remaining()) return truncated(what);
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    if (!in_) return fail(Error::io("gguf: read error at byte {}", pos_));
    pos_ += n;
    return {};
  }
  Status skip(std::uint64_t n, const char* what) {
    if (n > remaining()) return truncated(what);
    in_.seekg(static_cast<std::streamoff>(n), std::ios::cur);
    pos_ += n;
    return {};
  }
  template <class T>
  Result<T> value(const char* what) {
    T v{};
    SW_TRY(bytes(&v, sizeof(T), what));
    return v;  // GGUF is little-endian, as is every platform we build for
  }
  Result<std::string> string(std::uint64_t max, const char* what) {
    auto length = value<std::uint64_t>(what);
    if (!length) return fail(length.error());
    if (*length > max) {
      return fail(Error::invalid_argument(
          "gguf: {} of {} bytes at byte {} exceeds the {} byte limit", what, *length, pos_, max));
    }
    if (*length > remaining()) return truncated(what);  // before allocating
    std::string s(static_cast<std::size_t>(*length), '\0');
    SW_TRY(bytes(s.data(), *length, what));
    return s;
  }

 private:
  tl::unexpected<Error> truncated(const char* what) const {
    return fail(
        Error::invalid_argument("gguf: file ends inside {} (byte {} of {})", what, pos_, size_));
  }
  std::ifstream& in_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

// An integer metadata value widened to u64; a negative value reads as "not set".
template <class T>
Result<std::optional<std::uint64_t>> widen(Reader& r) {
  auto v = r.value<T>("metadata");
  if (!v) return fail(v.error());
  if constexpr (std::is_signed_v<T>) {
    if (*v < 0) return std::optional<std::uint64_t>();
  }
  return std::optional<std::uint64_t>(static_cast<std::uint64_t>(*v));
}

Result<std::optional<std::uint64_t>> read_integer(Reader& r, std::uint32_t type) {
  switch (type) {
    case kU8: return widen<std::uint8_t>(r);
    case kU16: return widen<std::uint16_t>(r);
    case kU32: return widen<std::uint32_t>(r);
    case kU64: return widen<std::uint64_t>(r);
    case kI32: return widen<std::int32_t>(r);
    case kI64: return widen<std::int64_t>(r);
    default: return std::optional<std::uint64_t>();
  }
}

Status skip_value(Reader& r, std::uint32_t type, int depth = 0) {
  if (std::uint64_t size = scalar_size(type)) return r.skip(size, "metadata value");
  if (type == kString) {
    auto s = r.value<std::uint64_t>("string length");
    if (!s) return fail(s.error());
    if (*s > kMaxStringBytes)
      return fail(Error::invalid_argument("gguf: string of {} bytes is too long", *s));
    return r.skip(*s, "string");
  }
  if (type == kArray) {
    if (depth > 2) return fail(Error::invalid_argument("gguf: arrays nested too deeply"));
    auto element = r.value<std::uint32_t>("array type");
    if (!element) return fail(element.error());
    auto count = r.value<std::uint64_t>("array length");
    if (!count) return fail(count.error());
    if (*count > kMaxArrayCount) {
      return fail(Error::invalid_argument("gguf: array of {} elements is too long", *count));
    }
    if (std::uint64_t size = scalar_size(*element)) {
      if (*count > r.remaining() / size)
        return fail(Error::invalid_argument("gguf: array runs past the end of the file"));
      return r.skip(*count * size, "array");
    }
    for (std::uint64_t i = 0; i < *count; ++i) SW_TRY(skip_value(r, *element, depth + 1));
    return {};
  }
  return fail(Error::invalid_argument("gguf: unknown metadata value type {}", type));
}

}  // namespace

Result<GgufInfo> read_gguf(const std::filesystem::path& path) {
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return fail(Error::not_found("gguf: cannot read {}: {}", path.string(), ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::io("gguf: cannot open {}", path.string()));
  Reader r(in, size);

  char magic[4];
  SW_TRY(r.bytes(magic, 4, "the magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return fail(Error::invalid_argument("gguf: {} is not a GGUF file (bad magic)", path.string()));
  }
  GgufInfo info;
  info.file_bytes = size;
  auto version = r.value<std::uint32_t>("the version");
  if (!version) return fail(version.error());
  info.version = *version;
  if (info.version < 2 || info.version > 3) {
    return fail(
        Error::invalid_argument("gguf: version {} is not supported (2 and 3 are)", info.version));
  }
  auto tensors = r.value<std::uint64_t>("the tensor count");
  auto pairs = r.value<std::uint64_t>("the metadata count");
  if (!tensors || !pairs) return fail(Error::invalid_argument("gguf: file ends inside the header"));
  if (*tensors > kMaxCount || *pairs > kMaxCount) {
    return fail(Error::invalid_argument("gguf: {} tensors / {} metadata pairs is implausible",
                                        *tensors, *pairs));
  }
  info.tensor_count = *tensors;
  info.metadata_count = *pairs;

  std::uint64_t alignment = 32;
  std::map<std::string, std::uint64_t> integers;  // every integer-valued key, to resolve <arch>.*
  for (std::uint64_t i = 0; i < *pairs; ++i) {
    auto key = r.string(kMaxKeyBytes, "a metadata key");
    if (!key) return fail(key.error());
    auto type = r.value<std::uint32_t>("a metadata type");
    if (!type) return fail(type.error());
    if (*type == kString && (*key == "general.architecture" || *key == "general.name" ||
                             *key == "tokenizer.chat_template")) {
      auto value = r.string(kMaxStringBytes, key->c_str());
      if (!value) return fail(value.error());
      if (*key == "general.architecture")
        info.architecture = *value;
      else if (*key == "general.name")
        info.name = *value;
      else
        info.chat_template = *value;
    } else if (*type == kArray && *key == "tokenizer.ggml.tokens") {
      auto element = r.value<std::uint32_t>("array type");
      auto count = r.value<std::uint64_t>("array length");
      if (!element || !count)
        return fail(Error::invalid_argument("gguf: file ends inside the vocabulary"));
      if (*count > kMaxArrayCount)
        return fail(
            Error::invalid_argument("gguf: vocabulary of {} tokens is implausible", *count));
      info.vocab_size = *count;
      for (std::uint64_t t = 0; t < *count; ++t) SW_TRY(skip_value(r, *element, 1));
    } else if (scalar_size(*type) != 0 && *type != kF32 && *type != kF64 && *type != kBool &&
               *type != kI8 && *type != kI16) {
      auto value = read_integer(r, *type);
      if (!value) return fail(value.error());
      if (*value) integers[*key] = **value;
    } else {
      SW_TRY(skip_value(r, *type));
    }
  }
  if (info.architecture.empty()) {
    return fail(Error::invalid_argument("gguf: general.architecture is missing"));
  }
  auto arch_value = [&](const char* suffix) -> std::optional<std::uint64_t> {
    auto it = integers.find(info.architecture + "." + suffix);
    return it == integers.end() ? std::nullopt : std::optional<std::uint64_t>(it->second);
  };
  info.context_length = arch_value("context_length");
  info.block_count = arch_value("block_count");
  info.embedding_length = arch_value("embedding_length");
  info.head_count = arch_value("attention.head_count");
  info.head_count_kv = arch_value("attention.head_count_kv");
  if (auto it = integers.find("general.alignment"); it != integers.end()) {
    alignment = it->second;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 1024 * 1024) {
      return fail(
          Error::invalid_argument("gguf: general.alignment {} is not a power of two", alignment));
    }
  }

  std::uint64_t end_of_data = 0;
  for (std::uint64_t i = 0; i < *tensors; ++i) {
    auto name = r.string(kMaxKeyBytes, "a tensor name");
    if (!name) return fail(name.error());
    auto dims = r.value<std::uint32_t>("tensor dimensions");
    if (!dims) return fail(dims.error());
    if (*dims == 0 || *dims > kMaxDims) {
      return fail(Error::invalid_argument("gguf: tensor {} has {} dimensions", *name, *dims));
    }
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < *dims; ++d) {
      auto extent = r.value<std::uint64_t>("a tensor dimension");
      if (!extent) return fail(extent.error());
      if (*extent != 0 && elements > (std::uint64_t{1} << 62) / *extent) {
        return fail(Error::invalid_argument("gguf: tensor {} is implausibly large", *name));
      }
      elements *= *extent;
    }
    auto type_id = r.value<std::uint32_t>("a tensor type");
    auto offset = r.value<std::uint64_t>("a tensor offset");
    if (!type_id || !offset)
      return fail(Error::invalid_argument("gguf: file ends inside the tensor table"));
    const GgmlType* type = ggml_type(*type_id);
    if (type == nullptr) {
      return fail(Error::invalid_argument("gguf: tensor {} has unknown type {}", *name, *type_id));
    }
    if (elements % type->block != 0) {
      return fail(Error::invalid_argument(
          "gguf: tensor {} has {} elements, not a multiple of {}'s block of {}", *name, elements,
          type->name, type->block));
    }
    std::uint64_t bytes = elements / type->block * type->bytes;
    info.bytes_per_type[type->name] += bytes;
    info.tensor_bytes += bytes;
    end_of_data = std::max(end_of_data, *offset + bytes);
  }
  info.data_offset = (r.position() + alignment - 1) / alignment * alignment;
  if (info.data_offset + end_of_data > size) {
    return fail(Error::invalid_argument(
        "gguf: tensor data needs {} bytes but the file has {} (truncated download?)",
        info.data_offset + end_of_data, size));
  }
  return info;
}

std::uint32_t pick_context(const GgufInfo& info, std::optional<std::uint32_t> requested) {
  std::uint64_t context = requested.value_or(8192);
  if (context == 0) context = 8192;
  if (info.context_length && *info.context_length > 0)
    context = std::min(context, *info.context_length);
  return static_cast<std::uint32_t>(context);
}

std::uint64_t estimate_memory_bytes(const GgufInfo& info, std::uint32_t context) {
  std::uint64_t kv = 0;
  if (info.block_count && info.embedding_length) {
    std::uint64_t kv_width = *info.embedding_length;
    if (info.head_count && info.head_count_kv && *info.head_count > 0) {
      kv_width = *info.embedding_length * *info.head_count_kv / *info.head_count;
    }
    kv =
        2 * *info.block_count * static_cast<std::uint64_t>(context) * kv_width * 2;  // K and V, f16
  }
  const std::uint64_t base = info.tensor_bytes + kv;
  return base + base / 10 + 64ull * 1024 * 1024;
}

}  // namespace sw::models
