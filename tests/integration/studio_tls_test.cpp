// studio-server with --tls-cert/--tls-key: HTTPS and WSS on the same port, verified against the
// test certificate; a plain-HTTP client is not served.

#include <gtest/gtest.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "common/sha256.h"
#include "proto/codec.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"
#include "support/test_certs.h"

namespace sw::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

TEST(StudioTlsTest, HttpsAndWssWorkOnePortAndPlainHttpIsRefused) {
  TempDir dir;
  const auto cert = make_test_certificate(dir.path());
  studio::StudioConfig config;
  config.data_dir = dir.path() / "data";
  net::ServerOptions options;
  options.tls_cert_file = cert.cert_pem.string();
  options.tls_key_file = cert.key_pem.string();
  StudioHarness studio(config, options);
  ASSERT_NE(studio.port(), 0);

  ssl::context trust(ssl::context::tls_client);
  trust.load_verify_file(cert.cert_pem.string());
  trust.set_verify_mode(ssl::verify_peer);
  asio::io_context io;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), studio.port());

  auto https = [&](http::verb method, const std::string& target, const std::string& body,
                   const std::string& bearer) {
    beast::ssl_stream<beast::tcp_stream> stream(io, trust);
    beast::get_lowest_layer(stream).connect(endpoint);
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!bearer.empty()) {
      req.set(http::field::authorization, "Bearer " + bearer);
    }
    if (method == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return std::pair(res.result_int(), res.body());
  };
  auto [health, health_body] = https(http::verb::get, "/healthz", "", "");
  EXPECT_EQ(health, 200);
  EXPECT_EQ(health_body, R"({"ok":true})");

  // Registration, approval and the session, all over TLS.
  const std::string secret = "tls-secret";
  const std::string request = R"({"installId":"tls-install","registrationSecretHash":")" +
                              sha256_hex(secret) + R"(","capabilities":)" +
                              proto::encode(test_capabilities()) + R"(,"userAgent":"t"})";
  auto [registered, registered_body] =
      https(http::verb::post, "/graphics/api/workers/register-request", request, "");
  ASSERT_EQ(registered, 200) << registered_body;
  const auto request_id = *proto::decode_register_response(registered_body);
  ASSERT_EQ(https(http::verb::post, "/api/v1/workers/pending/" + request_id.request_id + "/approve",
                  "", kTestAdminToken)
                .first,
            200);
  auto [polled, poll_body] =
      https(http::verb::get, "/graphics/api/workers/register-requests/" + request_id.request_id, "",
            secret);
  const auto approved =
      std::get<proto::RegistrationApproved>(*proto::decode_registration_poll(poll_body));

  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(io, trust);
  beast::get_lowest_layer(ws).connect(endpoint);
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
    req.set(http::field::authorization, "Bearer " + approved.auth_token);
    req.set(http::field::sec_websocket_protocol, "studio-worker-v1");
  }));
  ws.handshake("127.0.0.1", "/graphics/api/workers/" + approved.worker_id + "/connect");
  ws.text(true);
  ws.write(asio::buffer(
      proto::encode(proto::WorkerFrame{proto::Hello{approved.auth_token, test_capabilities()}})));
  beast::flat_buffer buffer;
  ws.read(buffer);
  auto welcome = proto::decode_studio_frame(beast::buffers_to_string(buffer.data()));
  ASSERT_TRUE(welcome && std::holds_alternative<proto::Welcome>(*welcome));
  ws.close(websocket::close_code::normal);

  // A plain-HTTP client on the TLS port gets no HTTP answer.
  EXPECT_EQ(http_request(studio.port(), "GET", "/healthz", "", "", "application/json", 2s).status,
            0);
}

}  // namespace
}  // namespace sw::testing
