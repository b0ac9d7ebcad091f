#include "worker/nvml_probe.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "common/log.h"

namespace sw::worker {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::host::vram");
  return instance;
}

// ---- The NVML C ABI this file uses, declared after the NVML API Reference Guide
// (https://docs.nvidia.com/deploy/nvml-api/): "Device Enums" (nvmlReturn_t), "Device Structs"
// (nvmlMemory_t, nvmlProcessInfo_t), "Initialization and Cleanup", "Device Queries" and "Error
// reporting". Names are NVML's, so that they can be looked up there.

// nvmlReturn_t is a C enum (int-sized); only these values are told apart.
using nvmlReturn_t = int;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
// NVML_VALUE_NOT_AVAILABLE is (-1): usedGpuMemory when the driver cannot say (e.g. under WDDM).
constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ~0ULL;

// nvmlDevice_t: an opaque handle.
struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;

// nvmlMemory_t (v1, what nvmlDeviceGetMemoryInfo fills): bytes.
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlProcessInfo_t, the documented layout of nvmlProcessInfo_v2_t that both
// nvmlDeviceGetComputeRunningProcesses_v2 and _v3 fill ("Device Structs": pid, usedGpuMemory in
// bytes, then the MIG gpuInstanceId and computeInstanceId). 24 bytes on LP64 (4 bytes of padding
// after pid). Caveat: the first R535 drivers (CUDA 12.2) wrote a 32-byte nvmlProcessInfo_v3_t
// (this layout plus unsigned long long usedGpuCcProtectedMemory) through _v3, later reverted
// (see NVIDIA/go-nvml#75, XuehaiPan/nvitop#79): compute_processes() sizes its buffer for that
// and reads the stride the entries actually have.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
static_assert(sizeof(nvmlProcessInfo_t) == 24 && offsetof(nvmlProcessInfo_t, usedGpuMemory) == 8,
              "nvmlProcessInfo_t's documented LP64 layout");
constexpr std::size_t kWideProcessInfoSize = 32;  // R535's nvmlProcessInfo_v3_t

using nvmlInit_v2_fn = nvmlReturn_t (*)();
using nvmlDeviceGetCount_v2_fn = nvmlReturn_t (*)(unsigned int* deviceCount);
using nvmlDeviceGetHandleByIndex_v2_fn = nvmlReturn_t (*)(unsigned int index, nvmlDevice_t* device);
using nvmlDeviceGetMemoryInfo_fn = nvmlReturn_t (*)(nvmlDevice_t device, nvmlMemory_t* memory);
// _v3 and _v2 share this signature.
using nvmlDeviceGetComputeRunningProcesses_fn = nvmlReturn_t (*)(nvmlDevice_t device,
                                                                 unsigned int* infoCount,
                                                                 nvmlProcessInfo_t* infos);
using nvmlErrorString_fn = const char* (*)(nvmlReturn_t result);

// ---- One opened, initialised library. Never closed: calls may be in flight on any thread.
struct Nvml {
  void* handle = nullptr;
  nvmlDeviceGetCount_v2_fn get_count = nullptr;
  nvmlDeviceGetHandleByIndex_v2_fn get_handle = nullptr;
  nvmlDeviceGetMemoryInfo_fn get_memory = nullptr;
  nvmlDeviceGetComputeRunningProcesses_fn get_processes = nullptr;  // null: neither _v3 nor _v2
  nvmlErrorString_fn error_string = nullptr;                        // optional

  std::string describe(nvmlReturn_t rc) const {
    const char* text = error_string != nullptr ? error_string(rc) : nullptr;
    return text != nullptr ? std::string(text) : "nvmlReturn_t " + std::to_string(rc);
  }
};

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(::dlsym(handle, name));
}

std::unique_ptr<Nvml> open_library(const std::filesystem::path& path) {
  const std::string name = path.string();
  void* handle = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    logger().debug("nvml.unavailable", {{"library", name}, {"reason", why ? why : "dlopen"}});
    return nullptr;
  }
  auto nvml = std::make_unique<Nvml>();
  nvml->handle = handle;
  const auto init = symbol<nvmlInit_v2_fn>(handle, "nvmlInit_v2");
  nvml->get_count = symbol<nvmlDeviceGetCount_v2_fn>(handle, "nvmlDeviceGetCount_v2");
  nvml->get_handle =
      symbol<nvmlDeviceGetHandleByIndex_v2_fn>(handle, "nvmlDeviceGetHandleByIndex_v2");
  nvml->get_memory = symbol<nvmlDeviceGetMemoryInfo_fn>(handle, "nvmlDeviceGetMemoryInfo");
  nvml->error_string = symbol<nvmlErrorString_fn>(handle, "nvmlErrorString");
  const char* processes_symbol = "nvmlDeviceGetComputeRunningProcesses_v3";
  nvml->get_processes = symbol<nvmlDeviceGetComputeRunningProcesses_fn>(handle, processes_symbol);
  if (nvml->get_processes == nullptr) {
    processes_symbol = "nvmlDeviceGetComputeRunningProcesses_v2";
    nvml->get_processes = symbol<nvmlDeviceGetComputeRunningProcesses_fn>(handle, processes_symbol);
  }
  if (init == nullptr || nvml->get_count == nullptr || nvml->get_handle == nullptr ||
      nvml->get_memory == nullptr) {
    logger().debug("nvml.unavailable", {{"library", name}, {"reason", "missing entry point"}});
    ::dlclose(handle);  // nothing of it was called yet
    return nullptr;
  }
  if (const nvmlReturn_t rc = init(); rc != NVML_SUCCESS) {
    logger().debug("nvml.unavailable",
                   {{"library", name}, {"reason", "nvmlInit_v2: " + nvml->describe(rc)}});
    ::dlclose(handle);  // not initialised: nothing to shut down, no call can be in flight
    return nullptr;
  }
  logger().debug("nvml.loaded",
                 {{"library", name},
                  {"processes", nvml->get_processes != nullptr ? processes_symbol : "none"}});
  return nvml;
}

// The library at `path`, opened and initialised on first use; nullptr when it is unusable (also
// remembered). The table is never destroyed, so that a probe on another thread can outlive
// static destruction at exit.
const Nvml* load(const std::filesystem::path& path) {
  static std::mutex mutex;
  static auto* libraries = new std::map<std::string, std::unique_ptr<Nvml>>();
  const std::lock_guard lock(mutex);
  auto [it, inserted] = libraries->try_emplace(path.string());
  if (inserted) it->second = open_library(path);
  return it->second.get();
}

std::optional<std::vector<nvmlDevice_t>> device_handles(const Nvml& nvml) {
  unsigned int count = 0;
  if (const nvmlReturn_t rc = nvml.get_count(&count); rc != NVML_SUCCESS) {
    logger().debug("nvml.failed",
                   {{"call", "nvmlDeviceGetCount_v2"}, {"error", nvml.describe(rc)}});
    return std::nullopt;
  }
  std::vector<nvmlDevice_t> devices(count, nullptr);
  for (unsigned int i = 0; i < count; ++i) {
    if (const nvmlReturn_t rc = nvml.get_handle(i, &devices[i]); rc != NVML_SUCCESS) {
      logger().debug(
          "nvml.failed",
          {{"call", "nvmlDeviceGetHandleByIndex_v2"}, {"index", i}, {"error", nvml.describe(rc)}});
      return std::nullopt;
    }
  }
  return devices;
}

struct ProcessEntry {
  unsigned int pid = 0;
  unsigned long long used_bytes = 0;
};

// The entries `count` of them in `buffer`, read with `stride` bytes each.
std::vector<ProcessEntry> decode(const unsigned char* buffer, unsigned int count,
                                 std::size_t stride) {
  std::vector<ProcessEntry> entries(count);
  for (unsigned int i = 0; i < count; ++i) {
    const unsigned char* at = buffer + i * stride;
    std::memcpy(&entries[i].pid, at + offsetof(nvmlProcessInfo_t, pid), sizeof(unsigned int));
    std::memcpy(&entries[i].used_bytes, at + offsetof(nvmlProcessInfo_t, usedGpuMemory),
                sizeof(unsigned long long));
  }
  return entries;
}

// One device's compute processes; nullopt when the call fails.
std::optional<std::vector<ProcessEntry>> compute_processes(const Nvml& nvml, nvmlDevice_t device) {
  unsigned int capacity = 16;
  for (int attempt = 0; attempt < 4; ++attempt) {
    // Room for `capacity` entries of the widest layout a driver is known to write; 8-aligned.
    std::vector<unsigned long long> storage(capacity * kWideProcessInfoSize /
                                            sizeof(unsigned long long));
    unsigned int count = capacity;
    const nvmlReturn_t rc =
        nvml.get_processes(device, &count, reinterpret_cast<nvmlProcessInfo_t*>(storage.data()));
    if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
      capacity = std::max(capacity, count) + 8;  // processes may start between the calls
      continue;
    }
    if (rc != NVML_SUCCESS) {
      logger().debug("nvml.failed", {{"call", "nvmlDeviceGetComputeRunningProcesses"},
                                     {"error", nvml.describe(rc)}});
      return std::nullopt;
    }
    count = std::min(count, capacity);
    const auto* bytes = reinterpret_cast<const unsigned char*>(storage.data());
    auto entries = decode(bytes, count, sizeof(nvmlProcessInfo_t));
    // No compute process has pid 0: one read at the documented stride means 32-byte entries,
    // when every pid read at that stride is real.
    const auto zero_pid = [](const ProcessEntry& e) { return e.pid == 0; };
    if (std::any_of(entries.begin(), entries.end(), zero_pid)) {
      auto wide = decode(bytes, count, kWideProcessInfoSize);
      if (std::none_of(wide.begin(), wide.end(), zero_pid)) entries = std::move(wide);
    }
    return entries;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<NvmlDeviceMemory>> nvml_device_memory(
    const std::filesystem::path& library) {
  const Nvml* nvml = load(library);
  if (nvml == nullptr) return std::nullopt;
  auto handles = device_handles(*nvml);
  if (!handles || handles->empty()) return std::nullopt;
  std::vector<NvmlDeviceMemory> devices;
  for (std::size_t i = 0; i < handles->size(); ++i) {
    nvmlMemory_t memory{};
    if (const nvmlReturn_t rc = nvml->get_memory((*handles)[i], &memory); rc != NVML_SUCCESS) {
      logger().debug(
          "nvml.failed",
          {{"call", "nvmlDeviceGetMemoryInfo"}, {"index", i}, {"error", nvml->describe(rc)}});
      return std::nullopt;
    }
    devices.push_back({std::to_string(i), memory.total, memory.free});
  }
  return devices;
}

std::optional<NvmlProcessMemory> nvml_process_memory(const std::filesystem::path& library,
                                                     int pid) {
  const Nvml* nvml = load(library);
  if (nvml == nullptr || nvml->get_processes == nullptr || pid <= 0) return std::nullopt;
  auto handles = device_handles(*nvml);
  if (!handles || handles->empty()) return std::nullopt;
  NvmlProcessMemory result;
  for (nvmlDevice_t device : *handles) {
    auto entries = compute_processes(*nvml, device);
    if (!entries) return std::nullopt;
    for (const auto& entry : *entries) {
      if (entry.pid != static_cast<unsigned int>(pid) || entry.used_bytes == 0 ||
          entry.used_bytes == NVML_VALUE_NOT_AVAILABLE) {
        continue;
      }
      result.listed = true;
      result.used_bytes += entry.used_bytes;
    }
  }
  return result;
}

}  // namespace sw::worker
