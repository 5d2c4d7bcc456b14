/* tcp_socket.h - the socket plumbing that the TCP store (tcp_store.cpp) and the TCP comms (comm_tcp.cpp)
   share: deadlines, listening on every interface, connecting with retries, whole sends and bounded receives.
   Internal to the runtime. Every failure is a Status naming `what`; no call waits past its deadline. */
#pragma once

#include "atp/status.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace atp {
namespace tcp {

using Clock = std::chrono::steady_clock;

/// A point in time past which a wait fails; none for seconds <= 0 (ATP_COMM_TIMEOUT_S=0: wait forever).
struct Deadline {
  explicit Deadline(double seconds)
      : none(seconds <= 0), at(Clock::now() + std::chrono::milliseconds(std::int64_t(seconds * 1000))) {}
  bool passed() const { return !none && Clock::now() >= at; }
  /// What one poll() may wait: at most a second, so that a passed deadline is noticed.
  int poll_ms() const;
  bool none;
  Clock::time_point at;
};

/// strerror(errno).
std::string errno_text();

/// A socket listening on every interface (IPv6 dual-stack where the host has it, else IPv4) at `port` (0: one
/// the system picks); *bound is the port it got.
Result<int> listen_any(int port, int *bound);

/// A connection to host:port (a name or a numeric address), retrying until the deadline (the peer may start
/// later), with TCP_NODELAY. The error names host:port and the last reason.
Result<int> connect_to(const std::string &host, int port, const Deadline &deadline, const std::string &what);

/// Sends all n bytes (blocking socket; a non-blocking one is not meant here).
Status send_all(int fd, const void *data, std::size_t n, const std::string &what);

/// Receives exactly n bytes before the deadline (blocking or non-blocking socket). Errors: "timed out waiting
/// for <what>", "the connection was closed while waiting for <what>", or the recv failure.
Status recv_exact(int fd, void *out, std::size_t n, const Deadline &deadline, const std::string &what);

} // namespace tcp
} // namespace atp
