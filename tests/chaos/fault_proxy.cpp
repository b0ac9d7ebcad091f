#include "chaos/fault_proxy.h"

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace sw::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// One proxied connection: two sockets and two pumps.
struct Pair : std::enable_shared_from_this<Pair> {
  Pair(asio::io_context& io, FaultProxy::Fate f) : client(io), server(io), timer(io), fate(f) {}

  tcp::socket client;
  tcp::socket server;
  asio::steady_timer timer;  // when the fault strikes
  FaultProxy::Fate fate;
  bool silenced = false;
  bool closed = false;
  std::mt19937_64 delays{0};

  void close_both(bool reset) {
    if (closed) return;
    closed = true;
    boost::system::error_code ignored;
    for (auto* socket : {&client, &server}) {
      if (reset) {
        socket->set_option(asio::socket_base::linger(true, 0), ignored);
      } else {
        socket->shutdown(tcp::socket::shutdown_both, ignored);
      }
      socket->close(ignored);
    }
    timer.cancel();
  }

  void pump(tcp::socket& from, tcp::socket& to) {
    auto self = shared_from_this();
    auto buffer = std::make_shared<std::array<char, 16384>>();
    from.async_read_some(asio::buffer(*buffer), [self, buffer, &from, &to](
                                                    boost::system::error_code ec, std::size_t n) {
      if (self->silenced) return;  // half-open: the bytes vanish, nothing is closed
      if (ec) {
        // A peer closed: pass the close on (a silenced pair keeps the other side hanging).
        self->close_both(false);
        return;
      }
      auto forward = [self, buffer, n, &from, &to] {
        if (self->silenced || self->closed) return;
        asio::async_write(to, asio::buffer(buffer->data(), n),
                          [self, &from, &to](boost::system::error_code wec, std::size_t) {
                            if (wec) {
                              if (!self->silenced) self->close_both(false);
                              return;
                            }
                            self->pump(from, to);
                          });
      };
      if (self->fate == FaultProxy::Delay) {
        auto hold = std::make_shared<asio::steady_timer>(
            to.get_executor(),
            std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 150)(self->delays)));
        hold->async_wait([hold, forward](boost::system::error_code) { forward(); });
      } else {
        forward();
      }
    });
  }
};

}  // namespace

struct FaultProxy::State : std::enable_shared_from_this<FaultProxy::State> {
  State(std::uint16_t target, std::uint64_t seed, FaultMix weights)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}),
        target_port(target),
        random(seed),
        mix(weights) {}

  asio::io_context io;
  tcp::acceptor acceptor;
  std::uint16_t target_port;
  std::mt19937_64 random;  // loop thread only
  FaultMix mix;
  std::atomic<bool> faults{true};
  std::array<std::atomic<std::uint64_t>, kFates> counts{};
  std::vector<std::shared_ptr<void>> silenced;  // half-open pairs, kept open until the end
  std::vector<std::weak_ptr<Pair>> pairs;       // every connection, closed when the proxy stops
  std::thread thread;

  Fate draw() {
    if (!faults) return Pass;
    const int weights[kFates] = {mix.pass, mix.delay, mix.drop, mix.reset, mix.silence};
    std::discrete_distribution<int> pick(std::begin(weights), std::end(weights));
    return static_cast<Fate>(pick(random));
  }
  int between(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random); }

  void accept();
};


void FaultProxy::State::accept() {
  auto self = shared_from_this();
  const Fate fate = draw();
  auto pair = std::make_shared<Pair>(io, fate);
  pairs.push_back(pair);
  pair->delays.seed(random());
  const int strike_ms = between(20, 1500);
  acceptor.async_accept(pair->client, [self, pair, fate, strike_ms](boost::system::error_code ec) {
    if (ec) return;  // the acceptor closed
    self->accept();
    ++self->counts[fate];
    pair->server.async_connect(
        {asio::ip::make_address("127.0.0.1"), self->target_port},
        [self, pair, fate, strike_ms](boost::system::error_code cec) {
          if (cec) {
            pair->close_both(false);  // the studio is down: as a refused connection
            return;
          }
          pair->pump(pair->client, pair->server);
          pair->pump(pair->server, pair->client);
          if (fate == Drop || fate == Reset || fate == Silence) {
            pair->timer.expires_after(std::chrono::milliseconds(strike_ms));
            pair->timer.async_wait([self, pair, fate](boost::system::error_code tec) {
              if (tec || pair->closed) return;
              if (fate == Silence) {
                // Both sockets stay open and unread: each peer must find out by its own
                // timeout. They are closed when the proxy stops.
                pair->silenced = true;
                self->silenced.push_back(pair);
              } else {
                pair->close_both(fate == Reset);
              }
            });
          }
        });
  });
}

FaultProxy::FaultProxy(std::uint16_t target_port, std::uint64_t seed, FaultMix mix)
    : state_(std::make_shared<State>(target_port, seed, mix)) {
  state_->accept();
  state_->thread = std::thread([state = state_] { state->io.run(); });
}

FaultProxy::~FaultProxy() {
  // Close everything on the loop and let every handler finish, so that none keeps the state
  // (or a connection) alive after the proxy is gone.
  asio::post(state_->io, [state = state_] {
    boost::system::error_code ignored;
    state->acceptor.close(ignored);
    for (auto& weak : state->pairs) {
      if (auto pair = weak.lock()) pair->close_both(false);
    }
    state->pairs.clear();
    state->silenced.clear();
  });
  state_->thread.join();
}

std::uint16_t FaultProxy::port() const {
  return state_->acceptor.local_endpoint().port();
}

void FaultProxy::set_faults(bool on) {
  state_->faults = on;
}

std::array<std::uint64_t, FaultProxy::kFates> FaultProxy::counts() const {
  std::array<std::uint64_t, kFates> out{};
  for (int i = 0; i < kFates; ++i)
    out[static_cast<std::size_t>(i)] = state_->counts[static_cast<std::size_t>(i)];
  return out;
}

std::string FaultProxy::describe() const {
  std::string out;
  const auto now = counts();
  for (int i = 0; i < kFates; ++i) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", kFateNames[static_cast<std::size_t>(i)],
                       now[static_cast<std::size_t>(i)]);
  }
  return out;
}

}  // namespace sw::testing
