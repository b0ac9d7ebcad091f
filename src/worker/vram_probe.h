#pragma once
// How much GPU memory this machine has (reference-worker.md §1.5, §7.2), probed once and memoised:
// NVML (libnvidia-ml.so.1 through dlopen, worker/nvml_probe.h), else the NVIDIA driver's /proc
// information, else `nvidia-smi --query-gpu=memory.total`, else AMD's sysfs `mem_info_vram_total`.
// The largest single GPU counts (one job runs on one GPU). 0 when none is found. Thread-safe.
// Every probe below tries NVML first and, when it cannot answer (no library, a missing entry
// point, a failed call), takes its previous sources unchanged. Which source answered is logged
// once per probe, at debug level (`vram.source probe=… source=…`).

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sw::worker {

struct VramProbeSources {
  // The NVML library to dlopen (a file name searched like any library, or a path); absent or
  // empty: NVML is not tried (the default, so that tests that inject nvidia-smi output never
  // reach a real driver). Each distinct library is opened once per process and kept.
  std::optional<std::filesystem::path> nvml_library;
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path sys_root = "/sys";
  // Runs nvidia-smi with the given arguments; its stdout, or nullopt when it is not there.
  std::function<std::optional<std::string>(const std::string& args)> run_nvidia_smi;
};

// The sources of this machine (NVML as "libnvidia-ml.so.1", nvidia-smi found on PATH).
VramProbeSources system_vram_sources();

// Total GiB of the largest GPU, or 0. Never fails: every source that cannot be read is skipped.
double probe_vram_total_gib(const VramProbeSources& sources);

// Free GiB of the first GPU (NVML, else nvidia-smi memory.free, else AMD total − used), or nullopt.
std::optional<double> probe_vram_free_gib(const VramProbeSources& sources);

// One GPU's memory as GET /metrics reports it (issue 19).
struct DeviceMemory {
  // "0", "1", … (NVML's and nvidia-smi's index order, which is PCI bus order as is CUDA's under
  // CUDA_DEVICE_ORDER=PCI_BUS_ID; or, on AMD, the HIP index: ROCm's order of the KFD topology's
  // GPU nodes, else the amdgpu cards in card-number order; another vendor's card takes none)
  std::string device;
  double total_bytes = 0;
  std::optional<double> free_bytes;  // unknown when the source does not say
  // The variable that pins a process to it: CUDA_VISIBLE_DEVICES (NVIDIA), HIP_VISIBLE_DEVICES
  // (AMD).
  std::string visible_env;
};

// Every GPU's total and free memory: NVML (nvmlDeviceGetMemoryInfo), else nvidia-smi
// (memory.total, memory.free), else AMD sysfs (mem_info_vram_total − mem_info_vram_used). Empty
// when no GPU is found. Blocking (queries the driver or runs nvidia-smi): not for the I/O thread.
std::vector<DeviceMemory> probe_device_memory(const VramProbeSources& sources);

// GPU memory process `pid` uses now, GiB, summed over devices (NVML's compute processes, else
// `nvidia-smi --query-compute-apps=pid,used_memory`), for learned runner footprints; nullopt when
// neither answers or the one that answers does not list the process (a PID namespace apart, an
// AMD card: not measured). Blocking (queries the driver or runs nvidia-smi).
std::optional<double> probe_process_vram_gib(const VramProbeSources& sources, int pid);

// probe_vram_total_gib(system_vram_sources()), computed on first use and remembered.
double memoised_vram_total_gib();

}  // namespace sw::worker
