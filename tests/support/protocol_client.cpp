#include "support/protocol_client.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "common/secrets.h"
#include "proto/codec.h"

namespace sw::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// Runs `io` until `done` or the deadline; false on timeout (pending ops are then cancelled).
template <class Stream>
bool run_until(asio::io_context& io, Stream& stream, const bool& done,
               std::chrono::milliseconds timeout) {
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      beast::get_lowest_layer(stream).cancel();
      io.restart();
      io.run_for(1s);  // let the cancelled handlers complete
      return false;
    }
    io.run_one_for(deadline - now);
  }
  return true;
}

}  // namespace

HttpReply http_request(std::uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body, const std::string& bearer,
                       const std::string& content_type, std::chrono::milliseconds timeout,
                       const std::vector<std::pair<std::string, std::string>>& headers) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  HttpReply reply;
  bool done = false;
  beast::flat_buffer buffer;
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!bearer.empty()) {
    req.set(http::field::authorization, "Bearer " + bearer);
  }
  for (const auto& [name, value] : headers) {
    req.set(name, value);
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  stream.async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), [&](beast::error_code ec) {
        if (ec) {
          done = true;
          return;
        }
        http::async_write(stream, req, [&](beast::error_code wec, std::size_t) {
          // A refused body may be cut short by the server; read the answer anyway.
          (void)wec;
          http::async_read(stream, buffer, parser, [&](beast::error_code rec, std::size_t) {
            if (!rec) {
              auto& res = parser.get();
              reply.status = res.result_int();
              reply.body = res.body();
              reply.content_type = std::string(res[http::field::content_type]);
              for (const auto& f : res) {
                reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
              }
            }
            done = true;
          });
        });
      });
  io.run();
  return reply;
}

std::pair<std::string, std::string> result_form(const std::string& prompt, const std::string& ext,
                                                const std::string& bytes,
                                                const std::string& filename) {
  const std::string boundary = "----sw-test-" + random_hex(8);
  std::string body;
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" + prompt +
          "\r\n";
  body +=
      "--" + boundary + "\r\nContent-Disposition: form-data; name=\"ext\"\r\n\r\n" + ext + "\r\n";
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" +
          filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
  body += bytes;
  body += "\r\n--" + boundary + "--\r\n";
  return {"multipart/form-data; boundary=" + boundary, body};
}

struct ProtocolClient::Impl {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;
  std::string subprotocol;
  bool closed = false;
  std::optional<std::uint16_t> close_code;
};

ProtocolClient::ProtocolClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProtocolClient::~ProtocolClient() {
  if (!impl_->closed) {
    drop();
  }
}

Result<std::unique_ptr<ProtocolClient>> ProtocolClient::connect(std::uint16_t port,
                                                                const std::string& worker_id,
                                                                Options options) {
  auto impl = std::make_unique<Impl>();
  auto& ws = impl->ws;
  beast::error_code ec;
  beast::get_lowest_layer(ws).expires_after(10s);
  beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) {
    return fail(Error::unavailable("connect: {}", ec.message()));
  }
  ws.set_option(websocket::stream_base::decorator([options](websocket::request_type& req) {
    if (!options.bearer.empty()) {
      req.set(http::field::authorization, "Bearer " + options.bearer);
    }
    if (options.offer_subprotocol) {
      req.set(http::field::sec_websocket_protocol, "studio-worker-v1");
    }
  }));
  websocket::response_type response;
  bool done = false;
  ws.async_handshake(response, "127.0.0.1", "/graphics/api/workers/" + worker_id + "/connect",
                     [&](beast::error_code hec) {
                       ec = hec;
                       done = true;
                     });
  if (!run_until(impl->io, ws, done, 10s)) {
    return fail(Error::make(Code::Timeout, "upgrade timed out"));
  }
  if (ec) {
    return fail(Error::unavailable("HTTP {}: {}", response.result_int(), response.body()));
  }
  beast::get_lowest_layer(ws).expires_never();
  impl->subprotocol = std::string(response[http::field::sec_websocket_protocol]);
  ws.text(true);
  return std::unique_ptr<ProtocolClient>(new ProtocolClient(std::move(impl)));
}

const std::string& ProtocolClient::subprotocol() const {
  return impl_->subprotocol;
}

void ProtocolClient::send_text(const std::string& text) {
  if (impl_->closed) {
    return;
  }
  beast::error_code ec;
  impl_->ws.text(true);
  impl_->ws.write(asio::buffer(text), ec);
}

void ProtocolClient::send(const proto::WorkerFrame& frame) {
  send_text(proto::encode(frame));
}

void ProtocolClient::send_binary(const std::string& bytes) {
  beast::error_code ec;
  impl_->ws.binary(true);
  impl_->ws.write(asio::buffer(bytes), ec);
  impl_->ws.text(true);
}

std::optional<std::string> ProtocolClient::next_text(std::chrono::milliseconds timeout) {
  if (impl_->closed) {
    return std::nullopt;
  }
  bool done = false;
  beast::error_code ec;
  impl_->buffer.clear();
  impl_->ws.async_read(impl_->buffer, [&](beast::error_code rec, std::size_t) {
    ec = rec;
    done = true;
  });
  if (!run_until(impl_->io, impl_->ws, done, timeout)) {
    // A timed-out read leaves the websocket stream unusable; treat it as the end.
    impl_->closed = true;
    return std::nullopt;
  }
  if (ec) {
    impl_->closed = true;
    if (ec == websocket::error::closed) {
      impl_->close_code = impl_->ws.reason().code;
    }
    return std::nullopt;
  }
  return beast::buffers_to_string(impl_->buffer.data());
}

std::optional<proto::StudioFrame> ProtocolClient::next_frame(std::chrono::milliseconds timeout) {
  auto text = next_text(timeout);
  if (!text) {
    return std::nullopt;
  }
  auto frame = proto::decode_studio_frame(*text);
  EXPECT_TRUE(frame.has_value()) << "undecodable studio frame: " << *text;
  if (!frame) {
    return std::nullopt;
  }
  return std::move(*frame);
}

std::optional<proto::StudioFrame> ProtocolClient::next_non_ack(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    auto frame = next_frame(left);
    if (!frame || !std::holds_alternative<proto::HeartbeatAck>(*frame)) {
      return frame;
    }
  }
}

std::optional<std::uint16_t> ProtocolClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!impl_->closed) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    (void)next_text(left);
  }
  return impl_->close_code;
}

bool ProtocolClient::closed() const {
  return impl_->closed;
}

void ProtocolClient::drop() {
  impl_->closed = true;
  beast::error_code ec;
  beast::get_lowest_layer(impl_->ws).socket().close(ec);
}

void ProtocolClient::close(std::uint16_t code) {
  if (impl_->closed) {
    return;
  }
  bool done = false;
  impl_->ws.async_close(websocket::close_reason(code), [&](beast::error_code) { done = true; });
  run_until(impl_->io, impl_->ws, done, 5s);
  impl_->closed = true;
}

}  // namespace sw::testing
