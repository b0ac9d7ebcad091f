#include "studio/result_upload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file_io.h"
#include "common/log.h"
#include "common/secrets.h"
#include "studio/api/responses.h"

namespace sw::studio {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::upload");
  return instance;
}

constexpr std::string_view kTempPrefix = ".upload-";
constexpr std::string_view kTempSuffix = ".part";

net::HttpResponse retry_later(std::string message, int seconds) {
  return api::unavailable(message, seconds);
}

}  // namespace

ResultFile::~ResultFile() {
  if (!path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
}

Status ResultFile::commit(const std::filesystem::path& target) {
  if (::chmod(path_.c_str(), kPrivateFileMode) != 0 ||
      ::rename(path_.c_str(), target.c_str()) != 0) {
    return fail(Error::io("cannot move {} to {}: {}", path_.string(), target.string(),
                          std::strerror(errno)));
  }
  path_.clear();
  return {};
}

void remove_stale_upload_files(const std::filesystem::path& results_dir,
                               std::chrono::seconds min_age) {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(results_dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with(kTempPrefix) && name.ends_with(kTempSuffix)) {
      std::error_code time_ec;
      const auto written = entry.last_write_time(time_ec);
      if (min_age.count() > 0 && (time_ec || now - written < min_age)) {
        continue;
      }
      std::error_code remove_ec;
      std::filesystem::remove(entry.path(), remove_ec);
      logger().info("upload.stale_removed", {{"file", name}});
    }
  }
}

std::variant<std::shared_ptr<ResultUploadSink>, net::HttpResponse> ResultUploadSink::open(
    Mode mode, std::filesystem::path results_dir, std::shared_ptr<UploadBudget> budget,
    std::string_view content_type, std::optional<std::uint64_t> declared,
    std::uint64_t small_part_limit) {
  const std::uint64_t reserve = declared.value_or(0);
  if (reserve > budget->limit) {
    return api::refuse(
        api::Refusal::PayloadTooLarge,
        fmt::format("body of {} bytes exceeds the {} bytes the studio takes in at once", reserve,
                    budget->limit));
  }
  if (budget->in_flight + reserve > budget->limit) {
    return retry_later(fmt::format("{} bytes of uploads are being received (at most {}); retry "
                                   "shortly",
                                   budget->in_flight, budget->limit),
                       5);
  }
  auto reader = net::FormDataReader::create(content_type);
  if (!reader) {
    return api::invalid("invalid_request", reader.error().message);
  }
  budget->in_flight += reserve;
  return std::shared_ptr<ResultUploadSink>(
      new ResultUploadSink(mode, std::move(results_dir), std::move(budget), std::move(*reader),
                           reserve, declared.has_value(), small_part_limit));
}

ResultUploadSink::ResultUploadSink(Mode mode, std::filesystem::path results_dir,
                                   std::shared_ptr<UploadBudget> budget, net::FormDataReader reader,
                                   std::uint64_t reserved, bool declared,
                                   std::uint64_t small_part_limit)
    : mode_(mode),
      results_dir_(std::move(results_dir)),
      budget_(std::move(budget)),
      reader_(std::move(reader)),
      reserved_(reserved),
      declared_(declared),
      small_part_limit_(small_part_limit) {}

ResultUploadSink::~ResultUploadSink() {
  budget_->in_flight -= reserved_;
  // file_ (if still here) removes the partial file: the body never ended, or was refused.
}

std::optional<net::HttpResponse> ResultUploadSink::write(std::string_view bytes) {
  received_ += bytes.size();
  if (!declared_ && received_ > reserved_) {
    // A chunked body reserves as it arrives.
    const std::uint64_t more = received_ - reserved_;
    if (budget_->in_flight + more > budget_->limit) {
      return retry_later(
          fmt::format("uploads being received reached {} bytes; retry shortly", budget_->limit), 5);
    }
    budget_->in_flight += more;
    reserved_ += more;
  }
  if (auto fed = reader_.feed(bytes, *this); !fed) {
    if (io_error_) {
      return retry_later("cannot store the result: " + io_error_->message, 5);
    }
    return api::invalid("invalid_request", fed.error().message);
  }
  return std::nullopt;
}

Status ResultUploadSink::on_part_begin(const net::FormPartHead& head) {
  if (head.name == "image") {
    if (seen_image_) {
      return fail(Error::invalid_argument("multipart body: more than one \"image\" part"));
    }
    seen_image_ = true;
    part_ = Part::Image;
    if (mode_ == Mode::Store) {
      auto path = results_dir_ / fmt::format("{}{}{}", kTempPrefix, random_hex(12), kTempSuffix);
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd.valid()) {
        io_error_ = Error::io("cannot create {}: {}", path.string(), std::strerror(errno));
        return fail(*io_error_);
      }
      fd_ = std::move(fd);
      file_ = std::make_shared<ResultFile>(std::move(path));
    }
  } else if (head.name == "prompt") {
    part_ = Part::Prompt;
    prompt_.emplace();  // a repeated part replaces the earlier one
  } else if (head.name == "ext") {
    part_ = Part::Ext;
    ext_.emplace();
  } else {
    part_ = Part::Other;  // ignored, as the reference allows extra fields
  }
  return {};
}

Status ResultUploadSink::on_part_data(std::string_view bytes) {
  switch (part_) {
    case Part::Image:
      // On the loop thread, a read's worth at a time (SHA-NI: ~40 µs per 64 KiB). The write goes
      // to the page cache, as nginx's client_body_temp writes do.
      hasher_.update(bytes);
      size_ += bytes.size();
      if (fd_.valid()) {
        if (auto written = write_all(fd_.get(), bytes); !written) {
          io_error_ = written.error();
          return fail(written.error());
        }
      }
      return {};
    case Part::Prompt:
    case Part::Ext: {
      small_bytes_ += bytes.size();
      if (small_bytes_ > small_part_limit_) {
        return fail(Error::invalid_argument(
            "multipart body: the parts other than \"image\" exceed {} bytes", small_part_limit_));
      }
      (part_ == Part::Prompt ? *prompt_ : *ext_).append(bytes);
      return {};
    }
    case Part::Other:
    case Part::None: return {};
  }
  return {};
}

Status ResultUploadSink::on_part_end() {
  if (part_ == Part::Image) {
    fd_.reset();
  }
  part_ = Part::None;
  return {};
}

Result<ResultUploadSink::Received> ResultUploadSink::finish() {
  SW_TRY(reader_.finish());
  if (!seen_image_) {
    return fail(Error::invalid_argument("multipart body: missing the \"image\" part"));
  }
  Received received;
  received.ext = ext_.value_or("");
  received.prompt = std::move(prompt_);
  received.sha256 = to_hex(hasher_.finish());
  received.size = size_;
  received.file = std::move(file_);
  return received;
}

}  // namespace sw::studio
