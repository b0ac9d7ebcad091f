// The model cache against a real HTTP server on 127.0.0.1: layout, reuse without a second
// request, operator-placed copies, corruption, disk preflight, one download for concurrent
// callers, eviction that spares files in use, progress breadcrumbs.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "common/log.h"
#include "common/sha256.h"
#include "models/model_cache.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"

namespace sw::models {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::shared_ptr<const std::string> blob(std::size_t size, char seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(seed)) % 251);
  return std::make_shared<const std::string>(std::move(s));
}

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The files a model directory holds, lock files aside (they are created before any download).
std::vector<std::string> kept_files(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.ends_with(".lock")) names.push_back(name);
  }
  return names;
}

class ModelCacheTest : public ::testing::Test {
 protected:
  testing::HttpTestServer server;
  testing::TempDir dir;
  std::shared_ptr<const std::string> weights = blob(512 * 1024, 1);
  std::shared_ptr<const std::string> vae = blob(64 * 1024, 2);

  void SetUp() override {
    server.set_route("/weights.gguf", testing::serving(weights));
    server.set_route("/vae.safetensors", testing::serving(vae));
  }
  CacheConfig config(std::uint64_t budget = 0) {
    CacheConfig c;
    c.root = dir.path() / "models";
    c.max_bytes = budget;
    c.stall_timeout = std::chrono::seconds(2);
    return c;
  }
  proto::ModelFile file(const std::string& name, const std::shared_ptr<const std::string>& body,
                        bool with_sha = true) {
    proto::ModelFile f;
    f.role = "model";
    f.url = server.url("/" + name);
    f.filename = name;
    f.approx_bytes = body->size();
    if (with_sha) f.sha256 = sha256_hex(*body);
    return f;
  }
  proto::ModelSource source(std::vector<proto::ModelFile> files) {
    return proto::ModelSource{"llama-cpp", std::move(files), {}};
  }
};

TEST_F(ModelCacheTest, DownloadsIntoPerModelDirsAndReusesWithoutASecondRequest) {
  ModelCache cache(config());
  auto src = source({file("weights.gguf", weights), file("vae.safetensors", vae)});
  auto first = cache.ensure_files("org/My Model:Q4", src);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].path,
            dir.path() / "models" / "by-model" / "org_My_Model_Q4" / "weights.gguf");
  EXPECT_TRUE((*first)[0].downloaded);
  EXPECT_EQ(contents((*first)[0].path), *weights);
  EXPECT_EQ(contents((*first)[1].path), *vae);

  auto second = cache.ensure_files("org/My Model:Q4", src);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE((*second)[0].downloaded);
  EXPECT_EQ(server.request_count("/weights.gguf"), 1u);
  EXPECT_EQ(server.request_count("/vae.safetensors"), 1u);
}

TEST_F(ModelCacheTest, UnsafeNamesAndUrlsAreRefusedBeforeAnyRequest) {
  ModelCache cache(config());
  auto traversal = file("weights.gguf", weights);
  traversal.filename = "../../evil.gguf";
  auto refused = cache.ensure_files("m", source({file("vae.safetensors", vae), traversal}));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("must be a plain file name"));

  auto plain_http = file("weights.gguf", weights);
  plain_http.url = "http://example.com/weights.gguf";
  auto insecure = cache.ensure_files("m", source({plain_http}));
  ASSERT_FALSE(insecure);
  EXPECT_THAT(insecure.error().message, HasSubstr("must be https"));

  EXPECT_TRUE(server.requests().empty());
  EXPECT_FALSE(fs::exists(dir.path() / "evil.gguf"));
}

TEST_F(ModelCacheTest, OperatorPlacedTopLevelCopyIsUsedInPlace) {
  fs::create_directories(dir.path() / "models");
  std::ofstream(dir.path() / "models" / "weights.gguf", std::ios::binary) << *weights;
  ModelCache cache(config());
  auto files = cache.ensure_files("m", source({file("weights.gguf", weights)}));
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ((*files)[0].path, dir.path() / "models" / "weights.gguf");
  EXPECT_EQ(server.request_count("/weights.gguf"), 0u);

  // A top-level file with the wrong content is left alone and the real one is downloaded.
  std::ofstream(dir.path() / "models" / "vae.safetensors", std::ios::binary) << "not a vae";
  auto other = cache.ensure_files("m", source({file("vae.safetensors", vae)}));
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_EQ((*other)[0].path, model_dir(dir.path() / "models", "m") / "vae.safetensors");
  EXPECT_EQ(contents(dir.path() / "models" / "vae.safetensors"), "not a vae");
}

// The bug of issue 14: the reference's catalogue names models after their file
// (`z-image-turbo-q4_k_m.gguf`), and an operator keeps such a file at the top of the models root.
// A per-model directory `<root>/<id>/` then could not be created ("Not a directory").
TEST_F(ModelCacheTest, AModelWhoseIdIsItsFileNameProvisionsBesideATopLevelFileOfThatName) {
  const fs::path root = dir.path() / "models";
  fs::create_directories(root);
  // A different file of the same name at the top (another size): not reused, and not in the way.
  std::ofstream(root / "weights.gguf", std::ios::binary) << "an operator's other copy";
  ModelCache cache(config());
  auto files = cache.ensure_files("weights.gguf", source({file("weights.gguf", weights)}));
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ((*files)[0].path, root / "by-model" / "weights.gguf" / "weights.gguf");
  EXPECT_EQ(contents((*files)[0].path), *weights);
  EXPECT_EQ(contents(root / "weights.gguf"), "an operator's other copy");

  // The same id with the right file at the top: used in place, nothing downloaded.
  fs::remove_all(root / "by-model");
  std::ofstream(root / "weights.gguf", std::ios::binary | std::ios::trunc) << *weights;
  auto placed = cache.ensure_files("weights.gguf", source({file("weights.gguf", weights)}));
  ASSERT_TRUE(placed) << placed.error().message;
  EXPECT_EQ((*placed)[0].path, root / "weights.gguf");
  EXPECT_EQ(server.request_count("/weights.gguf"), 1u);
  std::vector<std::string> held_ids;
  for (const auto& model : cache.held_models()) held_ids.push_back(model.id);
  EXPECT_EQ(held_ids, (std::vector<std::string>{"weights.gguf"}));
}

TEST_F(ModelCacheTest, AFileOfThePreviousLayoutIsMovedOverWithoutADownload) {
  const fs::path root = dir.path() / "models";
  const fs::path previous = root / "org_m" / "weights.gguf";
  fs::create_directories(previous.parent_path());
  std::ofstream(previous, std::ios::binary) << *weights;
  ModelCache cache(config());
  auto files = cache.ensure_files("org/m", source({file("weights.gguf", weights)}));
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ((*files)[0].path, model_dir(root, "org/m") / "weights.gguf");
  EXPECT_FALSE((*files)[0].downloaded);
  EXPECT_EQ(contents((*files)[0].path), *weights);
  EXPECT_EQ(server.request_count("/weights.gguf"), 0u);
  EXPECT_FALSE(fs::exists(previous.parent_path())) << "the emptied old directory is removed";
}

TEST_F(ModelCacheTest, HeldModelsAreThoseWithEveryFilePresentUnderTheirExactId) {
  ModelCache cache(config());
  EXPECT_TRUE(cache.held_models().empty()) << "no root yet";
  ASSERT_TRUE(cache.ensure_files(
      "org/My Model:Q4", source({file("weights.gguf", weights), file("vae.safetensors", vae)})));
  proto::ModelSource sd{"sd-cpp", {file("vae.safetensors", vae)}, {}};
  ASSERT_TRUE(cache.ensure_files("pix", sd));
  auto held = cache.held_models();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].id, "org/My Model:Q4");  // the exact id, not the directory's name
  EXPECT_EQ(held[0].engine, "llama-cpp");
  EXPECT_EQ(held[1].id, "pix");
  EXPECT_EQ(held[1].engine, "sd-cpp");

  // A model missing one of its files is not held.
  fs::remove(model_dir(dir.path() / "models", "org/My Model:Q4") / "vae.safetensors");
  held = cache.held_models();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].id, "pix");
}

TEST_F(ModelCacheTest, CorruptCachedFileIsReplaced) {
  ModelCache cache(config());
  auto src = source({file("weights.gguf", weights)});
  ASSERT_TRUE(cache.ensure_files("m", src));
  const fs::path cached = model_dir(dir.path() / "models", "m") / "weights.gguf";
  fs::remove(model_dir(dir.path() / "models", "m") / "weights.gguf.sha256");
  std::ofstream(cached, std::ios::binary | std::ios::trunc) << "bit rot";
  auto again = cache.ensure_files("m", src);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE((*again)[0].downloaded);
  EXPECT_EQ(contents(cached), *weights);
  EXPECT_EQ(server.request_count("/weights.gguf"), 2u);
}

TEST_F(ModelCacheTest, AFileChangedUnderItsSidecarIsHashedAgain) {
  ModelCache cache(config());
  auto src = source({file("weights.gguf", weights)});
  ASSERT_TRUE(cache.ensure_files("m", src));
  const fs::path cached = model_dir(dir.path() / "models", "m") / "weights.gguf";
  ASSERT_TRUE(fs::exists(model_dir(dir.path() / "models", "m") / "weights.gguf.sha256"));
  std::ofstream(cached, std::ios::binary | std::ios::trunc) << "copied over by hand";
  auto again = cache.ensure_files("m", src);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE((*again)[0].downloaded);  // the stale sidecar was not trusted
  EXPECT_EQ(contents(cached), *weights);
}

TEST_F(ModelCacheTest, DiskPreflightRefusesWhatCannotFit) {
  ModelCache cache(config());
  auto huge = file("weights.gguf", weights);
  huge.approx_bytes = 1ull << 60;  // an exabyte
  auto refused = cache.ensure_files("m", source({huge}));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("not enough disk space"));
  EXPECT_THAT(refused.error().message, HasSubstr("approxBytes"));
  EXPECT_EQ(server.request_count("/weights.gguf"), 0u);
}

// Issue 16: the sizes a source declares bound what enters the cache, both ways.
TEST_F(ModelCacheTest, ASourceDeclaring1000BytesNeverCachesAFiveMiBBody) {
  auto five_mib = blob(5 * 1024 * 1024, 3);
  server.set_route("/big.gguf", testing::serving(five_mib));
  ModelCache cache(config());
  for (bool with_sha : {false, true}) {
    auto big = file("big.gguf", five_mib, with_sha);
    big.approx_bytes = 1000;
    auto refused = cache.ensure_files("m", source({big}));
    ASSERT_FALSE(refused) << "with_sha=" << with_sha << ": a 5 MiB body was cached";
    EXPECT_THAT(refused.error().message, HasSubstr("model m file big.gguf"));
    EXPECT_THAT(refused.error().message, HasSubstr("5242880"));
    EXPECT_THAT(refused.error().message, HasSubstr("approxBytes 1000"));
    EXPECT_THAT(kept_files(model_dir(dir.path() / "models", "m")), ::testing::IsEmpty());
  }
}

TEST_F(ModelCacheTest, AChunkedBodyPastTheDeclaredSizeIsAbortedAndNotCached) {
  auto five_mib = blob(5 * 1024 * 1024, 4);
  auto route = testing::serving(five_mib);
  route.chunked = true;
  server.set_route("/big.gguf", route);
  ModelCache cache(config());
  auto big = file("big.gguf", five_mib, /*with_sha=*/false);
  big.approx_bytes = 1000;
  auto refused = cache.ensure_files("m", source({big}));
  ASSERT_FALSE(refused) << "a 5 MiB chunked body was cached";
  EXPECT_THAT(refused.error().message, HasSubstr("model m file big.gguf"));
  EXPECT_THAT(refused.error().message, HasSubstr("approxBytes 1000"));
  EXPECT_THAT(kept_files(model_dir(dir.path() / "models", "m")), ::testing::IsEmpty());
}

TEST_F(ModelCacheTest, AnEmptyBodyIsRefusedAndTheFixedHostIsFetchedFromLater) {
  auto model = blob(1185376, 5);
  server.set_route("/stories.gguf", testing::Route{});  // 200, Content-Length 0
  ModelCache cache(config());
  auto declared = file("stories.gguf", model, /*with_sha=*/false);
  ASSERT_EQ(declared.approx_bytes.value_or(0), 1185376u);
  auto refused = cache.ensure_files("stories", source({declared}));
  ASSERT_FALSE(refused) << "an empty body was cached for a 1185376-byte model";
  EXPECT_THAT(refused.error().message, HasSubstr("model stories file stories.gguf"));
  EXPECT_THAT(refused.error().message, HasSubstr("got 0 bytes"));
  EXPECT_THAT(refused.error().message, HasSubstr("1185376"));
  EXPECT_THAT(kept_files(model_dir(dir.path() / "models", "stories")), ::testing::IsEmpty());

  server.set_route("/stories.gguf", testing::serving(model));  // the host is fixed
  auto fetched = cache.ensure_files("stories", source({declared}));
  ASSERT_TRUE(fetched) << fetched.error().message;
  EXPECT_TRUE((*fetched)[0].downloaded);
  EXPECT_TRUE(contents((*fetched)[0].path) == *model) << "not the served bytes";
}

// Files cached by earlier versions, before the bounds: a 0-byte file (a host's empty 200) and an
// oversized one are fetched again, not reused for good.
TEST_F(ModelCacheTest, AFileCachedOutsideTheDeclaredSizeIsFetchedAgain) {
  auto model = blob(1185376, 6);
  server.set_route("/stories.gguf", testing::serving(model));
  ModelCache cache(config());
  const auto declared = file("stories.gguf", model, /*with_sha=*/false);
  const fs::path cached = model_dir(dir.path() / "models", "stories") / "stories.gguf";
  fs::create_directories(cached.parent_path());
  for (std::string earlier : {std::string(), std::string(5 * 1024 * 1024, 'x')}) {
    std::ofstream(cached, std::ios::binary | std::ios::trunc) << earlier;
    ASSERT_EQ(fs::file_size(cached), earlier.size());
    auto files = cache.ensure_files("stories", source({declared}));
    ASSERT_TRUE(files) << files.error().message;
    EXPECT_TRUE((*files)[0].downloaded) << "a " << earlier.size() << "-byte file was reused";
    EXPECT_TRUE(contents(cached) == *model) << "not the served bytes";
  }
  EXPECT_EQ(server.request_count("/stories.gguf"), 2u);
}

TEST_F(ModelCacheTest, ConcurrentCallersDownloadOnce) {
  ModelCache cache(config());
  auto src = source({file("weights.gguf", weights)});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (cache.ensure_files("m", src)) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(server.request_count("/weights.gguf"), 1u);
}

TEST_F(ModelCacheTest, EvictionRemovesLeastRecentlyUsedButNeverAFileInUse) {
  // Budget for about two of the 512 KiB files (plus the 10 % preflight margin).
  ModelCache cache(config(1300 * 1024));
  std::vector<std::shared_ptr<const std::string>> bodies;
  for (char i = 0; i < 3; ++i) {
    bodies.push_back(blob(512 * 1024, static_cast<char>(10 + i)));
    server.set_route("/f" + std::to_string(i), testing::serving(bodies.back()));
  }
  auto model_file = [&](int i) {
    auto f = file("f" + std::to_string(i), bodies[static_cast<std::size_t>(i)]);
    return f;
  };
  auto held = cache.ensure_files("a", source({model_file(0)}));  // lease kept: in use
  ASSERT_TRUE(held) << held.error().message;
  {
    auto released = cache.ensure_files("b", source({model_file(1)}));
    ASSERT_TRUE(released) << released.error().message;
  }  // lease dropped: evictable
  auto third = cache.ensure_files("c", source({model_file(2)}));
  ASSERT_TRUE(third) << third.error().message;
  const fs::path root = dir.path() / "models";
  EXPECT_TRUE(fs::exists(model_dir(root, "a") / "f0"));   // in use: kept
  EXPECT_FALSE(fs::exists(model_dir(root, "b") / "f1"));  // evicted
  EXPECT_TRUE(fs::exists(model_dir(root, "c") / "f2"));
  // What the cache holds follows: the evicted model is no longer listed.
  std::vector<std::string> held_ids;
  for (const auto& model : cache.held_models()) held_ids.push_back(model.id);
  EXPECT_EQ(held_ids, (std::vector<std::string>{"a", "c"}));
  EXPECT_LE(cache.cached_bytes(), 1300u * 1024u);

  // Nothing evictable left: a fourth file that cannot fit is refused, naming the held bytes.
  auto held_third = std::move(*third);
  server.set_route("/f3", testing::serving(blob(512 * 1024, 13)));
  auto f3 = file("f3", blob(512 * 1024, 13));
  auto refused = cache.ensure_files("d", source({f3}));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("held by running jobs"));
}

TEST_F(ModelCacheTest, ProgressIsShippedAsBreadcrumbs) {
  log::Capture capture;
  auto c = config();
  c.progress_log_interval = std::chrono::seconds(0);
  ModelCache cache(c);
  std::uint64_t last_done = 0;
  auto files = cache.ensure_files("m", source({file("weights.gguf", weights)}),
                                  [&](const transfer::DownloadProgress& p) {
                                    last_done = p.bytes_done;
                                    return true;
                                  });
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ(last_done, weights->size());
  EXPECT_TRUE(capture.contains("model.download.start"));
  auto done = capture.find("download.done");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(*done[0].field("bytes"), std::to_string(weights->size()));
}

}  // namespace
}  // namespace sw::models
