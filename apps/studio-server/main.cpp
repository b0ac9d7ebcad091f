// studio-server: command-line wiring only (house style C.2 §14).
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#if defined(SW_MIMALLOC)
#include <mimalloc.h>
#endif

#include "changes.h"
#include "common/clock.h"
#include "common/fd_limit.h"
#include "common/json_text.h"
#include "common/log.h"
#include "net/http_server.h"
#include "service/service_notify.h"
#include "sql/pg/connection.h"
#include "studio/admin.h"
#include "studio/data_dir.h"
#include "studio/data_dir_lock.h"
#include "studio/join_tokens.h"
#include "studio/store/studio_store.h"
#include "studio/studio.h"

namespace {

std::filesystem::path default_data_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::filesystem::path(xdg) / "studio-server";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::filesystem::path(home) / ".local/share/studio-server";
  }
  return "studio-server-data";
}

// "host:port" or "[v6]:port"; port 0 asks for an ephemeral port.
sw::Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return sw::fail(sw::Error::invalid_argument("--listen \"{}\": expected host:port", text));
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    return sw::fail(sw::Error::invalid_argument(
        "--listen \"{}\": no host; say which address to listen on, e.g. 127.0.0.1{} (this "
        "machine only) or 0.0.0.0{} (every interface)",
        text, text.substr(colon), text.substr(colon)));
  }
  unsigned port = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data() + colon + 1, end, port);
  if (ec != std::errc() || ptr != end || port > 65535) {
    return sw::fail(sw::Error::invalid_argument("--listen \"{}\": bad port", text));
  }
  return std::pair(host, static_cast<std::uint16_t>(port));
}

// The listen host as an IP address: a name (`localhost`) is resolved, IPv4 first (a worker given
// http://localhost:… tries both families; one bound address serves it).
sw::Result<std::string> resolve_host(boost::asio::io_context& loop, const std::string& host) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) {
    return address.to_string();
  }
  boost::asio::ip::tcp::resolver resolver(loop);
  const auto results = resolver.resolve(host, "", ec);
  if (ec || results.empty()) {
    return sw::fail(sw::Error::invalid_argument("--listen \"{}\": cannot resolve \"{}\": {}", host,
                                                host, ec ? ec.message() : "no address"));
  }
  for (const auto& entry : results) {
    if (entry.endpoint().address().is_v4()) {
      return entry.endpoint().address().to_string();
    }
  }
  return results.begin()->endpoint().address().to_string();
}

std::string shell_word(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789/._-+:=@%,") == std::string::npos) {
    return text;
  }
  std::string out = "'";
  for (const char c : text) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

// Which malloc this process runs on (CMake: SW_MIMALLOC), for an operator reading the log.
void log_allocator() {
#if defined(SW_MIMALLOC)
  sw::log::Logger("studio_worker::studio::main")
      .info("allocator", {{"name", "mimalloc"}, {"version", mi_version()}});
#else
  sw::log::Logger("studio_worker::studio::main").info("allocator", {{"name", "glibc"}});
#endif
}

// Every worker session is a socket: raise the soft descriptor limit to the hard one before
// anything is opened, and say so when even that is short of a 10,000-worker fleet (issue 16).
void raise_fd_limit_or_warn() {
  const sw::log::Logger log("studio_worker::studio::main");
  auto limit = sw::raise_fd_limit();
  if (!limit) {
    log.warn("fd_limit.raise_failed",
             {{"error", limit.error().message}, {"soft", sw::current_fd_limit()}});
    return;
  }
  log.info("fd_limit", {{"before", limit->before}, {"after", limit->after}, {"hard", limit->hard}});
  if (limit->after < sw::kFdsForTenThousandWorkers) {
    log.warn("fd_limit.low",
             {{"limit", limit->after},
              {"needed_for_10000_workers", sw::kFdsForTenThousandWorkers},
              {"hint", "raise the hard limit: LimitNOFILE= in the systemd unit, or ulimit -Hn"}});
  }
}

std::string mib(std::uint64_t bytes) {
  return fmt::format("{:.6g} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

// Where the studio listens, as the banner says it: the bound address and who can reach it.
struct Reach {
  std::string url_host;  // a host for URLs printed for other programs (never a wildcard)
  std::string text;      // "loopback only: …" or "every interface: …"
};
Reach reach_of(const std::string& bound_ip, std::uint16_t port) {
  const auto address = boost::asio::ip::make_address(bound_ip);
  const auto bracket = [](const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
  };
  if (address.is_loopback()) {
    return {bracket(bound_ip),
            fmt::format("loopback only: workers on other machines cannot reach it (--listen "
                        "0.0.0.0:{} serves every interface)",
                        port)};
  }
  if (address.is_unspecified()) {
    return {boost::asio::ip::host_name(),
            "every interface: reachable from other machines (use TLS, or a firewall, off a "
            "trusted network)"};
  }
  return {bracket(bound_ip), "reachable from other machines at " + bound_ip};
}

int serve(const std::string& listen, sw::studio::StudioConfig config,
          sw::net::ServerOptions server_options, const std::string& data_dir_arg) {
  auto endpoint = parse_listen(listen);
  if (!endpoint) {
    std::cerr << "studio-server: " << endpoint.error().message << "\n";
    return 2;
  }
  boost::asio::io_context loop(1);
  auto bound_ip = resolve_host(loop, endpoint->first);
  if (!bound_ip) {
    std::cerr << "studio-server: " << bound_ip.error().message << "\n";
    return 2;
  }
  server_options.host = *bound_ip;
  server_options.port = endpoint->second;
  log_allocator();
  raise_fd_limit_or_warn();
  if (const char* token = std::getenv("STUDIO_SERVER_ADMIN_TOKEN"); token && *token) {
    config.admin_token = token;
  }
  const auto data_dir = config.data_dir;
  const auto database_uri = config.database_uri;
  const auto results_dir = config.results_path();
  const auto uploads_dir = config.uploads_path();
  const std::array<std::uint64_t, 3> limits = {config.json_body_limit, config.frame_limit,
                                               config.result_body_limit};
  // One studio per data directory, for its whole life: a second one (or a CLI command writing
  // meanwhile) would change rows this one keeps in memory (tokens, claims).
  sw::studio::LockHolder holder;
  auto lock = sw::studio::DataDirLock::try_acquire(data_dir, "serve", &holder);
  if (!lock) {
    std::cerr << "studio-server: " << lock.error().message;
    if (lock.error().code == sw::Code::Conflict) {
      std::cerr << (holder.command == "serve"
                        ? "; one studio per data directory: stop that one first, or give this "
                          "one another --data-dir"
                        : "; run serve again once that command has finished");
    }
    std::cerr << "\n";
    return 2;
  }
  auto studio = sw::studio::Studio::create(loop.get_executor(), std::move(config));
  if (!studio) {
    std::cerr << "studio-server: " << studio.error().message << "\n";
    // PostgreSQL not (yet) reachable, e.g. at boot before its unit: transient, exit 1 so that
    // systemd restarts the studio (2 is in the unit's RestartPreventExitStatus).
    return studio.error().code == sw::Code::Unavailable ? 1 : 2;
  }
  auto server =
      sw::net::HttpServer::start(loop.get_executor(), server_options, (*studio)->http_handler());
  if (!server) {
    std::cerr << "studio-server: " << server.error().message << "\n";
    return 2;
  }
  // Only now, with the port ours: a first start that cannot listen leaves no token nobody saw.
  auto minted = (*studio)->mint_admin_token_if_missing();
  if (!minted) {
    std::cerr << "studio-server: cannot store the admin token: " << minted.error().message << "\n";
    return 2;
  }
  const std::string scheme = (*server)->tls() ? "https" : "http";
  const auto port = (*server)->port();
  const Reach reach = reach_of(server_options.host, port);
  const std::string base = fmt::format("{}://{}:{}", scheme, reach.url_host, port);
  // Where CLI commands on this machine reach the admin API (a wildcard address is not one).
  std::string local_host = server_options.host;
  if (local_host == "0.0.0.0" || local_host.empty()) {
    local_host = "127.0.0.1";
  } else if (local_host == "::") {
    local_host = "::1";
  }
  if (auto published = lock->publish_url(fmt::format(
          "{}://{}:{}", scheme,
          local_host.find(':') != std::string::npos ? "[" + local_host + "]" : local_host, port));
      !published) {
    std::cerr << "studio-server: " << published.error().message << "\n";
    return 2;
  }
  // The commands below work as printed: the data directory is named unless it is the default.
  std::string dir_flag = data_dir_arg.empty() ? "" : " --data-dir " + shell_word(data_dir_arg);
  // A URI with a password is not printed whole, and one printed with *** in it would not work:
  // the commands then read it from the environment, and a line says so (as when this process
  // read it from there: a new shell has no STUDIO_SERVER_DATABASE).
  std::string database_note;
  const char* database_env = std::getenv("STUDIO_SERVER_DATABASE");
  if (database_uri && database_env != nullptr && *database_uri == database_env) {
    database_note =
        "(the commands read the database from STUDIO_SERVER_DATABASE, as this "
        "process did: export it where you run them)";
  } else if (database_uri && sw::sql::pg::redacted_uri(*database_uri) == *database_uri) {
    dir_flag += " --database " + shell_word(*database_uri);
  } else if (database_uri) {
    dir_flag += " --database \"$STUDIO_SERVER_DATABASE\"";
    database_note =
        "(export STUDIO_SERVER_DATABASE='<the --database URI>' first: its password "
        "is not printed)";
  }
  std::cout << "studio-server " << SW_VERSION << " listening on " << base << "\n"
            << "  bound:       " << server_options.host << ":" << port;
  if (server_options.host != endpoint->first) {
    std::cout << " (--listen " << listen << ")";
  }
  std::cout << "\n  reach:       " << reach.text << "\n"
            << "  data:        " << data_dir.string() << "\n"
            << "  database:    "
            << (database_uri ? sw::sql::pg::redacted_uri(*database_uri)
                             : (data_dir / "studio.db").string())
            << "\n"
            << "  results:     " << results_dir.string() << "\n"
            << "  uploads:     " << uploads_dir.string() << "\n"
            << "  client API:  " << base << "/api/v1\n"
            << "  metrics:     " << base << "/metrics\n"
            << fmt::format("  limits:      JSON body {}, WebSocket message {}, result upload {}\n",
                           mib(limits[0]), mib(limits[1]), mib(limits[2]));
  if (*minted) {
    std::cout << "  admin token: " << **minted
              << "   (shown once; stored hashed. A new one: studio-server admin-token --rotate"
              << dir_flag << ")\n";
  }
  std::cout << "  a worker joins with: studio-worker register --api-base-url " << base
            << "\n  its request:         studio-server workers pending" << dir_flag
            << "\n  then approve it:     STUDIO_SERVER_ADMIN_TOKEN=<admin token> studio-server "
               "workers approve <request-id>"
            << dir_flag << "\n  or, unattended:      studio-server join-token create" << dir_flag
            << ", then register with --join-token <token>\n";
  if (!database_note.empty()) {
    std::cout << "  " << database_note << "\n";
  }
  std::cout << std::flush;

  // Under systemd (Type=notify): STOPPING=1 at SIGTERM, READY=1 below.
  const auto notifier = sw::service::Notifier::from_environment();
  const auto tell_manager = [](const sw::Status& sent) {
    if (!sent) {
      sw::log::Logger("studio_worker::studio::main")
          .warn("service.notify_failed", {{"error", sent.error().message}});
    }
  };

  boost::asio::signal_set signals(loop, SIGINT, SIGTERM);
  boost::asio::steady_timer drain(loop);
  std::function<void(int)> wait_drained;
  // Set when the stop begins: every session gets 10 s for its close handshake from then (measured
  // from the start, a studio up for more than 10 s cut its sessions without a close frame).
  std::chrono::steady_clock::time_point give_up;
  wait_drained = [&](int) {
    if ((*studio)->open_sessions() == 0 || std::chrono::steady_clock::now() > give_up) {
      loop.stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(20));
    drain.async_wait([&](const boost::system::error_code&) { wait_drained(0); });
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) {
      return;
    }
    sw::log::Logger("studio_worker::studio::main").info("shutdown", {{"signal", signal}});
    tell_manager(notifier.stopping("stopping: closing worker sessions"));
    give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    (*server)->stop();
    (*studio)->shutdown([&] { wait_drained(0); });
  });
  // Ready once the port listens and SIGTERM is ours to handle (a stop right after READY=1 still
  // closes the sessions); watchdog pings from this loop: a loop that stops turning stops them,
  // and systemd restarts the studio.
  sw::service::WatchdogPinger watchdog(loop.get_executor(), notifier);
  tell_manager(notifier.ready("listening on " + base));
  loop.run();
  server->reset();
  studio->reset();
  return 0;
}

int with_store(const std::filesystem::path& data_dir,
               const std::optional<std::string>& database_uri,
               const std::function<int(sw::store::StudioStore&)>& action) {
  auto store = sw::studio::open_studio_store(data_dir, database_uri);
  if (!store) {
    std::cerr << "studio-server: " << store.error().message << "\n";
    return 2;
  }
  return action(**store);
}

// with_store for a command whose change only matters to a studio that already ran on this data
// directory (join tokens): a token written into a new, empty studio.db (a mistyped --data-dir,
// root's default one instead of the service's) would be refused to every worker as unknown.
int with_existing_store(const std::filesystem::path& data_dir,
                        const std::optional<std::string>& database_uri,
                        const std::function<int(sw::store::StudioStore&)>& action) {
  std::error_code ec;
  if (!database_uri && !std::filesystem::exists(data_dir / "studio.db", ec)) {
    std::cerr << "studio-server: no studio database in " << data_dir.string()
              << ": name the studio's --data-dir (the packaged service's is /var/lib/studio-server)"
                 ", or start `studio-server serve` there once first\n";
    return 2;
  }
  return with_store(data_dir, database_uri, action);
}

// `text` for a terminal: control bytes (escape sequences, newlines that would forge lines) as
// \xNN. The listed fields come from unauthenticated register-requests.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

int report(const sw::Status& status) {
  if (!status) {
    std::cerr << "studio-server: " << status.error().message << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sw::log::init_from_env();
  CLI::App app{"studio-server: the self-hostable studio for studio-worker farms"};
  app.set_version_flag("--version", std::string("studio-server ") + SW_VERSION);
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "Log output on stderr")
      ->check(CLI::IsMember({"text", "json"}));
  std::filesystem::path data_dir = default_data_dir();
  auto* data_dir_option = app.add_option(
      "--data-dir", data_dir, "Database and results (default ~/.local/share/studio-server)");
  std::string database;
  auto* database_option =
      app.add_option("--database", database,
                     "PostgreSQL instead of <data-dir>/studio.db: postgresql://USER@HOST:PORT/DB "
                     "(password from ~/.pgpass or PGPASSWORD preferably); serve and every admin "
                     "command use it")
          ->envname("STUDIO_SERVER_DATABASE");
  app.require_subcommand(1);
  app.fallthrough();  // --data-dir, --database and --log-format may follow any subcommand

  auto* serve_cmd = app.add_subcommand(
      "serve",
      "Serve workers and clients (one studio per data directory: it holds <data-dir>/studio.lock)");
  std::string listen = "127.0.0.1:9790";
  sw::studio::StudioConfig config;
  sw::net::ServerOptions server_options;
  std::string tls_cert;
  std::string tls_key;
  double result_limit_mib = 512;
  double json_limit_mib = 1;
  double uploads_in_flight_mib = 1024;
  double upload_limit_mib = 64;
  unsigned upload_retention_s = 3600;
  unsigned offer_timeout_ms = 30'000;
  unsigned silence_timeout_ms = 30'000;
  unsigned run_limit_s = 1800;
  unsigned claim_grace_ms = 60'000;
  unsigned heartbeat_interval_ms = 5'000;
  serve_cmd->add_option("--listen", listen, "host:port to listen on (0 picks a free port)");
  serve_cmd->add_option("--results-dir", config.results_dir,
                        "Result files (default <data-dir>/results); studios sharing one "
                        "PostgreSQL database must share it (one path, or a shared mount)");
  serve_cmd->add_option("--uploads-dir", config.uploads_dir,
                        "Client uploads, the inputs of jobs (default <data-dir>/uploads); studios "
                        "sharing one PostgreSQL database must share it, as --results-dir");
  serve_cmd->add_option("--tls-cert", tls_cert, "PEM certificate chain (enables TLS)")
      ->check(CLI::ExistingFile);
  serve_cmd->add_option("--tls-key", tls_key, "PEM private key")->check(CLI::ExistingFile);
  serve_cmd
      ->add_option("--max-result-mib", result_limit_mib,
                   "Largest result upload (a worker's multipart body, whole; larger: 413)")
      ->check(CLI::Range(1.0, 65536.0));
  serve_cmd
      ->add_option("--max-json-mib", json_limit_mib,
                   "Largest JSON request body (a job's task); a worker's WebSocket messages may "
                   "be max(16, 2 x this + 1) MiB (a completeJson echoes the prompt beside its "
                   "result). At most 48: an offer carries the task to workers that read 64 MiB")
      ->check(CLI::PositiveNumber);
  serve_cmd
      ->add_option("--max-upload-mib", upload_limit_mib,
                   "Largest client upload (POST /api/v1/uploads: a job's input file; larger: 413)")
      ->check(CLI::Range(0.01, 65536.0));
  serve_cmd
      ->add_option("--upload-retention-s", upload_retention_s,
                   "How long a client upload no job took is kept (one a job took goes with it)")
      ->check(CLI::Range(1u, 30u * 86400u));
  serve_cmd->add_option(
      "--public-url", config.public_url,
      "The studio's base URL as workers reach it (https://studio.example.com), for the upload "
      "URLs it hands out; default http:// + the Host header of the upload request");
  serve_cmd
      ->add_option("--max-uploads-in-flight-mib", uploads_in_flight_mib,
                   "Result upload bytes received at once, all uploads together (503 over it)")
      ->check(CLI::Range(1.0, 1048576.0));
  serve_cmd->add_option("--offer-timeout-ms", offer_timeout_ms, "Offer unanswered → requeue")
      ->check(CLI::Range(10u, 3'600'000u));
  serve_cmd
      ->add_option("--silence-timeout-ms", silence_timeout_ms,
                   "A session with no frame for this long is closed")
      ->check(CLI::Range(10u, 3'600'000u));
  serve_cmd
      ->add_option("--claim-grace-ms", claim_grace_ms,
                   "A job's claim outlives its worker's session this long before a requeue")
      ->check(CLI::Range(0u, 3'600'000u));
  serve_cmd
      ->add_option(
          "--heartbeat-interval-ms", heartbeat_interval_ms,
          "How often workers heartbeat: the protocol's 5000 (reference §1.9). Lower only "
          "for rehearsal workers run with --time-scale. The timeouts are checked against it")
      ->check(CLI::Range(10u, 600'000u))
      ->capture_default_str();
  serve_cmd->add_option("--run-limit-s", run_limit_s, "Claimed with no result → requeue")
      ->check(CLI::Range(1u, 7u * 24 * 3600));
  std::vector<std::string> kind_run_limits;
  serve_cmd->add_option("--kind-run-limit", kind_run_limits,
                        "Per-kind run limit, KIND=SECONDS (e.g. video=7200); repeatable");
  // Hostile input and resource limits (docs/limits.md).
  unsigned header_timeout_s = static_cast<unsigned>(server_options.header_timeout.count());
  unsigned body_timeout_s = static_cast<unsigned>(server_options.body_timeout.count());
  unsigned anonymous_body_timeout_s = static_cast<unsigned>(config.anonymous_body_timeout.count());
  unsigned anonymous_body_kib = static_cast<unsigned>(config.anonymous_body_limit / 1024);
  serve_cmd
      ->add_option("--header-timeout-s", header_timeout_s,
                   "Request headers must arrive within this long (also the keep-alive idle limit)")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  serve_cmd
      ->add_option("--body-timeout-s", body_timeout_s,
                   "A request body on an authenticated route must arrive within this long (408)")
      ->check(CLI::Range(1u, 24u * 3600))
      ->capture_default_str();
  serve_cmd
      ->add_option("--anonymous-body-timeout-s", anonymous_body_timeout_s,
                   "The same for routes that need no token (register-request, /healthz)")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  serve_cmd
      ->add_option("--anonymous-body-kib", anonymous_body_kib,
                   "Largest body on routes that need no token (413 above)")
      ->check(CLI::Range(1u, 1024u * 1024))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-connections", server_options.max_connections,
                   "Open connections in all (worker sessions included); clamped to the open-file "
                   "limit minus 256; over it a new connection gets 503 + Retry-After")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-unauthenticated-connections", server_options.max_unauthenticated,
                   "Connections not yet past a token check, in all")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-unauthenticated-per-address",
                   server_options.max_unauthenticated_per_address,
                   "Connections not yet past a token check, per source address")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
      ->capture_default_str();

  auto* workers = app.add_subcommand(
      "workers",
      "Approve, reject, list and delete workers. While a studio runs on the data directory, "
      "approve/reject/delete go through its admin API: set STUDIO_SERVER_ADMIN_TOKEN");
  workers->require_subcommand(1);
  workers->fallthrough();
  auto* pending = workers->add_subcommand("pending", "List registration requests awaiting you");
  auto* list = workers->add_subcommand("list", "List approved workers");
  pending->fallthrough();
  list->fallthrough();
  std::string id;
  std::string reason;
  auto* approve = workers->add_subcommand("approve", "Approve a registration request");
  approve->add_option("request-id", id, "The rr-… id from `workers pending`")->required();
  auto* reject = workers->add_subcommand("reject", "Reject a registration request");
  reject->add_option("request-id", id, "The rr-… id from `workers pending`")->required();
  reject->add_option("--reason", reason, "Shown to the worker's operator");
  auto* remove = workers->add_subcommand(
      "delete",
      "Delete a worker: a running studio closes its session, revokes its token and requeues its "
      "job at once");
  remove->add_option("worker-id", id, "The w-… id from `workers list`")->required();
  auto* admin_token = app.add_subcommand(
      "admin-token",
      "The admin token is shown once, at the first start. --rotate prints a new one and revokes "
      "the old (a running studio is asked through its admin API: set STUDIO_SERVER_ADMIN_TOKEN "
      "to the current token; lost it? stop the studio and rotate)");
  bool rotate = false;
  admin_token->add_flag("--rotate", rotate, "Make a new admin token; the old one stops working");
  auto* join_token = app.add_subcommand(
      "join-token",
      "Tokens that let workers join without waiting for approval (studio-worker register "
      "--join-token T). They work on the database directly, also while a studio runs: it reads "
      "tokens at each use and keeps no copy");
  join_token->require_subcommand(1);
  join_token->fallthrough();
  auto* join_create = join_token->add_subcommand(
      "create", "Make a token and print it (shown once; only its hash is stored)");
  std::string join_ttl = "24h";
  std::int64_t join_uses = 0;
  std::string join_label;
  join_create
      ->add_option("--ttl", join_ttl, "How long it works: 30m, 24h, 7d, ... (1m to 366d) or never")
      ->capture_default_str();
  join_create->add_option("--uses", join_uses, "How many workers it may approve (default: any)")
      ->check(CLI::Range(std::int64_t{1}, sw::studio::kMaxJoinTokenUses));
  join_create->add_option("--label", join_label, "A note for you: where it went, what for");
  auto* join_list = join_token->add_subcommand("list", "List tokens (never their secret)");
  auto* join_revoke =
      join_token->add_subcommand("revoke", "Stop a token from approving anyone from now on");
  join_revoke->add_option("token-id", id, "The jt-... id from `join-token list`")->required();
  for (auto* command :
       {serve_cmd, approve, reject, remove, admin_token, join_create, join_list, join_revoke}) {
    command->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every usage error exits 2, as the README says (CLI11's own codes are 100+).
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (log_format == "json") {
    sw::log::set_format(sw::log::Format::Json);
  }

  // `--database ""` is a mistake (an unset shell variable in a script), not a request for
  // SQLite: SQLite is what leaving the flag out means. (CLI11 skips an empty environment value.)
  if (database_option->count() > 0 && database.empty()) {
    std::cerr << "studio-server: --database is empty; leave it out to use SQLite in the data "
                 "directory\n";
    return 2;
  }
  const std::optional<std::string> database_uri =
      database.empty() ? std::nullopt : std::optional<std::string>(database);
  int rc = 0;
  if (serve_cmd->parsed()) {
    config.data_dir = data_dir;
    config.database_uri = database_uri;
    config.result_body_limit = static_cast<std::uint64_t>(result_limit_mib * 1024 * 1024);
    config.upload_body_limit = static_cast<std::uint64_t>(upload_limit_mib * 1024 * 1024);
    config.upload_retention = std::chrono::seconds(upload_retention_s);
    config.anonymous_body_limit = std::uint64_t{anonymous_body_kib} * 1024;
    config.anonymous_body_timeout = std::chrono::seconds(anonymous_body_timeout_s);
    server_options.header_timeout = std::chrono::seconds(header_timeout_s);
    server_options.body_timeout = std::chrono::seconds(body_timeout_s);
    // One limit for both sides of the socket (issue 16): the message cap follows the JSON limit,
    // and a JSON limit no worker could receive in an offer is refused, not half honoured.
    const bool json_limit_ok =
        json_limit_mib >= 0.01 &&
        json_limit_mib * 1024 * 1024 <= static_cast<double>(sw::studio::kMaxJsonBodyLimit);
    if (json_limit_ok) {
      config.json_body_limit = static_cast<std::uint64_t>(json_limit_mib * 1024 * 1024);
      config.frame_limit = sw::studio::frame_limit_for(config.json_body_limit);
    } else {
      std::cerr << "studio-server: --max-json-mib " << json_limit_mib
                << ": expected 0.01 to 48 (an offer carries a job's task to its worker in one "
                   "WebSocket message, and workers read messages of at most 64 MiB)\n";
    }
    config.upload_in_flight_limit = static_cast<std::uint64_t>(uploads_in_flight_mib * 1024 * 1024);
    config.offer_timeout = std::chrono::milliseconds(offer_timeout_ms);
    config.session_silence_timeout = std::chrono::milliseconds(silence_timeout_ms);
    config.sweep_interval = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(5000),
                                                                config.session_silence_timeout / 3);
    config.default_run_limit = std::chrono::seconds(run_limit_s);
    config.claim_grace = std::chrono::milliseconds(claim_grace_ms);
    bool limits_ok = true;
    for (const auto& entry : kind_run_limits) {
      const auto eq = entry.find('=');
      const auto kind = sw::proto::parse_task_kind(entry.substr(0, eq));
      unsigned seconds = 0;
      const char* end = entry.data() + entry.size();
      const auto parsed = eq == std::string::npos
                              ? std::from_chars_result{end, std::errc::invalid_argument}
                              : std::from_chars(entry.data() + eq + 1, end, seconds);
      if (!kind || parsed.ec != std::errc() || parsed.ptr != end || seconds == 0) {
        std::cerr << "studio-server: --kind-run-limit \"" << entry
                  << "\": expected KIND=SECONDS with KIND one of image, llm, audio_stt, "
                     "audio_tts, video\n";
        limits_ok = false;
        break;
      }
      config.run_limits[*kind] = std::chrono::seconds(seconds);
    }
    if (!tls_cert.empty()) {
      server_options.tls_cert_file = tls_cert;
    }
    if (!tls_key.empty()) {
      server_options.tls_key_file = tls_key;
    }
    // Settings that contradict each other are refused, naming both (issue 17). A limit pair is
    // refused only when both were given; a default is raised or lowered to fit the other.
    const auto given = [&](const char* flag) { return serve_cmd->get_option(flag)->count() > 0; };
    if (!given("--max-uploads-in-flight-mib")) {
      uploads_in_flight_mib = std::max(uploads_in_flight_mib, result_limit_mib);
    }
    if (!given("--max-unauthenticated-connections")) {
      server_options.max_unauthenticated =
          std::min(server_options.max_unauthenticated, server_options.max_connections);
    }
    if (!given("--max-unauthenticated-per-address")) {
      server_options.max_unauthenticated_per_address = std::min(
          server_options.max_unauthenticated_per_address, server_options.max_unauthenticated);
    }
    const std::vector<std::string> clashes = {
        silence_timeout_ms < 3 * heartbeat_interval_ms
            ? fmt::format("--silence-timeout-ms {} is below 3 x --heartbeat-interval-ms {}: "
                          "one late heartbeat would close a healthy session, and every session "
                          "would flap",
                          silence_timeout_ms, heartbeat_interval_ms)
            : "",
        claim_grace_ms != 0 && claim_grace_ms < heartbeat_interval_ms
            ? fmt::format("--claim-grace-ms {} is below --heartbeat-interval-ms {}: a holder "
                          "that reconnects reports its job in a heartbeat, so its claim would "
                          "lapse first (0 requeues at once, on purpose)",
                          claim_grace_ms, heartbeat_interval_ms)
            : "",
        uploads_in_flight_mib < result_limit_mib
            ? fmt::format("--max-uploads-in-flight-mib {} is below --max-result-mib {}: an "
                          "upload of the largest size could never be received",
                          uploads_in_flight_mib, result_limit_mib)
            : "",
        server_options.max_unauthenticated > server_options.max_connections
            ? fmt::format("--max-unauthenticated-connections {} is above --max-connections {}",
                          server_options.max_unauthenticated, server_options.max_connections)
            : "",
        server_options.max_unauthenticated_per_address > server_options.max_unauthenticated
            ? fmt::format("--max-unauthenticated-per-address {} is above "
                          "--max-unauthenticated-connections {}",
                          server_options.max_unauthenticated_per_address,
                          server_options.max_unauthenticated)
            : "",
    };
    bool settings_ok = true;
    for (const auto& message : clashes) {
      if (!message.empty()) {
        std::cerr << "studio-server: " << message << "\n";
        settings_ok = false;
      }
    }
    // Named in printed commands only when it is not the default (then absolute: a command run
    // from another directory still finds it).
    const std::string data_dir_arg =
        data_dir_option->count() > 0 && data_dir != default_data_dir()
            ? std::filesystem::absolute(data_dir).lexically_normal().string()
            : "";
    config.upload_in_flight_limit = static_cast<std::uint64_t>(uploads_in_flight_mib * 1024 * 1024);
    rc = limits_ok && json_limit_ok && settings_ok
             ? serve(listen, config, server_options, data_dir_arg)
             : 2;
  } else if (pending->parsed()) {
    rc = with_store(data_dir, database_uri, [](sw::store::StudioStore& store) {
      auto requests = store.list_requests(sw::store::RequestStatus::Pending);
      if (!requests) {
        return report(sw::fail(requests.error()));
      }
      if (requests->empty()) {
        std::cout << "no pending registration requests\n";
      }
      for (const auto& r : *requests) {
        // Two requests from one host differ in install id, source port and first-seen time.
        auto caps = nlohmann::json::parse(r.capabilities_json, nullptr, false);
        if (!caps.is_object()) caps = nlohmann::json::object();
        const auto text = [&caps](const char* name) {
          const auto it = caps.find(name);
          return printable(it != caps.end() && it->is_string() ? it->get<std::string>() : "?");
        };
        std::cout << r.id << "  install=" << printable(r.install_id)
                  << "  from=" << printable(r.source_ip) << "  host=" << text("machineName")
                  << "  user=" << text("username") << "  agent=" << printable(r.user_agent)
                  << "  first_seen=" << sw::format_rfc3339_millis(r.created_at) << "\n";
      }
      return 0;
    });
  } else if (list->parsed()) {
    rc = with_store(data_dir, database_uri, [](sw::store::StudioStore& store) {
      auto all = store.list_workers();
      if (!all) {
        return report(sw::fail(all.error()));
      }
      if (all->empty()) {
        std::cout << "no workers\n";
      }
      for (const auto& w : *all) {
        std::cout << w.id << "  install=" << printable(w.install_id)
                  << "  approved=" << sw::format_rfc3339_millis(w.created_at)
                  << "  by=" << (w.approved_by.empty() ? "?" : w.approved_by) << "  last_seen="
                  << (w.last_seen_at ? sw::format_rfc3339_millis(*w.last_seen_at) : "never")
                  << "\n";
      }
      return 0;
    });
  } else if (approve->parsed()) {
    const auto approved = [&](const std::string& worker) {
      std::cout << "approved " << id << " as worker " << worker
                << " (it receives its token on its next poll)\n";
      return 0;
    };
    sw::studio_server::Change change;
    change.command = "workers approve";
    change.method = "POST";
    change.path = "/api/v1/workers/pending/" + sw::studio_server::path_segment(id) + "/approve";
    change.direct = [&](sw::store::StudioStore& store) {
      auto worker = sw::studio::approve_request(store, id, sw::unix_millis_now(), "cli");
      return worker ? approved(*worker) : report(sw::fail(worker.error()));
    };
    change.answered = [&](const std::string& body) {
      const auto answer = sw::parse_json(body, "the studio's answer");
      std::string worker = "?";
      if (answer && answer->is_object() && answer->contains("workerId") &&
          (*answer)["workerId"].is_string()) {
        worker = (*answer)["workerId"].get<std::string>();
      }
      return approved(worker);
    };
    rc = sw::studio_server::change_state(data_dir, database_uri, change);
  } else if (reject->parsed()) {
    sw::studio_server::Change change;
    change.command = "workers reject";
    change.method = "POST";
    change.path = "/api/v1/workers/pending/" + sw::studio_server::path_segment(id) + "/reject";
    change.body = nlohmann::json{{"reason", reason}}.dump();
    change.direct = [&](sw::store::StudioStore& store) {
      const int result =
          report(sw::studio::reject_request(store, id, reason, sw::unix_millis_now(), "cli"));
      if (result == 0) {
        std::cout << "rejected " << id << "\n";
      }
      return result;
    };
    change.answered = [&](const std::string&) {
      std::cout << "rejected " << id << "\n";
      return 0;
    };
    rc = sw::studio_server::change_state(data_dir, database_uri, change);
  } else if (admin_token->parsed()) {
    if (!rotate) {
      std::cerr << "studio-server: the admin token is shown once, at the first start, and stored "
                   "only hashed; `studio-server admin-token --rotate` prints a new one and "
                   "revokes the old\n";
      rc = 2;
    } else {
      const auto rotated = [](const std::string& token) {
        std::cout << "new admin token: " << token
                  << "   (shown once; the previous one no longer works)\n";
        return 0;
      };
      sw::studio_server::Change change;
      change.command = "admin-token --rotate";
      change.method = "POST";
      change.path = "/api/v1/admin-token/rotate";
      change.without_token =
          "Lost the current token? Stop the studio, run this again (it then writes the data "
          "directory itself), and start the studio.";
      change.direct = [&](sw::store::StudioStore& store) {
        auto token = sw::studio::store_new_admin_token(store);
        if (!token) {
          return report(sw::fail(token.error()));
        }
        if (const char* env = std::getenv("STUDIO_SERVER_ADMIN_TOKEN"); env && *env) {
          std::cerr << "studio-server: note: a studio started with STUDIO_SERVER_ADMIN_TOKEN set "
                       "uses that token, not the stored one\n";
        }
        return rotated(*token);
      };
      change.answered = [&](const std::string& body) {
        const auto answer = sw::parse_json(body, "the studio's answer");
        if (!answer || !answer->is_object() || !answer->contains("adminToken") ||
            !(*answer)["adminToken"].is_string()) {
          std::cerr << "studio-server: the studio answered without a token: " << body << "\n";
          return 1;
        }
        return rotated((*answer)["adminToken"].get<std::string>());
      };
      rc = sw::studio_server::change_state(data_dir, database_uri, change);
    }
  } else if (join_create->parsed()) {
    sw::studio::JoinTokenOptions options;
    options.label = join_label;
    if (join_uses > 0) options.max_uses = join_uses;
    auto ttl = sw::studio::parse_join_token_ttl(join_ttl);
    if (!ttl) {
      std::cerr << "studio-server: --" << ttl.error().message << "\n";
      rc = 2;
    } else {
      options.ttl = *ttl;
      rc = with_existing_store(data_dir, database_uri, [&](sw::store::StudioStore& store) {
        auto created = sw::studio::create_join_token(store, options, "cli", sw::unix_millis_now());
        if (!created) {
          return report(sw::fail(created.error()));
        }
        const auto& r = created->record;
        std::cout << "join token: " << created->token << "\n"
                  << "  id " << r.id << ", "
                  << (r.expires_at ? "expires " + sw::format_rfc3339_millis(*r.expires_at)
                                   : std::string("never expires"))
                  << ", "
                  << (r.max_uses ? std::to_string(*r.max_uses) + " use(s)"
                                 : std::string("any number of uses"))
                  << "\n  (shown once; only its hash is stored.) On each worker:\n"
                  << "  studio-worker register --api-base-url <this studio's URL> --join-token "
                  << created->token << "\n";
        return 0;
      });
    }
  } else if (join_list->parsed()) {
    rc = with_existing_store(data_dir, database_uri, [](sw::store::StudioStore& store) {
      auto tokens = store.list_join_tokens();
      if (!tokens) {
        return report(sw::fail(tokens.error()));
      }
      if (tokens->empty()) {
        std::cout << "no join tokens\n";
      }
      const auto now = sw::unix_millis_now();
      for (const auto& t : *tokens) {
        std::cout << t.id << "  " << sw::studio::to_string(sw::studio::join_token_state(t, now))
                  << "  uses=" << t.uses << "/"
                  << (t.max_uses ? std::to_string(*t.max_uses) : std::string("any")) << "  expires="
                  << (t.expires_at ? sw::format_rfc3339_millis(*t.expires_at) : "never")
                  << "  created=" << sw::format_rfc3339_millis(t.created_at)
                  << "  by=" << t.created_by << "  label=" << nlohmann::json(t.label).dump()
                  << "\n";
      }
      return 0;
    });
  } else if (join_revoke->parsed()) {
    rc = with_existing_store(data_dir, database_uri, [&](sw::store::StudioStore& store) {
      auto revoked = store.revoke_join_token(id, sw::unix_millis_now());
      if (!revoked) {
        return report(sw::fail(revoked.error()));
      }
      if (!*revoked) {
        std::cerr << "studio-server: no join token " << id << " that is not revoked already\n";
        return 1;
      }
      std::cout << "revoked join token " << id
                << " (workers it approved stay; it approves no one from now on)\n";
      return 0;
    });
  } else if (remove->parsed()) {
    sw::studio_server::Change change;
    change.command = "workers delete";
    change.method = "DELETE";
    change.path = "/api/v1/workers/" + sw::studio_server::path_segment(id);
    change.direct = [&](sw::store::StudioStore& store) {
      auto deleted = store.delete_worker(id);
      if (!deleted) {
        return report(sw::fail(deleted.error()));
      }
      if (!*deleted) {
        std::cerr << "studio-server: no worker " << id << "\n";
        return 1;
      }
      std::cout << "deleted worker " << id << "\n";
      return 0;
    };
    change.answered = [&](const std::string&) {
      std::cout << "deleted worker " << id
                << " (its session was closed and its token revoked by the running studio)\n";
      return 0;
    };
    rc = sw::studio_server::change_state(data_dir, database_uri, change);
  }
  sw::log::shutdown();
  return rc;
}
