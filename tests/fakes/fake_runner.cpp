// A stand-in for a runner program (llama-server, whisper-server) for lifecycle tests only: it
// parses `--port`, serves GET /health, POST /v1/chat/completions and POST /inference (whisper's
// multipart route; the "transcript" describes the WAV it got) on 127.0.0.1, and can be told to
// misbehave. Real-output tests use the real programs.
//
//   --port N               listen on 127.0.0.1:N (required)
//   --fail-start           print a line to stderr and exit 3 before listening
//   --ignore-sigterm       survive SIGTERM (the supervisor must fall back to SIGKILL)
//   --loading-ms N         answer /health with 503 for the first N ms
//   --version              print what llama-server prints (on stderr, after a backend line) and
//                          exit 0; with FAKE_RUNNER_VERSION=hang, hang instead; when started
//                          as `whisper-server`, complain and print a long usage as whisper.cpp does
// Modes that stop talking, for the progress deadlines (runner_pool.h):
//   --silent-loading       never gets ready: /health says the same 503 for ever, no output
//   --loading-ticks-ms N   while loading, print a "loading" line every N ms (slow but moving)
//   --token-ms N           stream each word of a completion N ms after the last
//   --stall-after-tokens N stream N words, then fall silent with the stream open (a plain
//                          completion never answers)
//   --wedge-inference      /inference never answers and prints nothing; /health still says ok
//   --inference-progress-ms N  /inference prints whisper's progress line every N ms,
//                          `--inference-steps` times (default 5), then answers
// Its size, for learned footprints (engines/runner/footprint_book.h):
//   --footprint-mib N      holds N MiB of touched memory from the start (its resident set)
// FAKE_RUNNER_FAIL_START=1 in the environment acts as --fail-start, for tests where the worker,
// not the test, composes the arguments.
// The completion's content is "pid <pid> request <n>", so tests can tell runners apart. Asked to
// stream (`"stream":true`), it answers that content as text/event-stream chunks, one word each,
// with CRLF line ends and a keepalive comment first (both legal SSE that llama-server does not
// happen to send), then a usage chunk and `data: [DONE]`.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/http_server.h"

namespace {

struct Behaviour {
  std::chrono::milliseconds loading{0};
  bool silent_loading = false;
  long loading_ticks_ms = 0;
  long token_ms = 0;
  long stall_after_tokens = -1;
  bool wedge_inference = false;
  long inference_progress_ms = 0;
  long inference_steps = 5;
};

class FakeRunner final : public sw::net::HttpHandler {
 public:
  FakeRunner(boost::asio::io_context& io, Behaviour behaviour)
      : io_(io),
        behaviour_(behaviour),
        ready_at_(std::chrono::steady_clock::now() + behaviour.loading) {
    if (behaviour_.loading_ticks_ms > 0 && !behaviour_.silent_loading) tick_loading(1);
  }
  std::variant<sw::net::Admission, sw::net::HttpResponse> admit(const sw::net::HttpRequest&) override {
    return sw::net::Admission{};
  }
  void handle(sw::net::HttpRequest request, sw::net::Responder responder) override {
    if (request.path == "/health") {
      if (behaviour_.silent_loading || std::chrono::steady_clock::now() < ready_at_) {
        responder.send(sw::net::HttpResponse::json(503, R"({"error":{"message":"Loading model"}})"));
      } else {
        responder.send(sw::net::HttpResponse::json(200, R"({"status":"ok"})"));
      }
      return;
    }
    if (request.path == "/v1/chat/completions") {
      ++requests_;
      const std::string content = "pid " + std::to_string(::getpid()) + " request " +
                                  std::to_string(requests_);
      std::fprintf(stderr, "fake-runner: completion %d\n", requests_);
      const bool stream = request.body.find("\"stream\":true") != std::string::npos;
      if (stream && (behaviour_.token_ms > 0 || behaviour_.stall_after_tokens >= 0)) {
        auto events = std::make_shared<std::vector<std::string>>(events_of(content));
        send_events(responder.start_stream("text/event-stream"), events, 0);
        return;
      }
      if (stream) {
        std::string all;
        for (const auto& event : events_of(content)) all += event;
        responder.send(sw::net::HttpResponse::text(200, all, "text/event-stream"));
        return;
      }
      if (behaviour_.stall_after_tokens >= 0) {
        held_.push_back(responder);
        return;
      }
      responder.send(sw::net::HttpResponse::json(
          200, R"({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":")" +
                   content +
                   R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})"));
      return;
    }
    if (request.path == "/inference") {
      if (behaviour_.wedge_inference) {
        held_.push_back(responder);  // never answered; /health stays ok
        return;
      }
      const std::string* type = request.header("Content-Type");
      auto parts = sw::net::parse_form_data(type != nullptr ? *type : "", request.body);
      std::string_view wav;
      if (parts) {
        for (const auto& part : *parts) {
          if (part.name == "file") wav = part.data;
        }
      }
      if (wav.size() < 44 || wav.substr(0, 4) != "RIFF") {
        responder.send(sw::net::HttpResponse::json(400, R"({"error":"no WAV in field file"})"));
        return;
      }
      // The canonical 44-byte header: channels at 22, sample rate at 24, bits at 34.
      auto u16 = [&](std::size_t at) {
        return static_cast<unsigned>(static_cast<unsigned char>(wav[at])) |
               static_cast<unsigned>(static_cast<unsigned char>(wav[at + 1])) << 8;
      };
      const unsigned channels = u16(22);
      const unsigned rate = u16(24) | u16(26) << 16;
      const unsigned bits = u16(34);
      if (channels == 0 || rate == 0 || bits == 0) {
        responder.send(sw::net::HttpResponse::json(400, R"({"error":"bad WAV header"})"));
        return;
      }
      const double seconds = static_cast<double>(wav.size() - 44) / (channels * rate * bits / 8.0);
      char words[96];
      std::snprintf(words, sizeof words, "fake transcript of %.1f s at %u Hz, %u channel(s)",
                    seconds, rate, channels);
      const std::string body = std::string(R"({"text":" )") + words +
                               R"(","language":"en","duration":)" + std::to_string(seconds) +
                               R"(,"segments":[]})";
      if (behaviour_.inference_progress_ms > 0) {
        report_progress(responder, body, 1);
        return;
      }
      responder.send(sw::net::HttpResponse::json(200, body));
      return;
    }
    responder.send(sw::net::HttpResponse::error(404, "not_found", request.path));
  }
  std::variant<sw::net::UpgradeAccepted, sw::net::HttpResponse> upgrade(
      const sw::net::HttpRequest&) override {
    return sw::net::HttpResponse::error(404, "not_found", "no websockets");
  }

 private:
  // The stream's pieces: a keepalive, one event per word, the usage event and [DONE].
  static std::vector<std::string> events_of(const std::string& content) {
    constexpr std::string_view kChunk =
        R"(data: {"object":"chat.completion.chunk","model":"fake","choices":[{"index":0,)";
    std::vector<std::string> events = {": keepalive\r\n\r\n"};
    for (std::size_t at = 0; at < content.size();) {
      std::size_t end = content.find(' ', at + 1);
      if (end == std::string::npos) end = content.size();
      events.push_back(std::string(kChunk) + R"("delta":{"content":")" +
                       content.substr(at, end - at) + "\"}}]}\r\n\r\n");
      at = end;
    }
    events.push_back(std::string(kChunk) +
                     R"("delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,)"
                     R"("completion_tokens":4,"total_tokens":7}})"
                     "\r\n\r\ndata: [DONE]\r\n\r\n");
    return events;
  }

  // Writes events[next…] one at a time, --token-ms apart; after --stall-after-tokens words it
  // falls silent with the stream left open.
  void send_events(std::shared_ptr<sw::net::EventStream> stream,
                   std::shared_ptr<std::vector<std::string>> events, std::size_t next) {
    if (next >= events->size()) {
      stream->close();
      return;
    }
    // events[0] is the keepalive; words are 1…
    if (behaviour_.stall_after_tokens >= 0 &&
        next > static_cast<std::size_t>(behaviour_.stall_after_tokens)) {
      std::fprintf(stderr, "fake-runner: stalling after %ld tokens\n",
                   behaviour_.stall_after_tokens);
      held_streams_.push_back(stream);
      return;
    }
    stream->write((*events)[next]);
    after(behaviour_.token_ms,
          [this, stream, events, next] { send_events(stream, events, next + 1); });
  }

  void report_progress(sw::net::Responder responder, std::string body, long step) {
    if (step > behaviour_.inference_steps) {
      responder.send(sw::net::HttpResponse::json(200, body));
      return;
    }
    after(behaviour_.inference_progress_ms, [this, responder, body = std::move(body), step] {
      std::fprintf(stderr, "whisper_print_progress_callback: progress = %3ld%%\n",
                   step * 100 / behaviour_.inference_steps);
      report_progress(responder, body, step + 1);
    });
  }

  void tick_loading(long tick) {
    after(behaviour_.loading_ticks_ms, [this, tick] {
      if (std::chrono::steady_clock::now() >= ready_at_) return;
      std::fprintf(stderr, "fake-runner: loading tensors %ld\n", tick);
      tick_loading(tick + 1);
    });
  }

  template <typename F>
  void after(long ms, F work) {
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(ms));
    timer->async_wait([timer, work = std::move(work)](const boost::system::error_code& ec) {
      if (!ec) work();
    });
  }

  boost::asio::io_context& io_;
  Behaviour behaviour_;
  std::vector<sw::net::Responder> held_;
  std::vector<std::shared_ptr<sw::net::EventStream>> held_streams_;

  std::chrono::steady_clock::time_point ready_at_;
  int requests_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int port = -1;
  bool fail_start = false;
  bool ignore_sigterm = false;
  long footprint_mib = 0;
  Behaviour behaviour;
  const char* fail_env = std::getenv("FAKE_RUNNER_FAIL_START");
  if (fail_env != nullptr && std::string(fail_env) == "1") fail_start = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--version" && std::string(argv[0]).ends_with("whisper-server")) {
      // whisper.cpp's server has no --version: it complains, prints its usage and exits 0.
      std::fprintf(stderr, "error: unknown argument: --version\n\nusage: %s [options]\n\n",
                   argv[0]);
      for (int line = 0; line < 70; ++line)
        std::fprintf(stderr, "  --option-%d N  [0] text\n", line);
      return 0;
    }
    if (arg == "--version") {
      const char* mode = std::getenv("FAKE_RUNNER_VERSION");
      if (mode != nullptr && std::string(mode) == "hang") {
        for (;;) ::pause();
      }
      // llama.cpp's common/arg.cpp prints these two lines on stderr; backends log before them.
      std::fprintf(stderr, "load_backend: loaded CPU backend from /fake/libggml-cpu.so\n");
      std::fprintf(stderr, "version: 0.0.1 (fake-runner)\n");
      std::fprintf(stderr, "built with a test compiler for x86_64-linux-gnu\n");
      return 0;
    }
    if (arg == "--port" && i + 1 < argc) port = std::stoi(argv[++i]);
    else if (arg == "--fail-start") fail_start = true;
    else if (arg == "--ignore-sigterm") ignore_sigterm = true;
    else if (arg == "--loading-ms" && i + 1 < argc) {
      behaviour.loading = std::chrono::milliseconds(std::stol(argv[++i]));
    } else if (arg == "--silent-loading")
      behaviour.silent_loading = true;
    else if (arg == "--loading-ticks-ms" && i + 1 < argc) {
      behaviour.loading_ticks_ms = std::stol(argv[++i]);
    } else if (arg == "--token-ms" && i + 1 < argc)
      behaviour.token_ms = std::stol(argv[++i]);
    else if (arg == "--stall-after-tokens" && i + 1 < argc) {
      behaviour.stall_after_tokens = std::stol(argv[++i]);
    } else if (arg == "--wedge-inference")
      behaviour.wedge_inference = true;
    else if (arg == "--inference-progress-ms" && i + 1 < argc) {
      behaviour.inference_progress_ms = std::stol(argv[++i]);
    } else if (arg == "--inference-steps" && i + 1 < argc) {
      behaviour.inference_steps = std::stol(argv[++i]);
    } else if (arg == "--footprint-mib" && i + 1 < argc) {
      footprint_mib = std::stol(argv[++i]);
    }
  }
  if (fail_start) {
    std::fprintf(stderr, "fake-runner: refusing to start (as asked)\n");
    return 3;
  }
  if (port < 0) {
    std::fprintf(stderr, "fake-runner: --port is required\n");
    return 2;
  }
  if (ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
  // Touched page by page, so that it is resident (VmHWM counts it), as loaded weights would be.
  std::vector<char> footprint(static_cast<std::size_t>(std::max(0L, footprint_mib)) << 20);
  volatile char* pages = footprint.data();  // stores the optimiser may not drop
  for (std::size_t at = 0; at < footprint.size(); at += 4096) pages[at] = 1;
  boost::asio::io_context io;
  FakeRunner runner{io, behaviour};
  sw::net::ServerOptions options;
  options.port = static_cast<std::uint16_t>(port);
  auto server = sw::net::HttpServer::start(io.get_executor(), options, runner);
  if (!server) {
    std::fprintf(stderr, "fake-runner: %s\n", server.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "fake-runner: listening on %d\n", port);
  io.run();
  return 0;
}
