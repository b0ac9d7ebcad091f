#include "studio/uploads.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "common/sha256.h"
#include "support/temp_dir.h"

namespace sw::studio::uploads {
namespace {

TEST(UploadsTest, AnInputUrlNamesAnUploadByItsPathOnAnyOrigin) {
  EXPECT_EQ(upload_id_of("http://127.0.0.1:9790/graphics/api/uploads/upl-01ab"), "upl-01ab");
  EXPECT_EQ(upload_id_of("https://studio.example/graphics/api/uploads/upl-1?x=1#f"), "upl-1");
  EXPECT_EQ(upload_id_of("/graphics/api/uploads/upl-2"), "upl-2");
  EXPECT_FALSE(upload_id_of("https://example.com/a.wav"));
  EXPECT_FALSE(upload_id_of("https://example.com"));
  EXPECT_FALSE(upload_id_of("https://example.com/x/graphics/api/uploads/upl-1"));
  EXPECT_EQ(upload_id_of("http://h/graphics/api/uploads/../x"), "../x") << "meant as one: refused";
  EXPECT_FALSE(valid_upload_id("../x"));
  EXPECT_FALSE(valid_upload_id("upl-"));
  EXPECT_FALSE(valid_upload_id("upl-AB"));
  EXPECT_TRUE(valid_upload_id(new_upload_id()));
}

TEST(UploadsTest, EveryInputFieldOfATaskIsLookedAt) {
  proto::ImageParams image;
  image.init_image_url = "http://s/graphics/api/uploads/upl-1";
  image.mask_url = "https://elsewhere.example/mask.png";
  image.ref_image_url = "http://s/graphics/api/uploads/upl-3";
  auto refs = upload_refs(proto::Task{image});
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].field, "initImageUrl");
  EXPECT_EQ(refs[0].id, "upl-1");
  EXPECT_EQ(refs[1].field, "refImageUrl");
  proto::AudioSttParams stt;
  stt.input_url = "http://s/graphics/api/uploads/upl-4";
  refs = upload_refs(proto::Task{stt});
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].field, "inputUrl");
  proto::VideoParams video;
  video.init_image_url = "http://s/graphics/api/uploads/upl-5";
  EXPECT_EQ(upload_refs(proto::Task{video}).size(), 1u);
  EXPECT_TRUE(upload_refs(proto::Task{proto::LlmParams{}}).empty());
}

TEST(UploadsTest, AFileIsWrittenPrivatelyHashedAndRemoved) {
  testing::TempDir dir;
  const auto uploads = dir.path() / "uploads";
  const std::string bytes(3 << 20, 'x');  // several pieces
  const auto id = new_upload_id();
  auto sha = write_upload_file(uploads, id, bytes);
  ASSERT_TRUE(sha) << sha.error().message;
  EXPECT_EQ(*sha, sha256_hex(bytes));
  struct stat info {};
  ASSERT_EQ(::stat((uploads / id).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(uploads.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0700u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(uploads), {}), 1) << "no temp left";
  EXPECT_TRUE(remove_upload_file(uploads, id));
  EXPECT_FALSE(std::filesystem::exists(uploads / id));
  EXPECT_TRUE(remove_upload_file(uploads, id)) << "already gone is fine";
  EXPECT_FALSE(write_upload_file(uploads, "../escape", bytes));
}

}  // namespace
}  // namespace sw::studio::uploads
