#pragma once
// The worker's live status (issue 19): what GET /daemon/status and the heartbeat report about the
// session, the registration, the last heartbeat and the shutdown, as a read-only struct with
// enums. One StatusBoard owns it; each collaborator that changes a part of it is handed the board
// by the daemon and changes it only through the board's named transitions (the session its
// session and heartbeat, the registrar the registration, the daemon the rest). Everyone else
// reads `view()`. Loop-thread only.
//
// The wire names (to_string below) are facts of the local API (reference-worker.md §1.9, §3.1):
// {"state": "waiting_for_approval" | "connecting" | "connected" | "reconnecting" (attempt) |
//  "auth_failed" (reason) | "fatal" (reason) | "stopped"} and
// {"state": "pristine" | "pending" (requestId, since) | "approved" | "rejected" (reason)}.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sw::worker {

enum class SessionPhase {
  Stopped,
  WaitingForApproval,
  Connecting,
  Connected,
  Reconnecting,  // `attempt` counts the reconnects since the last welcome
  AuthFailed,    // `reason`
  Fatal,         // `reason`
};
std::string_view to_string(SessionPhase phase);

struct SessionStatus {
  SessionPhase phase = SessionPhase::Stopped;
  std::uint32_t attempt = 0;  // Connecting, Reconnecting
  std::string reason;         // AuthFailed, Fatal
};

enum class RegistrationPhase { Pristine, Pending, Approved, Rejected };
std::string_view to_string(RegistrationPhase phase);

struct RegistrationStatus {
  RegistrationPhase phase = RegistrationPhase::Pristine;
  std::string request_id;  // Pending
  std::string since;       // Pending: RFC 3339, when the request was made
  std::string reason;      // Rejected
};

// The outcome of the last heartbeat sent.
struct HeartbeatStatus {
  bool ok = true;
  std::string reason;           // when !ok
  std::string last_attempt_at;  // RFC 3339
};

struct LiveStatus {
  SessionStatus session;
  RegistrationStatus registration;
  std::optional<HeartbeatStatus> heartbeat;  // none sent yet
  std::string local_api_url;                 // "" until the local API serves
  bool stopping = false;                     // the daemon is shutting down: offers are refused
};

class StatusBoard {
 public:
  const LiveStatus& view() const { return status_; }
  // Called after every transition below but heartbeat_sent, with the new status (the daemon
  // tells the service manager). One observer; a second call replaces it.
  void set_observer(std::function<void(const LiveStatus&)> observer) {
    observer_ = std::move(observer);
  }

  // ---- the session (session.h's diagram)
  void session_waiting_for_approval() { set_session(SessionPhase::WaitingForApproval); }
  void session_connecting(std::uint32_t attempt) { set_session(SessionPhase::Connecting, attempt); }
  void session_connected() { set_session(SessionPhase::Connected); }
  void session_reconnecting(std::uint32_t attempt) {
    set_session(SessionPhase::Reconnecting, attempt);
  }
  void session_auth_failed(std::string reason) {
    set_session(SessionPhase::AuthFailed, 0, std::move(reason));
  }
  void session_fatal(std::string reason) { set_session(SessionPhase::Fatal, 0, std::move(reason)); }
  void session_stopped() { set_session(SessionPhase::Stopped); }
  void heartbeat_sent(bool ok, std::string reason, std::string at) {
    status_.heartbeat = HeartbeatStatus{ok, std::move(reason), std::move(at)};
  }

  // ---- the registrar (registrar.h's diagram)
  void registration_pristine() {
    status_.registration = RegistrationStatus{};
    changed();
  }
  void registration_pending(std::string request_id, std::string since) {
    status_.registration =
        RegistrationStatus{RegistrationPhase::Pending, std::move(request_id), std::move(since), {}};
    changed();
  }
  void registration_approved() {
    status_.registration = RegistrationStatus{RegistrationPhase::Approved, {}, {}, {}};
    changed();
  }
  void registration_rejected(std::string reason) {
    status_.registration =
        RegistrationStatus{RegistrationPhase::Rejected, {}, {}, std::move(reason)};
    changed();
  }

  // ---- the daemon
  void local_api_serving(std::string url) {
    status_.local_api_url = std::move(url);
    changed();
  }
  void begin_stopping() {
    status_.stopping = true;
    changed();
  }

 private:
  void set_session(SessionPhase phase, std::uint32_t attempt = 0, std::string reason = {}) {
    status_.session = SessionStatus{phase, attempt, std::move(reason)};
    changed();
  }
  void changed() const {
    if (observer_) observer_(status_);
  }

  LiveStatus status_;
  std::function<void(const LiveStatus&)> observer_;
};

}  // namespace sw::worker
