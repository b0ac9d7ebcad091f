#include "worker/status.h"

namespace sw::worker {

std::string_view to_string(SessionPhase phase) {
  switch (phase) {
    case SessionPhase::Stopped: return "stopped";
    case SessionPhase::WaitingForApproval: return "waiting_for_approval";
    case SessionPhase::Connecting: return "connecting";
    case SessionPhase::Connected: return "connected";
    case SessionPhase::Reconnecting: return "reconnecting";
    case SessionPhase::AuthFailed: return "auth_failed";
    case SessionPhase::Fatal: return "fatal";
  }
  return "stopped";
}

std::string_view to_string(RegistrationPhase phase) {
  switch (phase) {
    case RegistrationPhase::Pristine: return "pristine";
    case RegistrationPhase::Pending: return "pending";
    case RegistrationPhase::Approved: return "approved";
    case RegistrationPhase::Rejected: return "rejected";
  }
  return "pristine";
}

}  // namespace sw::worker
