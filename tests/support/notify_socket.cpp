#include "support/notify_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace sw::testing {

NotifySocket::NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path_.string();
  if (text.size() >= sizeof(address.sun_path)) throw std::runtime_error("socket path too long");
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::runtime_error("bind " + text + ": " + std::strerror(errno));
  }
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) ::close(fd_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

std::optional<std::string> NotifySocket::next(std::chrono::milliseconds timeout) {
  pollfd ready{fd_, POLLIN, 0};
  const int polled = ::poll(&ready, 1, static_cast<int>(timeout.count()));
  if (polled <= 0) return std::nullopt;
  std::array<char, 4096> buffer{};
  const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
  if (n < 0) return std::nullopt;
  received_.emplace_back(buffer.data(), static_cast<std::size_t>(n));
  return received_.back();
}

std::optional<std::string> NotifySocket::await(std::string_view assignment,
                                               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto datagram = next(left);
    if (!datagram) return std::nullopt;
    if (holds(*datagram, assignment)) return datagram;
  }
}

bool NotifySocket::await_count(std::string_view assignment, int count,
                               std::chrono::milliseconds timeout) {
  const auto seen = [&] {
    return std::count_if(received_.begin(), received_.end(),
                         [&](const std::string& d) { return holds(d, assignment); });
  };
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen() < count) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !next(left)) return false;
  }
  return true;
}

bool NotifySocket::holds(std::string_view datagram, std::string_view assignment) {
  std::size_t start = 0;
  while (start <= datagram.size()) {
    auto end = datagram.find('\n', start);
    if (end == std::string_view::npos) end = datagram.size();
    if (datagram.substr(start, end - start) == assignment) return true;
    start = end + 1;
  }
  return false;
}

std::optional<std::string> NotifySocket::value(std::string_view datagram, std::string_view key) {
  const std::string prefix = std::string(key) + "=";
  std::size_t start = 0;
  while (start <= datagram.size()) {
    auto end = datagram.find('\n', start);
    if (end == std::string_view::npos) end = datagram.size();
    const auto line = datagram.substr(start, end - start);
    if (line.starts_with(prefix)) return std::string(line.substr(prefix.size()));
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace sw::testing
