/* tcp_socket.cpp - the shared socket plumbing of tcp_socket.h. */
#include "tcp_socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace atp {
namespace tcp {

int Deadline::poll_ms() const {
  if (none)
    return 1000;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
  return int(std::clamp<std::int64_t>(left, 0, 1000));
}

std::string errno_text() { return std::strerror(errno); }

Result<int> listen_any(int port, int *bound) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  const bool v6 = fd >= 0;
  if (!v6)
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return error("cannot create a socket: " + errno_text());
  int one = 1, zero = 0, rc;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (v6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero); // IPv4 peers too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(std::uint16_t(port));
    rc = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(std::uint16_t(port));
    rc = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(fd, 512) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    return error("cannot listen on port " + std::to_string(port) + ": " + why);
  }
  sockaddr_storage got{};
  socklen_t len = sizeof got;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&got), &len);
  *bound = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&got)->sin6_port
                                           : reinterpret_cast<sockaddr_in *>(&got)->sin_port);
  return fd;
}

Result<int> connect_to(const std::string &host, int port, const Deadline &deadline, const std::string &what) {
  std::string last = "no address";
  do {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
      last = std::string("cannot resolve: ") + gai_strerror(rc);
    } else {
      for (addrinfo *a = res; a; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
          continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          ::freeaddrinfo(res);
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          return fd;
        }
        last = errno_text();
        ::close(fd);
      }
      ::freeaddrinfo(res);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (!deadline.passed());
  return error(what + ": cannot connect to " + host + ":" + std::to_string(port) + " (" + last + ")");
}

Status send_all(int fd, const void *data, std::size_t n, const std::string &what) {
  const auto *p = static_cast<const char *>(data);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t put = ::send(fd, p + done, n - done, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR)
      continue;
    if (put <= 0)
      return error(what + ": send failed: " + errno_text());
    done += std::size_t(put);
  }
  return {};
}

Status recv_exact(int fd, void *out, std::size_t n, const Deadline &deadline, const std::string &what) {
  auto *p = static_cast<char *>(out);
  std::size_t done = 0;
  while (done < n) {
    if (deadline.passed())
      return error("timed out waiting for " + what);
    pollfd pf{fd, POLLIN, 0};
    const int r = ::poll(&pf, 1, deadline.poll_ms());
    if (r < 0 && errno != EINTR)
      return error("poll failed while waiting for " + what + ": " + errno_text());
    if (r <= 0)
      continue;
    const ssize_t got = ::recv(fd, p + done, n - done, 0);
    if (got == 0)
      return error("the connection was closed while waiting for " + what);
    if (got < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return error("recv failed while waiting for " + what + ": " + errno_text());
    if (got > 0)
      done += std::size_t(got);
  }
  return {};
}

} // namespace tcp
} // namespace atp
