#include "changes.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "common/json_text.h"
#include "studio/data_dir.h"
#include "studio/data_dir_lock.h"
#include "transfer/http_client.h"

namespace sw::studio_server {
namespace {

using namespace std::chrono_literals;

// Another command holds the lock, or a studio has it but does not listen yet: worth a short wait.
constexpr auto kWaitForHolder = 10s;
constexpr auto kRetryEvery = 100ms;

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

// The same change as a curl line, for an operator without the token at hand (or with TLS that
// this command cannot verify).
std::string curl_line(const Change& change, const std::string& url) {
  std::string line =
      "curl -X " + change.method + " -H 'Authorization: Bearer <admin token>' " + url + change.path;
  if (!change.body.empty()) {
    line += " -H 'Content-Type: application/json' -d " + shell_quote(change.body);
  }
  return line;
}

// The studio's error message ({"error", "message"}), else the raw body.
std::string message_of(const std::string& body) {
  const auto parsed = parse_json(body, "the studio's answer");
  if (parsed && parsed->is_object()) {
    const auto message = parsed->find("message");
    if (message != parsed->end() && message->is_string()) {
      return message->get<std::string>();
    }
  }
  return body;
}

int through_studio(const std::filesystem::path& data_dir, const Change& change,
                   const studio::LockHolder& holder) {
  const std::string how = fmt::format(
      "Set STUDIO_SERVER_ADMIN_TOKEN to the studio's admin token (printed once at its "
      "first start, or the one it was started with) and run this again, or call its "
      "admin API:\n  {}\n",
      curl_line(change, holder.url));
  const std::string how_else = change.without_token.empty() ? "" : change.without_token + "\n";
  const char* token = std::getenv("STUDIO_SERVER_ADMIN_TOKEN");
  if (token == nullptr || *token == '\0') {
    std::cerr << "studio-server: " << studio::describe(holder) << " is running on "
              << data_dir.string()
              << ", and a change goes through it so that it takes effect at once; that needs its "
                 "admin token.\n"
              << how << how_else;
    return 2;
  }
  transfer::HttpCall call;
  call.method = change.method;
  call.url = holder.url + change.path;
  call.bearer = token;
  call.body = change.body;
  call.timeout = 30s;
  call.user_agent = std::string("studio-server/") + SW_VERSION;
  auto answer = transfer::http_call(call);
  if (!answer) {
    std::cerr << "studio-server: cannot reach " << studio::describe(holder) << ", running on "
              << data_dir.string() << ": " << answer.error().message << "\n"
              << how << how_else;
    return 2;
  }
  if (answer->status == 401 || answer->status == 403) {
    std::cerr << "studio-server: " << studio::describe(holder) << ", running on "
              << data_dir.string() << ", refused the admin token in STUDIO_SERVER_ADMIN_TOKEN: "
              << message_of(answer->body) << "\n"
              << how << how_else;
    return 2;
  }
  if (answer->status < 200 || answer->status >= 300) {
    std::cerr << "studio-server: " << message_of(answer->body) << "\n";
    return 1;
  }
  return change.answered(answer->body);
}

}  // namespace

std::string path_segment(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

int change_state(const std::filesystem::path& data_dir,
                 const std::optional<std::string>& database_uri, const Change& change) {
  const auto give_up = std::chrono::steady_clock::now() + kWaitForHolder;
  while (true) {
    studio::LockHolder holder;
    auto lock = studio::DataDirLock::try_acquire(data_dir, change.command, &holder);
    if (lock) {
      // No studio runs: the change is made here, and a `serve` starting meanwhile is refused.
      auto store = studio::open_studio_store(data_dir, database_uri);
      if (!store) {
        std::cerr << "studio-server: " << store.error().message << "\n";
        return 2;
      }
      return change.direct(**store);
    }
    if (lock.error().code != Code::Conflict) {
      std::cerr << "studio-server: " << lock.error().message << "\n";
      return 2;
    }
    if (!holder.url.empty()) {
      return through_studio(data_dir, change, holder);
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      std::cerr << "studio-server: " << lock.error().message
                << (holder.command == "serve"
                        ? "; it has not started listening yet. Run this again once it has.\n"
                        : "; run this again once it has finished.\n");
      return 2;
    }
    std::this_thread::sleep_for(kRetryEvery);
  }
}

}  // namespace sw::studio_server
