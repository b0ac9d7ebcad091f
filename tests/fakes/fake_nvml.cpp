// A stand-in for the NVIDIA driver's libnvidia-ml.so.1, for the NVML probe's tests
// (tests/unit/worker/nvml_probe_test.cpp): the entry points src/worker/nvml_probe.cpp resolves,
// with NVML's documented C ABI (NVML API Reference Guide,
// https://docs.nvidia.com/deploy/nvml-api/), answering for two GPUs:
//   index 0: 24 GiB total, 20 GiB free; compute processes 1111 (2 GiB), 4242 (3 GiB), 3333 (usage
//            not available)
//   index 1: 16 GiB total, 6 GiB free; compute processes 4242 (1 GiB), 5555 (0 bytes)
// Built three times (tests/CMakeLists.txt): as is; with FAKE_NVML_WIDE_PROCESS_INFO, whose _v3
// writes the 32-byte entries of the first R535 drivers (the documented entry plus
// usedGpuCcProtectedMemory); with FAKE_NVML_WITHOUT_MEMORY_INFO, lacking nvmlDeviceGetMemoryInfo.
// fake_nvml_init_calls() tells the tests how often nvmlInit_v2 ran.

#include <cstring>

#define FAKE_NVML_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using Return = int;  // nvmlReturn_t
constexpr Return kSuccess = 0;
constexpr Return kUninitialized = 1;
constexpr Return kInvalidArgument = 2;
constexpr Return kInsufficientSize = 7;
constexpr unsigned long long kNotAvailable = ~0ULL;  // NVML_VALUE_NOT_AVAILABLE
constexpr unsigned long long kGiB = 1ULL << 30;

struct Memory {  // nvmlMemory_t
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct ProcessInfo {  // nvmlProcessInfo_t (v2 layout)
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

struct WideProcessInfo {  // R535's nvmlProcessInfo_v3_t
  ProcessInfo info;
  unsigned long long usedGpuCcProtectedMemory;
};

struct Device {
  Memory memory;
  ProcessInfo processes[3];
  unsigned int process_count;
};

constexpr unsigned int kNoInstance = 0xFFFFFFFFu;  // what NVML reports without MIG
Device devices[2] = {
    {{24 * kGiB, 20 * kGiB, 4 * kGiB},
     {{1111, 2 * kGiB, kNoInstance, kNoInstance},
      {4242, 3 * kGiB, kNoInstance, kNoInstance},
      {3333, kNotAvailable, kNoInstance, kNoInstance}},
     3},
    {{16 * kGiB, 6 * kGiB, 10 * kGiB},
     {{4242, 1 * kGiB, kNoInstance, kNoInstance}, {5555, 0, kNoInstance, kNoInstance}, {}},
     2},
};

int init_calls = 0;
bool initialised = false;

Device* device_of(void* handle) {
  for (auto& device : devices) {
    if (handle == &device) return &device;
  }
  return nullptr;
}

}  // namespace

FAKE_NVML_EXPORT int fake_nvml_init_calls() {
  return init_calls;
}

FAKE_NVML_EXPORT Return nvmlInit_v2() {
  ++init_calls;
  initialised = true;
  return kSuccess;
}

FAKE_NVML_EXPORT Return nvmlShutdown() {
  initialised = false;
  return kSuccess;
}

FAKE_NVML_EXPORT const char* nvmlErrorString(Return result) {
  return result == kSuccess ? "Success" : "Fake NVML error";
}

FAKE_NVML_EXPORT Return nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!initialised) return kUninitialized;
  if (count == nullptr) return kInvalidArgument;
  *count = 2;
  return kSuccess;
}

FAKE_NVML_EXPORT Return nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (!initialised) return kUninitialized;
  if (index >= 2 || device == nullptr) return kInvalidArgument;
  *device = &devices[index];
  return kSuccess;
}

#ifndef FAKE_NVML_WITHOUT_MEMORY_INFO
FAKE_NVML_EXPORT Return nvmlDeviceGetMemoryInfo(void* handle, Memory* memory) {
  if (!initialised) return kUninitialized;
  Device* device = device_of(handle);
  if (device == nullptr || memory == nullptr) return kInvalidArgument;
  *memory = device->memory;
  return kSuccess;
}
#endif

// As documented: too small a count (0 included) answers NVML_ERROR_INSUFFICIENT_SIZE with the
// count needed; else the entries and their count.
FAKE_NVML_EXPORT Return nvmlDeviceGetComputeRunningProcesses_v3(void* handle, unsigned int* count,
                                                                ProcessInfo* infos) {
  if (!initialised) return kUninitialized;
  Device* device = device_of(handle);
  if (device == nullptr || count == nullptr) return kInvalidArgument;
  if (*count < device->process_count) {
    *count = device->process_count;
    return kInsufficientSize;
  }
  if (infos == nullptr) return kInvalidArgument;
  for (unsigned int i = 0; i < device->process_count; ++i) {
#ifdef FAKE_NVML_WIDE_PROCESS_INFO
    const WideProcessInfo wide{device->processes[i], 0};
    std::memcpy(reinterpret_cast<unsigned char*>(infos) + i * sizeof wide, &wide, sizeof wide);
#else
    infos[i] = device->processes[i];
#endif
  }
  *count = device->process_count;
  return kSuccess;
}
