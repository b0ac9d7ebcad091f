// config.toml parsing, writing and the operator-editable subset (reference-worker.md §5.2).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "support/temp_dir.h"
#include "transfer/url_policy.h"
#include "worker/config.h"
#include "worker/log_hub.h"
#include "worker/runtime.h"
#include "worker/vram_probe.h"

namespace {

using ::testing::HasSubstr;
using sw::worker::WorkerConfig;

TEST(WorkerConfig, RoundTripsThroughTomlAndIgnoresLegacyKeys) {
  WorkerConfig config;
  config.api_base_url = "http://studio:9790";
  config.vram_threshold_gb = 7.5;
  config.ws_reconnect_attempts = 3;
  config.local_api_port = 0;
  auto parsed = sw::worker::parse_config(sw::worker::format_config(config), "c.toml");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, config);
  auto legacy = sw::worker::parse_config("api_base_url = 'http://x'\nauto_enabled = true\n", "c");
  EXPECT_TRUE(legacy);
}

// The progress deadlines (runner_pool.h) are the operator's: written when not the default, read
// back, and a zero (a deadline that fires at once) is refused naming the key.
TEST(WorkerConfig, RunnerStallTimesRoundTripAndZeroIsRefused) {
  WorkerConfig config;
  config.api_base_url = "http://studio:9790";
  EXPECT_EQ(sw::worker::format_config(config).find("stall"), std::string::npos);
  config.runner_load_stall_secs = 600;
  config.runner_inference_stall_secs = 900;
  const std::string text = sw::worker::format_config(config);
  EXPECT_THAT(text, HasSubstr("runner_load_stall_secs = 600"));
  EXPECT_THAT(text, HasSubstr("runner_inference_stall_secs = 900"));
  auto parsed = sw::worker::parse_config(text, "c.toml");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, config);
  auto zero =
      sw::worker::parse_config("api_base_url = 'http://x'\nrunner_inference_stall_secs = 0\n", "c");
  ASSERT_FALSE(zero);
  EXPECT_THAT(zero.error().message, HasSubstr("runner_inference_stall_secs"));
}

// The daemon's state is not the operator's: config.toml's text never carries it, state.toml's
// does, and the reference's state keys are still read from a config.toml that holds them.
TEST(WorkerConfig, TheStateIsWrittenToItsOwnFileAndReadFromAReferenceConfig) {
  WorkerConfig config;
  config.api_base_url = "http://studio:9790";
  config.worker_id = "w-1";
  config.auth_token = "t'ok\"en";
  config.install_id = "i-1";
  config.local_api_token = "local";
  const std::string settings = sw::worker::format_config(config);
  for (const char* key : {"worker_id", "auth_token", "install_id", "local_api_token"}) {
    EXPECT_EQ(settings.find(key), std::string::npos) << key << " in config.toml:\n" << settings;
  }
  auto state = sw::worker::parse_state(sw::worker::format_state(config), "state.toml");
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(*state, config.state());

  auto reference = sw::worker::parse_config(
      "api_base_url = 'http://x'\nworker_id = 'w-9'\nauth_token = 'tok'\n", "config.toml");
  ASSERT_TRUE(reference) << reference.error().message;
  EXPECT_EQ(reference->worker_id, "w-9");
  EXPECT_EQ(reference->auth_token, "tok");
}

TEST(WorkerConfig, BadValuesNameTheKeyAndSyntaxErrorsNeverEchoTheText) {
  auto typo = sw::worker::parse_config("api_base_url = 'http://x'\nvram = 1\n", "c.toml");
  ASSERT_FALSE(typo);
  EXPECT_THAT(typo.error().message, HasSubstr("vram: unknown key"));
  auto type = sw::worker::parse_config("api_base_url = 'http://x'\nauto_start = 'yes'\n", "c");
  ASSERT_FALSE(type);
  EXPECT_THAT(type.error().message, HasSubstr("auto_start: must be true or false"));
  auto negative = sw::worker::parse_config("api_base_url = 'http://x'\nvram_threshold_gb = -2\n", "c");
  ASSERT_FALSE(negative);
  EXPECT_THAT(negative.error().message, HasSubstr("c: vram_threshold_gb: "));
  auto broken = sw::worker::parse_config("auth_token = 'secret-abc\n", "c");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, sw::Code::Protocol);
  EXPECT_THAT(broken.error().message, HasSubstr("c:1:"));
  EXPECT_EQ(broken.error().message.find("secret-abc"), std::string::npos);
}

// There is no default studio: a config without a URL parses (so that `register --api-base-url`
// can fix it) but cannot run, and says how to name one.
TEST(WorkerConfig, NoStudioIsConfiguredUntilTheOperatorNamesOne) {
  EXPECT_EQ(WorkerConfig{}.api_base_url, "");
  auto parsed = sw::worker::parse_config("vram_threshold_gb = 4\n", "c");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->api_base_url, "");
  EXPECT_EQ(sw::worker::format_config(*parsed).find("api_base_url"), std::string::npos);
  auto refused = sw::worker::check_runnable(*parsed);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("studio-worker register --api-base-url URL"));
  auto edit = sw::worker::apply_editable_config(*parsed, R"({"apiBaseUrl":""})");
  ASSERT_FALSE(edit);
  EXPECT_THAT(edit.error().message, HasSubstr("apiBaseUrl"));
}

// The reference's settings for features this build lacks are accepted, kept, and named inert;
// GET /daemon/config keeps their fields (§5.2).
TEST(WorkerConfig, SettingsForMissingFeaturesAreAcceptedAndReportedInert) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  std::ofstream(path)
      << "api_base_url = 'http://x'\nauto_update_enabled = false\n"
         "auto_update_interval_secs = 3600\nauto_update_feed = 'https://f.example/'\n"
         "auto_update_prerelease = true\n";
  auto loaded = sw::worker::load_config(path, sw::worker::LoadMode::ReadOnly);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->inert_keys,
            (std::vector<std::string>{"auto_update_enabled", "auto_update_feed",
                                      "auto_update_interval_secs", "auto_update_prerelease"}));
  for (const auto& key : loaded->inert_keys) EXPECT_TRUE(sw::worker::inert_reason(key)) << key;
  EXPECT_FALSE(sw::worker::inert_reason("vram_threshold_gb"));
  const auto json = sw::worker::editable_config_json(loaded->config);
  EXPECT_THAT(json, HasSubstr(R"("autoUpdateEnabled":false)"));
  EXPECT_THAT(json, HasSubstr(R"("autoUpdateIntervalSecs":3600)"));
  EXPECT_THAT(json, HasSubstr(R"("autoUpdateFeed":"https://f.example/")"));
  EXPECT_THAT(json, HasSubstr(R"("autoUpdatePrerelease":true)"));
}

TEST(WorkerConfig, TheEnginesTableSwitchesTheSyntheticEngineOff) {
  // Default: on, and nothing about it is written.
  WorkerConfig config;
  EXPECT_TRUE(config.engines.synthetic);
  EXPECT_EQ(sw::worker::format_config(config).find("[engines]"), std::string::npos);

  auto off = sw::worker::parse_config("api_base_url = 'http://x'\n\n[engines]\nsynthetic = false\n",
                                      "c.toml");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->engines.synthetic);
  // Written back as a table after every top-level key, and read back the same.
  const std::string text = sw::worker::format_config(*off);
  EXPECT_THAT(text, HasSubstr("[engines]\nsynthetic = false\n"));
  auto again = sw::worker::parse_config(text, "c.toml");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *off);
  // The dotted spelling is the same key.
  auto dotted =
      sw::worker::parse_config("api_base_url = 'http://x'\nengines.synthetic = false\n", "c");
  ASSERT_TRUE(dotted) << dotted.error().message;
  EXPECT_FALSE(dotted->engines.synthetic);

  auto typo =
      sw::worker::parse_config("api_base_url = 'http://x'\n[engines]\nsynthetc = false\n", "c");
  ASSERT_FALSE(typo);
  EXPECT_THAT(typo.error().message, HasSubstr("engines.synthetc: unknown key"));
  auto type =
      sw::worker::parse_config("api_base_url = 'http://x'\n[engines]\nsynthetic = 'no'\n", "c");
  ASSERT_FALSE(type);
  EXPECT_THAT(type.error().message, HasSubstr("engines.synthetic: must be true or false"));
  // The reference's removed `engines` key (not a table) is still ignored.
  auto legacy = sw::worker::parse_config("api_base_url = 'http://x'\nengines = ['sdcpp']\n", "c");
  ASSERT_TRUE(legacy) << legacy.error().message;
  EXPECT_TRUE(legacy->engines.synthetic);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A config that does not parse is refused with its file, line and column, in every mode: nothing
// is moved aside, rewritten or created next to it (issue 17; it used to be replaced by defaults).
TEST(WorkerConfig, AFileThatDoesNotParseIsRefusedAndLeftAsItIs) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string text = "api_base_url = 'http://x'\nauth_token = 'a'\nauth_token = 'b'\n";
  std::ofstream(path) << text;
  for (auto mode : {sw::worker::LoadMode::ReadOnly, sw::worker::LoadMode::Migrate}) {
    auto loaded = sw::worker::load_config(path, mode, 8.0);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, sw::Code::Protocol);
    EXPECT_THAT(loaded.error().message, HasSubstr(path.string() + ":3:"));
    EXPECT_EQ(loaded.error().message.find("'b'"), std::string::npos);
  }
  EXPECT_EQ(read_text(path), text);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"config.toml"});
}

// A reference-style config.toml (identity keys in it): its state is copied to state.toml once
// (0600), config.toml is untouched, and afterwards state.toml wins over what config.toml says.
TEST(WorkerConfig, AReferenceConfigsStateIsMigratedOnceAndTheStateFileWins) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string text =
      "# the operator's comment\napi_base_url = 'http://x'\nworker_id = 'w-1'\n"
      "auth_token = 'tok-1'\ninstall_id = 'i-1'\n";
  std::ofstream(path) << text;
  const auto state_path = dir.path() / "state.toml";

  auto read_only = sw::worker::load_config(path, sw::worker::LoadMode::ReadOnly);
  ASSERT_TRUE(read_only) << read_only.error().message;
  EXPECT_EQ(read_only->config.worker_id, "w-1");
  EXPECT_FALSE(read_only->state_file);
  EXPECT_FALSE(std::filesystem::exists(state_path)) << "ReadOnly writes nothing";

  auto migrated = sw::worker::load_config(path, sw::worker::LoadMode::Migrate);
  ASSERT_TRUE(migrated) << migrated.error().message;
  EXPECT_TRUE(migrated->migrated);
  EXPECT_EQ(migrated->state_keys_in_config,
            (std::vector<std::string>{"auth_token", "install_id", "worker_id"}));
  EXPECT_EQ(read_text(path), text);
  EXPECT_EQ(std::filesystem::status(state_path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto state = sw::worker::load_state(state_path);
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->worker_id, "w-1");
  EXPECT_EQ((*state)->auth_token, "tok-1");
  EXPECT_EQ((*state)->install_id, "i-1");

  // Once: a later load finds the state file and migrates nothing.
  auto again = sw::worker::load_config(path, sw::worker::LoadMode::Migrate);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->migrated);
  EXPECT_TRUE(again->state_file);

  // The daemon's changes (here: new credentials) go to state.toml only; config.toml keeps the
  // operator's text, comment included, and its stale keys are not read.
  WorkerConfig next = again->config;
  next.worker_id = "w-2";
  next.auth_token = "tok-2";
  ASSERT_TRUE(sw::worker::save_changes(path, again->config, next));
  EXPECT_EQ(read_text(path), text);
  auto reloaded = sw::worker::load_config(path, sw::worker::LoadMode::ReadOnly);
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->config.worker_id, "w-2");
  EXPECT_EQ(reloaded->config.auth_token, "tok-2");
  // An operator's setting change writes config.toml (without the state keys) and not the state.
  const std::string state_text = read_text(state_path);
  WorkerConfig edited = reloaded->config;
  edited.vram_threshold_gb = 3;
  ASSERT_TRUE(sw::worker::save_changes(path, reloaded->config, edited));
  EXPECT_EQ(read_text(state_path), state_text);
  EXPECT_THAT(read_text(path), HasSubstr("vram_threshold_gb = 3.0"));
  EXPECT_EQ(read_text(path).find("tok-1"), std::string::npos);
}

TEST(WorkerConfig, EditableConfigValidatesEveryField) {
  WorkerConfig config;
  auto ok = sw::worker::apply_editable_config(config, R"({"apiBaseUrl":"http://h:1","autoStart":false})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->api_base_url, "http://h:1");
  EXPECT_FALSE(ok->auto_start);
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"apiBaseUrl":"ftp://x"})", "apiBaseUrl"},
           {R"({"autoUpdateIntervalSecs":10})", "autoUpdateIntervalSecs"},
           {R"({"modelsRoot":""})", "modelsRoot"},
           {R"({"vramThresholdGb":"big"})", "vramThresholdGb"}}) {
    auto refused = sw::worker::apply_editable_config(config, body);
    ASSERT_FALSE(refused) << body;
    EXPECT_THAT(refused.error().message, HasSubstr(field));
  }
}

// No presence probe exists in this build: the idle gate would hold every job back for ever, so it
// is refused where it is set, never accepted and left to turn the worker off in silence.
TEST(WorkerConfig, OnlyWhenIdleIsRefusedBecauseNoPresenceProbeExists) {
  WorkerConfig config;
  config.api_base_url = "http://studio:9790";
  EXPECT_TRUE(sw::worker::check_runnable(config));
  config.only_when_idle = true;
  auto refused = sw::worker::check_runnable(config);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, sw::Code::InvalidArgument);
  EXPECT_THAT(refused.error().message, HasSubstr("only_when_idle"));
  EXPECT_THAT(refused.error().message, HasSubstr("presence"));

  auto edit = sw::worker::apply_editable_config(WorkerConfig{}, R"({"onlyWhenIdle":true})");
  ASSERT_FALSE(edit);
  EXPECT_EQ(edit.error().code, sw::Code::InvalidArgument);
  EXPECT_THAT(edit.error().message, HasSubstr("onlyWhenIdle"));
  auto off = sw::worker::apply_editable_config(WorkerConfig{}, R"({"onlyWhenIdle":false})");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->only_when_idle);

  // A file that sets it still loads (status and config can show it; `run` refuses it).
  auto parsed = sw::worker::parse_config("api_base_url = 'http://x'\nonly_when_idle = true\n", "c");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->only_when_idle);
}

TEST(StudioUrls, FollowTheReferenceRules) {
  using sw::transfer::studio_websocket_url;
  EXPECT_EQ(*studio_websocket_url("https://studio.minis.gg/", "w-1"),
            "wss://studio.minis.gg/graphics/api/workers/w-1/connect");
  EXPECT_EQ(*studio_websocket_url("http://localhost:9790", "w-1"),
            "ws://localhost:9790/graphics/api/workers/w-1/connect");
  EXPECT_EQ(*studio_websocket_url("https://x/custom/graphics/api/", "w-1"),
            "wss://x/custom/graphics/api/workers/w-1/connect");
  EXPECT_FALSE(studio_websocket_url("ftp://x", "w-1"));
  EXPECT_FALSE(studio_websocket_url("http://x", "../w"));
  EXPECT_EQ(*sw::transfer::studio_base_url("https://x/a/graphics/api/?q=1#f"), "https://x/a");
  // Schemes are case-insensitive; a port is a TCP port; credentials have no place in it (the
  // worker signs in with its token); a URL that does not parse is quoted back.
  EXPECT_EQ(*sw::transfer::studio_base_url("HTTP://127.0.0.1:9790"), "http://127.0.0.1:9790");
  EXPECT_EQ(*studio_websocket_url("http://[::1]:9790", "w-1"),
            "ws://[::1]:9790/graphics/api/workers/w-1/connect");
  auto port = sw::transfer::studio_base_url("http://127.0.0.1:99999");
  ASSERT_FALSE(port);
  EXPECT_THAT(port.error().message, HasSubstr("port 99999 is not a TCP port"));
  auto credentials = sw::transfer::studio_base_url("http://u:secret@127.0.0.1:9790");
  ASSERT_FALSE(credentials);
  EXPECT_THAT(credentials.error().message, HasSubstr("user name or password"));
  EXPECT_THAT(credentials.error().message, ::testing::Not(HasSubstr("secret")));
  auto bad_port = sw::transfer::studio_base_url("http://u:secret@127.0.0.1:99999");
  ASSERT_FALSE(bad_port);
  EXPECT_THAT(bad_port.error().message, HasSubstr(R"("http://…@127.0.0.1:99999")"));
  auto spaced = sw::transfer::studio_base_url(" http://127.0.0.1:9790");
  ASSERT_FALSE(spaced);
  EXPECT_THAT(spaced.error().message, HasSubstr(R"(" http://127.0.0.1:9790" is not a valid)"));
  // config.toml's check is the same parser: what connects is what validates.
  sw::worker::WorkerConfig config;
  config.api_base_url = "HTTPS://studio.example";
  EXPECT_TRUE(sw::worker::validate_config(config, sw::worker::KeyNames::Toml));
  config.api_base_url = "http://127.0.0.1:99999";
  auto refused = sw::worker::validate_config(config, sw::worker::KeyNames::Toml);
  ASSERT_FALSE(refused);
  EXPECT_THAT(
      refused.error().message,
      HasSubstr(
          "api_base_url: \"http://127.0.0.1:99999\" is not a valid absolute URL: port 99999"));
}

TEST(Reconnect, BackoffDoublesToTheCapWithJitterAroundIt) {
  using namespace std::chrono_literals;
  using sw::worker::reconnect_delay;
  EXPECT_EQ(reconnect_delay(1, 1000ms, 30000ms, 0.5), 1000ms);
  EXPECT_EQ(reconnect_delay(4, 1000ms, 30000ms, 0.5), 8000ms);
  EXPECT_EQ(reconnect_delay(9, 1000ms, 30000ms, 0.5), 30000ms);
  EXPECT_EQ(reconnect_delay(1, 1000ms, 30000ms, 0.0), 500ms);
  EXPECT_EQ(reconnect_delay(1, 1000ms, 30000ms, 0.999), 1499ms);
}

TEST(LogHub, TheShipQueueDropsTheOldestAndSaysSoAndFailedBatchesGoBack) {
  sw::worker::LogHub hub(10, 3);
  for (int i = 0; i < 5; ++i) hub.ship(sw::log::Level::Info, "ws", "m" + std::to_string(i));
  hub.local(sw::log::Level::Info, "ws", "local only");
  auto batch = hub.take_batch();
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(batch[0].category, "logs");
  EXPECT_EQ(batch[0].message, "ship queue full (3 entries); dropped 2 oldest");
  EXPECT_EQ(batch[1].message, "m2");
  hub.requeue_front({batch.begin() + 1, batch.end()});
  EXPECT_EQ(hub.take_batch().front().message, "m2");
  auto page = hub.after(0);
  EXPECT_EQ(page.entries.size(), 6u);
  EXPECT_EQ(hub.after(page.seq).entries.size(), 0u);
  EXPECT_EQ(hub.after(page.seq + 10).entries.size(), 6u);
}

TEST(VramProbe, ReadsNvidiaProcThenNvidiaSmiThenAmdSysfs) {
  sw::testing::TempDir dir;
  sw::worker::VramProbeSources sources;
  sources.proc_root = dir.path() / "proc";
  sources.sys_root = dir.path() / "sys";
  EXPECT_EQ(sw::worker::probe_vram_total_gib(sources), 0.0);
  std::filesystem::create_directories(sources.sys_root / "class/drm/card0/device");
  std::ofstream(sources.sys_root / "class/drm/card0/device/mem_info_vram_total") << "17179869184\n";
  EXPECT_EQ(sw::worker::probe_vram_total_gib(sources), 16.0);
  sources.run_nvidia_smi = [](const std::string&) -> std::optional<std::string> {
    return "24576\n12288\n";
  };
  EXPECT_EQ(sw::worker::probe_vram_total_gib(sources), 24.0);
  std::filesystem::create_directories(sources.proc_root / "driver/nvidia/gpus/0000:01:00.0");
  std::ofstream(sources.proc_root / "driver/nvidia/gpus/0000:01:00.0/information")
      << "Model: X\nVideo Memory:    8192 MB\n";
  EXPECT_EQ(sw::worker::probe_vram_total_gib(sources), 8.0);
}

// What one runner process holds on the GPU, for learned footprints: nvidia-smi's compute-apps
// rows for its pid, summed over the devices it uses; unknown when it is not listed.
TEST(VramProbe, AProcessFootprintIsItsComputeAppsRowsSummed) {
  sw::worker::VramProbeSources sources;
  EXPECT_EQ(sw::worker::probe_process_vram_gib(sources, 42), std::nullopt) << "no nvidia-smi";
  std::string asked;
  sources.run_nvidia_smi = [&asked](const std::string& args) -> std::optional<std::string> {
    asked = args;
    return "42, 3072\n7, 1024\n42, 1024\n[N/A]\n";
  };
  EXPECT_EQ(sw::worker::probe_process_vram_gib(sources, 42), 4.0);
  EXPECT_EQ(asked, "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits");
  EXPECT_EQ(sw::worker::probe_process_vram_gib(sources, 8), std::nullopt) << "not listed";
}

// The free-memory probe behind admission on a GPU machine: nvidia-smi's memory.free of the first
// GPU, else AMD's sysfs total − used, else unknown (which admits nothing).
TEST(VramProbe, FreeMemoryComesFromNvidiaSmiThenAmdSysfsElseIsUnknown) {
  sw::testing::TempDir dir;
  sw::worker::VramProbeSources sources;
  sources.proc_root = dir.path() / "proc";
  sources.sys_root = dir.path() / "sys";
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), std::nullopt);

  const auto card = sources.sys_root / "class/drm/card0/device";
  std::filesystem::create_directories(card);
  std::filesystem::create_directories(sources.sys_root / "class/drm/card0-DP-1");
  std::ofstream(card / "mem_info_vram_total") << "17179869184\n";  // 16 GiB
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), 16.0) << "nothing used yet";
  std::ofstream(card / "mem_info_vram_used") << "4294967296\n";  // 4 GiB
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), 12.0);

  // nvidia-smi asked for memory.free (not total) in MiB, one line per GPU: the first counts.
  std::vector<std::string> asked;
  sources.run_nvidia_smi = [&asked](const std::string& args) -> std::optional<std::string> {
    asked.push_back(args);
    if (args.find("--query-gpu=memory.free ") == std::string::npos) return "99999\n";
    return "10240\n2048\n";
  };
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), 10.0);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], "--query-gpu=memory.free --format=csv,noheader,nounits");
  // A driver that answers nothing readable falls back to sysfs; one that is missing too.
  sources.run_nvidia_smi = [](const std::string&) -> std::optional<std::string> {
    return "[N/A]\n";
  };
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), 12.0);
  sources.run_nvidia_smi = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  EXPECT_EQ(sw::worker::probe_vram_free_gib(sources), 12.0);
}

}  // namespace

namespace {

// Inert settings (kInertSettings) take any value of their TOML type: nothing reads them, so none
// may stop `run` (an interval under the API's 60 s, a feed that is not a URL, a port out of range
// used to be refused). Their values are kept as written. A wrong TOML type is still refused,
// naming the key.
TEST(WorkerConfig, InertSettingsAcceptAnyValueAndNeverStopRun) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  std::ofstream(path) << "api_base_url = 'http://x'\nauto_update_interval_secs = 30\n"
                         "auto_update_feed = 'not a url'\nstream_port = 99999\n";
  auto loaded = sw::worker::load_config(path, sw::worker::LoadMode::ReadOnly);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(sw::worker::check_runnable(loaded->config)) << "an inert setting stopped run";
  EXPECT_EQ(loaded->config.auto_update_interval_secs, 30);
  EXPECT_EQ(loaded->config.auto_update_feed, "not a url");
  EXPECT_EQ(loaded->config.stream_port, 99999);
  const auto again = sw::worker::parse_config(sw::worker::format_config(loaded->config), "c");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, loaded->config);
  // A PUT that sets another field is not refused for the file's inert values; one that sets the
  // interval itself keeps the reference's API rule (§5.2).
  EXPECT_TRUE(sw::worker::apply_editable_config(loaded->config, R"({"vramThresholdGb":4})"));
  auto put = sw::worker::apply_editable_config(loaded->config, R"({"autoUpdateIntervalSecs":30})");
  ASSERT_FALSE(put);
  EXPECT_THAT(put.error().message, HasSubstr("autoUpdateIntervalSecs"));

  auto wrong_type = sw::worker::parse_config("auto_update_feed = 3\n", "c.toml");
  ASSERT_FALSE(wrong_type);
  EXPECT_THAT(wrong_type.error().message, HasSubstr("auto_update_feed"));
}

// A bad value in config.toml is named by its TOML key, not by the JSON field of the local API.
TEST(WorkerConfig, FileErrorsNameTheTomlKey) {
  auto threshold = sw::worker::parse_config("vram_threshold_gb = -1\n", "c.toml");
  ASSERT_FALSE(threshold);
  EXPECT_THAT(threshold.error().message, HasSubstr("c.toml: vram_threshold_gb: "));
  EXPECT_THAT(threshold.error().message, ::testing::Not(HasSubstr("vramThresholdGb")));
  auto url = sw::worker::parse_config("api_base_url = 'ftp://x'\n", "c.toml");
  ASSERT_FALSE(url);
  EXPECT_THAT(url.error().message, HasSubstr("c.toml: api_base_url: "));
  // PUT /daemon/config keeps the JSON names.
  auto put = sw::worker::apply_editable_config(WorkerConfig{}, R"({"vramThresholdGb":-1})");
  ASSERT_FALSE(put);
  EXPECT_THAT(put.error().message, HasSubstr("vramThresholdGb"));
}

// `register --reset`'s recovery: a state.toml that does not parse is renamed to
// state.toml.broken-<ts> (0600, bytes kept); a usable one, or a broken config.toml, moves nothing.
TEST(WorkerConfig, AnUnusableStateFileIsSetAsideOnlyWhenTheConfigIsUsable) {
  sw::testing::TempDir dir;
  const auto config = dir.path() / "config.toml";
  const auto state = dir.path() / "state.toml";
  std::ofstream(config) << "api_base_url = 'http://x'\n";
  std::ofstream(state) << "worker_id = 'a'\n";
  auto fine = sw::worker::set_aside_unusable_state(config);
  ASSERT_TRUE(fine) << fine.error().message;
  EXPECT_FALSE(*fine);
  EXPECT_TRUE(std::filesystem::exists(state));

  const std::string broken = "worker_id = 'a'\nworker_id = 'b'\n";
  std::ofstream(state, std::ios::trunc) << broken;
  std::ofstream(config, std::ios::trunc) << "vram_threshold_gb = 1\nvram_threshold_gb = 2\n";
  auto config_broken = sw::worker::set_aside_unusable_state(config);
  ASSERT_FALSE(config_broken) << "moved state.toml aside for config.toml's error";
  EXPECT_THAT(config_broken.error().message, HasSubstr("config.toml"));
  EXPECT_TRUE(std::filesystem::exists(state));

  std::ofstream(config, std::ios::trunc) << "api_base_url = 'http://x'\n";
  auto aside = sw::worker::set_aside_unusable_state(config);
  ASSERT_TRUE(aside) << aside.error().message;
  ASSERT_TRUE(*aside);
  EXPECT_FALSE(std::filesystem::exists(state));
  EXPECT_THAT((*aside)->filename().string(), ::testing::StartsWith("state.toml.broken-"));
  std::ifstream in(**aside);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
            broken);
  EXPECT_EQ(std::filesystem::status(**aside).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

}  // namespace
