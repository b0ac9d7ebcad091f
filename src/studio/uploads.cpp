#include "studio/uploads.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "common/file_io.h"
#include "common/secrets.h"
#include "common/sha256.h"

namespace sw::studio::uploads {

bool valid_upload_id(std::string_view id) {
  if (!id.starts_with("upl-")) {
    return false;
  }
  const auto rest = id.substr(4);
  return !rest.empty() && rest.size() <= 64 && std::all_of(rest.begin(), rest.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

std::string new_upload_id() {
  return "upl-" + time_ordered_uuid();
}

std::optional<std::string> upload_id_of(std::string_view url) {
  std::string_view path = url;
  if (const auto scheme = url.find("://"); scheme != std::string_view::npos) {
    const auto slash = url.find('/', scheme + 3);
    if (slash == std::string_view::npos) {
      return std::nullopt;
    }
    path = url.substr(slash);
  }
  path = path.substr(0, path.find_first_of("?#"));
  if (!path.starts_with(kDownloadPrefix)) {
    return std::nullopt;
  }
  return std::string(path.substr(kDownloadPrefix.size()));
}

std::vector<UploadRef> upload_refs(const proto::Task& task) {
  std::vector<UploadRef> refs;
  const auto add = [&](std::string_view field, const std::optional<std::string>& url) {
    if (!url) {
      return;
    }
    if (auto id = upload_id_of(*url)) {
      refs.push_back(UploadRef{std::string(field), std::move(*id)});
    }
  };
  if (const auto* image = std::get_if<proto::ImageParams>(&task.params)) {
    add("initImageUrl", image->init_image_url);
    add("maskUrl", image->mask_url);
    add("refImageUrl", image->ref_image_url);
  } else if (const auto* stt = std::get_if<proto::AudioSttParams>(&task.params)) {
    add("inputUrl", stt->input_url);
  } else if (const auto* video = std::get_if<proto::VideoParams>(&task.params)) {
    add("initImageUrl", video->init_image_url);
  }
  return refs;
}

Result<std::string> write_upload_file(const std::filesystem::path& dir, const std::string& id,
                                      std::string_view bytes) {
  if (!valid_upload_id(id)) {
    return fail(Error::invalid_argument("not an upload id: {}", id));
  }
  SW_TRY(make_private_dir(dir));
  const auto target = dir / id;
  const auto temp = dir / ("." + id + "." + random_hex(8) + ".part");
  auto fd = open_private_file(temp, O_WRONLY | O_CREAT | O_EXCL);
  if (!fd) {
    return fail(std::move(fd).error());
  }
  // Hashed while written, in pieces, so that the bytes are read once.
  constexpr std::size_t kPiece = 1 << 20;
  Sha256 hasher;
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const auto piece = bytes.substr(at, kPiece);
    hasher.update(piece);
    if (auto written = write_all(fd->get(), piece); !written) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      return fail(std::move(written).error());
    }
  }
  if (::fsync(fd->get()) != 0) {
    const auto error = Error::io("cannot sync {}: {}", temp.string(), std::strerror(errno));
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return fail(error);
  }
  fd->reset();
  std::error_code ec;
  std::filesystem::rename(temp, target, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return fail(
        Error::io("cannot move {} to {}: {}", temp.string(), target.string(), ec.message()));
  }
  return to_hex(hasher.finish());
}

Status remove_upload_file(const std::filesystem::path& dir, const std::string& id) {
  if (!valid_upload_id(id)) {
    return fail(Error::invalid_argument("not an upload id: {}", id));
  }
  std::error_code ec;
  std::filesystem::remove(dir / id, ec);
  if (ec) {
    return fail(Error::io("cannot remove {}: {}", (dir / id).string(), ec.message()));
  }
  return {};
}

}  // namespace sw::studio::uploads
