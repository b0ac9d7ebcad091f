#include "studio/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

namespace sw::studio {
namespace {

std::string record_text(const std::string& command, const std::string& url) {
  std::string text = fmt::format("pid={}\ncommand={}\n", ::getpid(), command);
  if (!url.empty()) {
    text += fmt::format("url={}\n", url);
  }
  return text;
}

}  // namespace

std::string describe(const LockHolder& holder) {
  std::string text =
      holder.command.empty() ? std::string("a process") : "studio-server " + holder.command;
  text += holder.pid > 0 ? fmt::format(" (pid {}", holder.pid) : std::string(" (pid unknown");
  if (!holder.url.empty()) {
    text += ", " + holder.url;
  }
  return text + ")";
}

Result<DataDirLock> DataDirLock::try_acquire(const std::filesystem::path& data_dir,
                                             const std::string& command, LockHolder* holder) {
  std::error_code ec;
  if (!std::filesystem::exists(data_dir, ec)) {
    // A new install: created private here, since the lock is the first thing in it. An existing
    // directory is left to open_data_dir, which narrows and logs an older loose mode.
    auto made = make_private_dir(data_dir);
    if (!made) {
      return fail(std::move(made).error());
    }
  }
  auto path = data_dir / kFileName;
  auto opened = open_private_file(path, O_RDWR | O_CREAT);  // 0600 whatever the umask
  if (!opened) {
    return fail(std::move(opened).error());
  }
  UniqueFd fd = std::move(*opened);
  int rc = 0;
  while ((rc = ::flock(fd.get(), LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    if (errno != EWOULDBLOCK) {
      return fail(Error::io("cannot lock {}: {}", path.string(), std::strerror(errno)));
    }
    const auto found = read_holder(data_dir).value_or(LockHolder{});
    if (holder != nullptr) {
      *holder = found;
    }
    return fail(Error::make(Code::Conflict, "data directory {} is in use by {}", data_dir.string(),
                            describe(found)));
  }
  DataDirLock lock(std::move(fd), std::move(path), command);
  // Emptied first: a reader meanwhile sees no pid (and waits), never the last holder's lines.
  if (::ftruncate(lock.fd_.get(), 0) != 0) {
    return fail(Error::io("cannot write {}: {}", lock.path_.string(), std::strerror(errno)));
  }
  SW_TRY(lock.write_record(""));
  return lock;
}

Status DataDirLock::write_record(const std::string& url) {
  // Written at offset 0 in one call; the record with a url only extends the one without, so a
  // reader sees the old record, the new one, or a prefix of it.
  const std::string text = record_text(command_, url);
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n =
        ::pwrite(fd_.get(), text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return fail(Error::io("cannot write {}: {}", path_.string(), std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Status DataDirLock::publish_url(const std::string& url) {
  return write_record(url);
}

std::optional<LockHolder> DataDirLock::read_holder(const std::filesystem::path& data_dir) {
  auto text = read_file(data_dir / kFileName, 64 * 1024);
  if (!text) {
    return std::nullopt;
  }
  LockHolder holder;
  std::istringstream lines(*text);
  std::string line;
  // Only complete lines count: a line still being written has no newline yet.
  while (std::getline(lines, line) && !lines.eof()) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    const std::string_view key(line.data(), eq);
    const std::string value = line.substr(eq + 1);
    if (key == "pid") {
      long pid = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), pid);
      if (ec == std::errc() && end == value.data() + value.size() && pid > 0) {
        holder.pid = pid;
      }
    } else if (key == "command") {
      holder.command = value;
    } else if (key == "url") {
      holder.url = value;
    }
  }
  if (holder.pid == 0) {
    return std::nullopt;
  }
  return holder;
}

}  // namespace sw::studio
