#pragma once
// NVIDIA GPU memory through NVML (issue 19), the first source of worker/vram_probe.h: the driver's
// management library is opened with dlopen at run time, so the worker neither links nor needs it
// (a machine without the NVIDIA driver simply has no such library, and the probes fall back to
// nvidia-smi and AMD's sysfs).
//
// No NVIDIA header is used (none is packaged in Debian main): nvml_probe.cpp declares the few
// entry points it calls with the ABI of the NVML API Reference Guide
// (https://docs.nvidia.com/deploy/nvml-api/, "Device Queries" and "Device Structs").
//
// Loading: one library per path, opened, checked for its entry points and initialised
// (nvmlInit_v2) on first use, then kept for the life of the process: it is never closed nor shut
// down while the worker runs (any thread may be in a call). A library that cannot be opened, lacks
// an entry point or fails to initialise is remembered as unavailable (not retried). Thread-safe:
// any thread may call these functions at once (NVML itself is documented thread-safe).
//
// Errors: none are thrown; nullopt means "NVML cannot answer" (no library, a missing symbol, a
// failed call, no GPU), and the caller uses its next source. Blocking: each call queries the
// driver (milliseconds), not for the I/O thread.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sw::worker {

// One GPU as NVML reports it, in bytes.
struct NvmlDeviceMemory {
  // "0", "1", … in NVML's index order. NVML enumerates GPUs in PCI bus order, the order that
  // CUDA_DEVICE_ORDER=PCI_BUS_ID (which the worker sets for its runners) gives CUDA, so these ids
  // are the ones CUDA_VISIBLE_DEVICES takes.
  std::string device;
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;
};

// Every GPU's total and free memory (nvmlDeviceGetMemoryInfo), in index order; nullopt when the
// library at `library` is unusable, a call fails, or it reports no GPU.
std::optional<std::vector<NvmlDeviceMemory>> nvml_device_memory(
    const std::filesystem::path& library);

// What process `pid` holds on the GPUs, for learned runner footprints.
struct NvmlProcessMemory {
  bool listed = false;           // a compute process of some GPU
  std::uint64_t used_bytes = 0;  // usedGpuMemory summed over the GPUs that list it
};

// The compute processes of every GPU (nvmlDeviceGetComputeRunningProcesses_v3, else _v2), for
// `pid`; nullopt when NVML cannot answer (then nvidia-smi may). Entries whose usage is 0 or that
// NVML does not know (NVML_VALUE_NOT_AVAILABLE) count as unlisted, as in nvidia-smi's rows.
std::optional<NvmlProcessMemory> nvml_process_memory(const std::filesystem::path& library, int pid);

}  // namespace sw::worker
