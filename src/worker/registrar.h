#pragma once
// Registration with operator approval (reference-worker.md §3.1, §2.1–§2.2):
//
//   pristine ──register-request──► pending(requestId, since) ──poll──► approved
//       ▲                              │ 404: the studio forgot it        │ credentials saved
//       └──────────────────────────────┘                                  ▼ (the session starts)
//                                      └──poll──► rejected(reason): kept; the daemon exits 10
//
// The install id and the 256-bit secret are saved before any HTTP; only the secret's sha256
// leaves the machine with the request; the raw secret authenticates the polls. Each poll asks the
// studio to hold it until the operator decides (`?waitMs=`, RuntimeTimings::registration_wait;
// studio-server does), and polls start at least RuntimeTimings::registration_poll (1 s) apart, so
// an approval arrives within about a second either way (ours, issue 17; the reference polls every
// 30 s). Transport errors and non-404 failures keep the state and retry, backing off. A rejection
// is kept in the state file (`registration_rejected`) and ends run(): the daemon exits 10 and says
// how to reset (issue 17; the reference keeps serving locally, §3.1). A worker given a join token
// (issue 22) sends it with the request; studio-server answers "approved" and the poll that follows
// at once collects the credentials; a refused token (403 join_token_refused) ends run() like a
// rejection. stop() also cancels the
// request or held poll in flight (ours): a stopping daemon does not wait out registration_wait.
// Loop-thread only.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string_view>

#include "worker/runtime.h"
#include "worker/status.h"

namespace sw::worker {

class Registrar {
 public:
  // `status`: the registration's part of the live status changes only here.
  Registrar(Runtime& runtime, StatusBoard& status);
  ~Registrar();
  // Returns once the worker has credentials, was rejected (RegistrationPhase::Rejected), or
  // when stopped.
  boost::asio::awaitable<void> run();
  void stop();
  // After a registration reset (local API): start over now. Returns false when run() had
  // already returned (the worker was approved): the caller runs it again.
  bool restart();

 private:
  // One request or poll; false when the studio could not be reached or refused it.
  boost::asio::awaitable<bool> tick();
  Runtime& runtime_;
  StatusBoard& status_;
  struct Wake;
  std::unique_ptr<Wake> wake_;
  bool stopped_ = false;
  // Set by stop(): ends the register-request or held poll in flight on the pool at once.
  std::shared_ptr<std::atomic<bool>> calls_cancelled_ = std::make_shared<std::atomic<bool>>(false);
  bool running_ = false;  // run() is active
  bool poll_now_ = false;  // a join token approved the request just made: poll without waiting
};

// A refused join token is kept as a rejection whose reason starts with this (issue 22).
inline constexpr std::string_view kJoinTokenRefusedPrefix = "join token refused: ";

// The guidance printed when the studio rejected this worker, or refused its join token (tests pin
// the wording).
std::string rejection_guidance(const std::string& reason);

}  // namespace sw::worker
