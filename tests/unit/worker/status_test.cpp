// The live status's wire names: every phase maps to the string GET /daemon/status has always
// shown (reference-worker.md §1.9, §3.1), and the board's transitions set exactly the fields
// the local API reports for each phase.

#include "worker/status.h"

#include <gtest/gtest.h>

namespace sw::worker {
namespace {

TEST(LiveStatus, SessionPhasesKeepTheirWireNames) {
  EXPECT_EQ(to_string(SessionPhase::Stopped), "stopped");
  EXPECT_EQ(to_string(SessionPhase::WaitingForApproval), "waiting_for_approval");
  EXPECT_EQ(to_string(SessionPhase::Connecting), "connecting");
  EXPECT_EQ(to_string(SessionPhase::Connected), "connected");
  EXPECT_EQ(to_string(SessionPhase::Reconnecting), "reconnecting");
  EXPECT_EQ(to_string(SessionPhase::AuthFailed), "auth_failed");
  EXPECT_EQ(to_string(SessionPhase::Fatal), "fatal");
}

TEST(LiveStatus, RegistrationPhasesKeepTheirWireNames) {
  EXPECT_EQ(to_string(RegistrationPhase::Pristine), "pristine");
  EXPECT_EQ(to_string(RegistrationPhase::Pending), "pending");
  EXPECT_EQ(to_string(RegistrationPhase::Approved), "approved");
  EXPECT_EQ(to_string(RegistrationPhase::Rejected), "rejected");
}

TEST(LiveStatus, EachTransitionReplacesThePhaseAndItsDetails) {
  StatusBoard board;
  EXPECT_EQ(board.view().session.phase, SessionPhase::Stopped);
  board.session_reconnecting(3);
  EXPECT_EQ(board.view().session.phase, SessionPhase::Reconnecting);
  EXPECT_EQ(board.view().session.attempt, 3u);
  board.session_fatal("ws reconnect cap reached");
  EXPECT_EQ(board.view().session.attempt, 0u);
  EXPECT_EQ(board.view().session.reason, "ws reconnect cap reached");
  board.session_connected();
  EXPECT_TRUE(board.view().session.reason.empty());

  board.registration_pending("req-1", "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(board.view().registration.request_id, "req-1");
  board.registration_rejected("not ours");
  EXPECT_EQ(board.view().registration.phase, RegistrationPhase::Rejected);
  EXPECT_TRUE(board.view().registration.request_id.empty());
  EXPECT_EQ(board.view().registration.reason, "not ours");

  EXPECT_FALSE(board.view().heartbeat.has_value());
  board.heartbeat_sent(false, "socket closed", "2026-01-01T00:00:01.000Z");
  ASSERT_TRUE(board.view().heartbeat.has_value());
  EXPECT_FALSE(board.view().heartbeat->ok);
  EXPECT_FALSE(board.view().stopping);
  board.begin_stopping();
  EXPECT_TRUE(board.view().stopping);
}

}  // namespace
}  // namespace sw::worker
