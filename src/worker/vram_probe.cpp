#include "worker/vram_probe.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "common/log.h"
#include "common/strings.h"
#include "worker/nvml_probe.h"

namespace sw::worker {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::host::vram");
  return instance;
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Logs, once per process for each probe and source, which source answered (debug level).
void note_source(std::string_view probe, std::string_view source) {
  static std::mutex mutex;
  // Never destroyed, so that a probe on another thread during exit still finds it.
  static auto* seen = new std::set<std::string, std::less<>>();
  const std::string key = std::string(probe) + '/' + std::string(source);
  {
    const std::lock_guard lock(mutex);
    if (!seen->insert(key).second) return;
  }
  logger().debug("vram.source", {{"probe", probe}, {"source", source}});
}

// NVML's devices when the sources name a library and it answers.
std::optional<std::vector<NvmlDeviceMemory>> nvml_devices(const VramProbeSources& sources) {
  if (!sources.nvml_library || sources.nvml_library->empty()) return std::nullopt;
  return nvml_device_memory(*sources.nvml_library);
}

std::optional<std::string> read_small_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text;
  std::getline(in, text, '\0');
  return text;
}

// "Video Memory:    24576 MB" lines of /proc/driver/nvidia/gpus/*/information (older drivers).
double nvidia_proc_gib(const std::filesystem::path& proc_root) {
  double best = 0;
  std::error_code ec;
  const auto gpus = proc_root / "driver" / "nvidia" / "gpus";
  for (const auto& gpu : std::filesystem::directory_iterator(gpus, ec)) {
    auto text = read_small_file(gpu.path() / "information");
    if (!text) continue;
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.starts_with("Video Memory:")) continue;
      double mib = 0;
      if (std::sscanf(line.c_str() + 13, "%lf", &mib) == 1 && mib > 0) {
        best = std::max(best, mib / 1024.0);
      }
    }
  }
  return best;
}

std::vector<double> nvidia_smi_mib(const VramProbeSources& sources, const std::string& query) {
  std::vector<double> values;
  if (!sources.run_nvidia_smi) return values;
  auto out = sources.run_nvidia_smi("--query-gpu=" + query + " --format=csv,noheader,nounits");
  if (!out) return values;
  std::istringstream lines(*out);
  std::string line;
  while (std::getline(lines, line)) {
    double mib = 0;
    if (std::sscanf(line.c_str(), "%lf", &mib) == 1 && mib > 0) values.push_back(mib);
  }
  return values;
}

std::optional<double> read_bytes(const std::filesystem::path& path) {
  auto text = read_small_file(path);
  if (!text) return std::nullopt;
  double bytes = 0;
  if (std::sscanf(text->c_str(), "%lf", &bytes) != 1 || bytes <= 0) return std::nullopt;
  return bytes;
}

// The number after `prefix` in a sysfs name ("card12" → 12); nullopt for anything else
// ("card0-DP-1", "renderD128" with prefix "card").
std::optional<unsigned> numbered(const std::string& name, std::string_view prefix) {
  if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() > prefix.size() + 6)
    return std::nullopt;
  unsigned n = 0;
  for (char c : std::string_view(name).substr(prefix.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n;
}

// The entries of `dir` named <prefix><number>, in number order (card2 before card10).
std::vector<std::pair<unsigned, std::filesystem::path>> numbered_entries(
    const std::filesystem::path& dir, std::string_view prefix) {
  std::vector<std::pair<unsigned, std::filesystem::path>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (auto n = numbered(entry.path().filename().string(), prefix))
      out.emplace_back(*n, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// AMD GPUs (their sysfs device directories, which hold amdgpu's mem_info_vram_* counters) in
// HIP's device order, so that position i is HIP_VISIBLE_DEVICES=i. ROCm numbers the GPU nodes of
// the KFD topology (/sys/class/kfd/kfd/topology/nodes/N, `gpu_id` ≠ 0; CPU nodes have 0) in node
// order; each names its render node (`drm_render_minor` → /sys/class/drm/renderD<minor>). Without
// a KFD topology: the cards with amdgpu's counters in card-number order. Either way a card of
// another vendor (an Intel iGPU as card0) takes no index, as it takes none in HIP.
std::vector<std::filesystem::path> amd_gpus(const std::filesystem::path& sys_root) {
  std::vector<std::filesystem::path> gpus;
  const auto has_counters = [](const std::filesystem::path& device) {
    std::error_code ec;
    return std::filesystem::exists(device / "mem_info_vram_total", ec);
  };
  for (const auto& [node, dir] :
       numbered_entries(sys_root / "class" / "kfd" / "kfd" / "topology" / "nodes", "")) {
    auto text = read_small_file(dir / "properties");
    if (!text) continue;
    long long gpu_id = 0, render_minor = -1;
    std::istringstream lines(*text);
    for (std::string key; lines >> key;) {
      long long value = 0;
      if (!(lines >> value)) break;
      if (key == "gpu_id") gpu_id = value;
      if (key == "drm_render_minor") render_minor = value;
    }
    if (gpu_id == 0 || render_minor < 0) continue;
    const auto device =
        sys_root / "class" / "drm" / ("renderD" + std::to_string(render_minor)) / "device";
    if (has_counters(device)) gpus.push_back(device);
  }
  if (!gpus.empty()) return gpus;
  for (const auto& [number, card] : numbered_entries(sys_root / "class" / "drm", "card")) {
    if (has_counters(card / "device")) gpus.push_back(card / "device");
  }
  return gpus;
}

}  // namespace

VramProbeSources system_vram_sources() {
  VramProbeSources sources;
  sources.nvml_library = "libnvidia-ml.so.1";  // the driver's soname, found by the dynamic loader
  sources.run_nvidia_smi = [](const std::string& args) -> std::optional<std::string> {
    // Fixed arguments, no user input: popen is enough for a one-shot probe.
    const std::string command = "nvidia-smi " + args + " 2>/dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return std::nullopt;
    std::string out;
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
    const int status = ::pclose(pipe);
    if (status != 0) return std::nullopt;
    return out;
  };
  return sources;
}

double probe_vram_total_gib(const VramProbeSources& sources) {
  double best = 0;
  if (auto devices = nvml_devices(sources)) {
    for (const auto& device : *devices) {
      best = std::max(best, static_cast<double>(device.total_bytes) / kGiB);
    }
    if (best > 0) {
      note_source("total", "nvml");
      return best;
    }
  }
  if (const double gib = nvidia_proc_gib(sources.proc_root); gib > 0) {
    note_source("total", "proc");
    return gib;
  }
  for (double mib : nvidia_smi_mib(sources, "memory.total")) best = std::max(best, mib / 1024.0);
  if (best > 0) {
    note_source("total", "nvidia-smi");
    return best;
  }
  for (const auto& card : amd_gpus(sources.sys_root)) {
    if (auto bytes = read_bytes(card / "mem_info_vram_total")) best = std::max(best, *bytes / kGiB);
  }
  if (best > 0) note_source("total", "amd-sysfs");
  return best;
}

std::optional<double> probe_vram_free_gib(const VramProbeSources& sources) {
  if (auto devices = nvml_devices(sources)) {  // never empty
    note_source("free", "nvml");
    return static_cast<double>(devices->front().free_bytes) / kGiB;
  }
  if (auto values = nvidia_smi_mib(sources, "memory.free"); !values.empty()) {
    note_source("free", "nvidia-smi");
    return values.front() / 1024.0;
  }
  for (const auto& card : amd_gpus(sources.sys_root)) {
    auto total = read_bytes(card / "mem_info_vram_total");
    auto used = read_bytes(card / "mem_info_vram_used");
    if (total) {
      note_source("free", "amd-sysfs");
      return (*total - used.value_or(0)) / kGiB;
    }
  }
  return std::nullopt;
}

std::optional<double> probe_process_vram_gib(const VramProbeSources& sources, int pid) {
  if (pid <= 0) return std::nullopt;
  if (sources.nvml_library && !sources.nvml_library->empty()) {
    if (auto usage = nvml_process_memory(*sources.nvml_library, pid)) {
      note_source("process", "nvml");
      if (!usage->listed) return std::nullopt;
      return static_cast<double>(usage->used_bytes) / kGiB;
    }
  }
  if (!sources.run_nvidia_smi) return std::nullopt;
  auto out =
      sources.run_nvidia_smi("--query-compute-apps=pid,used_memory --format=csv,noheader,nounits");
  if (!out) return std::nullopt;
  std::istringstream lines(*out);
  std::string line;
  double mib = 0;
  bool listed = false;
  while (std::getline(lines, line)) {
    int row_pid = 0;
    double used = 0;
    if (std::sscanf(line.c_str(), "%d , %lf", &row_pid, &used) == 2 && row_pid == pid && used > 0) {
      mib += used;  // one row per device the process uses
      listed = true;
    }
  }
  note_source("process", "nvidia-smi");
  if (!listed) return std::nullopt;
  return mib / 1024.0;
}

std::vector<DeviceMemory> probe_device_memory(const VramProbeSources& sources) {
  std::vector<DeviceMemory> devices;
  if (auto nvml = nvml_devices(sources)) {
    note_source("devices", "nvml");
    for (auto& device : *nvml) {
      devices.push_back({std::move(device.device), static_cast<double>(device.total_bytes),
                         static_cast<double>(device.free_bytes), "CUDA_VISIBLE_DEVICES"});
    }
    return devices;
  }
  if (sources.run_nvidia_smi) {
    // One call for both columns, so that the rows line up.
    if (auto out = sources.run_nvidia_smi(
            "--query-gpu=index,memory.total,memory.free --format=csv,noheader,nounits")) {
      std::istringstream lines(*out);
      std::string line;
      while (std::getline(lines, line)) {
        int index = 0;
        double total_mib = 0;
        double free_mib = 0;
        const int read = std::sscanf(line.c_str(), "%d , %lf , %lf", &index, &total_mib, &free_mib);
        if (read < 2 || total_mib <= 0) continue;
        DeviceMemory device{std::to_string(index), total_mib * 1024 * 1024, std::nullopt,
                            "CUDA_VISIBLE_DEVICES"};
        if (read == 3 && free_mib >= 0) device.free_bytes = free_mib * 1024 * 1024;
        devices.push_back(std::move(device));
      }
    }
  }
  if (!devices.empty()) {
    note_source("devices", "nvidia-smi");
    return devices;
  }
  const auto gpus = amd_gpus(sources.sys_root);
  for (std::size_t hip_index = 0; hip_index < gpus.size(); ++hip_index) {
    const auto& gpu = gpus[hip_index];
    auto total = read_bytes(gpu / "mem_info_vram_total");
    if (!total) continue;
    auto used = read_bytes(gpu / "mem_info_vram_used");
    devices.push_back({std::to_string(hip_index), *total,
                       used ? std::optional<double>(*total - *used) : std::nullopt,
                       "HIP_VISIBLE_DEVICES"});
  }
  if (!devices.empty()) note_source("devices", "amd-sysfs");
  return devices;
}

double memoised_vram_total_gib() {
  static std::once_flag once;
  static double total = 0;
  std::call_once(once, [] {
    total = probe_vram_total_gib(system_vram_sources());
    logger().info("vram.probed", {{"total_gib", total}});
  });
  return total;
}

}  // namespace sw::worker
