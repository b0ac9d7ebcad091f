// GPU memory through NVML (issue 19): the probes of worker/vram_probe.h load a stand-in for the
// driver's libnvidia-ml.so.1 (tests/fakes/fake_nvml.cpp, built as real shared libraries with
// NVML's C ABI) through VramProbeSources::nvml_library, and fall back to the injected nvidia-smi
// output when the library is absent or lacks an entry point.

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "support/temp_dir.h"
#include "worker/vram_probe.h"

namespace sw::worker {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Sources whose nvidia-smi answers with other numbers (one 12 GiB GPU, 5 GiB free; pid 4242 using
// 512 MiB) and counts its calls, and whose /proc says 8 GiB: whichever answers is visible.
struct Sources {
  sw::testing::TempDir dir;
  int nvidia_smi_calls = 0;
  VramProbeSources sources;

  explicit Sources(std::optional<std::filesystem::path> nvml) {
    sources.nvml_library = std::move(nvml);
    sources.proc_root = dir.path() / "proc";
    sources.sys_root = dir.path() / "sys";
    sources.run_nvidia_smi = [this](const std::string& args) -> std::optional<std::string> {
      ++nvidia_smi_calls;
      if (args.starts_with("--query-compute-apps")) return "4242, 512\n";
      if (args.starts_with("--query-gpu=index")) return "0, 12288, 5120\n";
      if (args.starts_with("--query-gpu=memory.free")) return "5120\n";
      return "12288\n";
    };
  }
};

void expect_nvidia_smi_answers(Sources& s) {
  const int calls_before = s.nvidia_smi_calls;
  const auto devices = probe_device_memory(s.sources);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].device, "0");
  EXPECT_EQ(devices[0].total_bytes, 12.0 * kGiB);
  EXPECT_EQ(devices[0].free_bytes, 5.0 * kGiB);
  EXPECT_EQ(probe_vram_total_gib(s.sources), 12.0);
  EXPECT_EQ(probe_vram_free_gib(s.sources), 5.0);
  EXPECT_EQ(probe_process_vram_gib(s.sources, 4242), 0.5);
  EXPECT_EQ(s.nvidia_smi_calls - calls_before, 4);
}

TEST(NvmlProbe, TheMachineSourcesNameTheDriversLibrary) {
  EXPECT_EQ(system_vram_sources().nvml_library, std::filesystem::path("libnvidia-ml.so.1"));
  EXPECT_FALSE(VramProbeSources{}.nvml_library) << "tests and callers opt in";
}

TEST(NvmlProbe, DevicesComeFromNvmlInIndexOrderBeforeProcAndNvidiaSmi) {
  Sources s(std::filesystem::path(SW_FAKE_NVML_LIB));
  std::filesystem::create_directories(s.sources.proc_root / "driver/nvidia/gpus/0000:01:00.0");
  std::ofstream(s.sources.proc_root / "driver/nvidia/gpus/0000:01:00.0/information")
      << "Video Memory:    8192 MB\n";

  const auto devices = probe_device_memory(s.sources);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].device, "0");
  EXPECT_EQ(devices[0].total_bytes, 24.0 * kGiB);
  EXPECT_EQ(devices[0].free_bytes, 20.0 * kGiB);
  EXPECT_EQ(devices[0].visible_env, "CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(devices[1].device, "1");
  EXPECT_EQ(devices[1].total_bytes, 16.0 * kGiB);
  EXPECT_EQ(devices[1].free_bytes, 6.0 * kGiB);
  EXPECT_EQ(devices[1].visible_env, "CUDA_VISIBLE_DEVICES");

  EXPECT_EQ(probe_vram_total_gib(s.sources), 24.0) << "the largest GPU, not /proc's 8 GiB";
  EXPECT_EQ(probe_vram_free_gib(s.sources), 20.0) << "the first GPU's";
  EXPECT_EQ(s.nvidia_smi_calls, 0);
}

TEST(NvmlProbe, AProcessFootprintIsItsUsageSummedOverDevices) {
  Sources s(std::filesystem::path(SW_FAKE_NVML_LIB));
  EXPECT_EQ(probe_process_vram_gib(s.sources, 4242), 4.0) << "3 GiB on GPU 0 + 1 GiB on GPU 1";
  EXPECT_EQ(probe_process_vram_gib(s.sources, 1111), 2.0);
  EXPECT_EQ(probe_process_vram_gib(s.sources, 99), std::nullopt) << "not listed";
  EXPECT_EQ(probe_process_vram_gib(s.sources, 3333), std::nullopt) << "usage not available";
  EXPECT_EQ(probe_process_vram_gib(s.sources, 5555), std::nullopt) << "0 bytes";
  EXPECT_EQ(probe_process_vram_gib(s.sources, 0), std::nullopt);
  EXPECT_EQ(s.nvidia_smi_calls, 0) << "NVML answered, even when it does not list the pid";
}

// The first R535 drivers wrote 32-byte entries through nvmlDeviceGetComputeRunningProcesses_v3;
// read at the documented 24-byte stride, the second entry would be garbage.
TEST(NvmlProbe, ThirtyTwoByteProcessEntriesAreReadAtTheirOwnStride) {
  log::Capture capture(log::Level::Debug);
  Sources s(std::filesystem::path(SW_FAKE_NVML_WIDE_LIB));
  EXPECT_EQ(probe_process_vram_gib(s.sources, 4242), 4.0);
  // Loaded once (only this test opens this file), and the operator can see which entry point.
  const auto loaded = capture.find("nvml.loaded");
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(*loaded[0].field("library"), SW_FAKE_NVML_WIDE_LIB);
  EXPECT_EQ(*loaded[0].field("processes"), "nvmlDeviceGetComputeRunningProcesses_v3");
  EXPECT_EQ(probe_process_vram_gib(s.sources, 1111), 2.0);
  EXPECT_EQ(probe_process_vram_gib(s.sources, 99), std::nullopt);
  EXPECT_EQ(s.nvidia_smi_calls, 0);
}

TEST(NvmlProbe, TheLibraryIsInitialisedOnceForManyProbesOnManyThreads) {
  Sources s(std::filesystem::path(SW_FAKE_NVML_LIB));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(probe_device_memory(s.sources).size(), 2u);
        EXPECT_EQ(probe_process_vram_gib(s.sources, 4242), 4.0);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // The same file again: the loader hands back the instance the probes use (no second copy).
  void* handle = ::dlopen(SW_FAKE_NVML_LIB, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr) << "the probes keep the library loaded";
  auto init_calls = reinterpret_cast<int (*)()>(::dlsym(handle, "fake_nvml_init_calls"));
  ASSERT_NE(init_calls, nullptr);
  EXPECT_EQ(init_calls(), 1);
  ::dlclose(handle);  // drops only this test's reference
  EXPECT_EQ(s.nvidia_smi_calls, 0);
}

TEST(NvmlProbe, NoLibraryMeansTheNvidiaSmiAnswersUnchanged) {
  Sources missing(std::filesystem::path(SW_FAKE_NVML_LIB).parent_path() / "libnvidia-ml-none.so");
  expect_nvidia_smi_answers(missing);
  Sources empty(std::filesystem::path{});
  expect_nvidia_smi_answers(empty);
  Sources unset(std::nullopt);
  expect_nvidia_smi_answers(unset);
}

TEST(NvmlProbe, ALibraryMissingAnEntryPointFallsBackToNvidiaSmi) {
  log::Capture capture(log::Level::Debug);
  Sources s(std::filesystem::path(SW_FAKE_NVML_NO_MEMORY_INFO_LIB));
  expect_nvidia_smi_answers(s);
  expect_nvidia_smi_answers(s);  // tried once, remembered as unusable
  const auto unavailable = capture.find("nvml.unavailable");
  ASSERT_EQ(unavailable.size(), 1u);
  EXPECT_EQ(*unavailable[0].field("library"), SW_FAKE_NVML_NO_MEMORY_INFO_LIB);
  EXPECT_EQ(*unavailable[0].field("reason"), "missing entry point");
  EXPECT_EQ(::dlopen(SW_FAKE_NVML_NO_MEMORY_INFO_LIB, RTLD_NOW | RTLD_NOLOAD), nullptr)
      << "closed again: nothing of it was used";
}

}  // namespace
}  // namespace sw::worker
