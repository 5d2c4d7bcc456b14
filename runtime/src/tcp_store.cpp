/* tcp_store.cpp - the key-value store over TCP of tcp_store.h.

   The server is one thread with poll() over the listening socket and its clients: it reads whole requests,
   answers sets at once and parks gets until their key is set. Clients are blocking sockets with a receive
   timeout per wait, so a dead server turns into an error Status instead of a hang. */
#include "atp/tcp_store.h"

#include "tcp_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace atp {

namespace {

constexpr std::uint32_t kMaxLength = 1u << 20;

void put_u32(std::string &out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(char((v >> (8 * i)) & 0xff));
}
std::uint32_t get_u32(const char *p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= std::uint32_t(std::uint8_t(p[i])) << (8 * i);
  return v;
}

/// The whole string, on a blocking socket.
Status send_all(int fd, const std::string &bytes) { return tcp::send_all(fd, bytes.data(), bytes.size(), "tcp store"); }

// ---------------------------------------------------------------------------------------------------------
// server

class Server {
public:
  ~Server() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
    for (auto &c : clients_)
      ::close(c.fd);
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
  }

  Status start(int port) {
    Result<int> fd = tcp::listen_any(port, &port_);
    if (!fd.ok())
      return fd.status().with_context("tcp store");
    listen_fd_ = *fd;
    thread_ = std::thread([this] { loop(); });
    return {};
  }
  int port() const { return port_; }

private:
  struct Client {
    int fd;
    std::string in;
    std::vector<std::string> waiting; // keys of parked gets, in request order
  };

  void loop() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto &c : clients_)
        fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 100) <= 0)
        continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) {
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          clients_.push_back({fd, {}, {}});
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
          serve(clients_[i - 1]);
      answer_waiting();
      for (std::size_t i = clients_.size(); i-- > 0;)
        if (clients_[i].fd < 0)
          clients_.erase(clients_.begin() + long(i));
    }
  }

  void drop(Client &c) {
    ::close(c.fd);
    c.fd = -1;
  }

  void serve(Client &c) {
    char buf[65536];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) {
      drop(c);
      return;
    }
    c.in.append(buf, std::size_t(n));
    for (;;) { // every complete request in the buffer
      if (c.in.size() < 5)
        return;
      const char op = c.in[0];
      const std::uint32_t klen = get_u32(&c.in[1]);
      if ((op != 'S' && op != 'G') || klen > kMaxLength)
        return drop(c);
      std::size_t need = 5 + klen;
      if (c.in.size() < need)
        return;
      std::string key = c.in.substr(5, klen);
      if (op == 'G') {
        c.waiting.push_back(key);
        c.in.erase(0, need);
        continue;
      }
      if (c.in.size() < need + 4)
        return;
      const std::uint32_t vlen = get_u32(&c.in[need]);
      if (vlen > kMaxLength)
        return drop(c);
      if (c.in.size() < need + 4 + vlen)
        return;
      values_[key] = c.in.substr(need + 4, vlen);
      c.in.erase(0, need + 4 + vlen);
      if (!send_all(c.fd, "K").ok())
        return drop(c);
    }
  }

  void answer_waiting() {
    for (auto &c : clients_) {
      while (c.fd >= 0 && !c.waiting.empty()) {
        auto it = values_.find(c.waiting.front());
        if (it == values_.end())
          break; // answers go out in request order
        std::string reply;
        put_u32(reply, std::uint32_t(it->second.size()));
        reply += it->second;
        if (!send_all(c.fd, reply).ok())
          drop(c);
        else
          c.waiting.erase(c.waiting.begin());
      }
    }
  }

  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<Client> clients_;
  std::map<std::string, std::string> values_;
};

Result<int> connect_to(const std::string &host, int port, double timeout_s) {
  auto fd = tcp::connect_to(host, port, tcp::Deadline(timeout_s), "tcp store");
  if (!fd.ok())
    return error(fd.status().message() + " within " + std::to_string(timeout_s) +
                 " s; is MASTER_ADDR/MASTER_PORT right and rank 0 up?");
  return fd;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// client

struct TcpStore::Impl {
  std::unique_ptr<Server> server;
  std::string where;
  int fd = -1;
  std::mutex mu; // one request at a time on the connection
  ~Impl() {
    if (fd >= 0)
      ::close(fd);
  }
};

TcpStore::TcpStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpStore::~TcpStore() = default;

Result<std::unique_ptr<TcpStore>> TcpStore::connect(const std::string &host, int port, bool serve, double timeout_s) {
  auto impl = std::make_unique<Impl>();
  if (serve) {
    impl->server = std::make_unique<Server>();
    ATP_TRY(impl->server->start(port));
    port = impl->server->port();
  }
  impl->where = host + ":" + std::to_string(port);
  ATP_ASSIGN_OR_RETURN(impl->fd, connect_to(host, port, timeout_s));
  return std::unique_ptr<TcpStore>(new TcpStore(std::move(impl)));
}

int TcpStore::served_port() const { return impl_->server ? impl_->server->port() : 0; }

std::string TcpStore::local_address() const {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  char text[INET6_ADDRSTRLEN] = "";
  if (impl_->fd < 0 || ::getsockname(impl_->fd, reinterpret_cast<sockaddr *>(&a), &len) != 0)
    return "";
  if (a.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(&a)->sin_addr, text, sizeof text);
  else if (a.ss_family == AF_INET6) {
    const in6_addr &v6 = reinterpret_cast<sockaddr_in6 *>(&a)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) // an IPv4 peer on a dual-stack socket: its plain IPv4 form
      ::inet_ntop(AF_INET, &v6.s6_addr[12], text, sizeof text);
    else
      ::inet_ntop(AF_INET6, &v6, text, sizeof text);
  }
  return text;
}

Status TcpStore::set(const std::string &key, const std::string &value) {
  if (key.size() > kMaxLength || value.size() > kMaxLength)
    return error("tcp store: key or value longer than 1 MiB");
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string req = "S";
  put_u32(req, std::uint32_t(key.size()));
  req += key;
  put_u32(req, std::uint32_t(value.size()));
  req += value;
  ATP_TRY(send_all(impl_->fd, req).with_context("set " + quote(key) + " at " + impl_->where));
  char ack = 0;
  ATP_TRY(tcp::recv_exact(impl_->fd, &ack, 1, tcp::Deadline(60), "the reply to set " + quote(key))
              .with_context("tcp store"));
  if (ack != 'K')
    return error("tcp store: bad reply to set " + quote(key) + " from " + impl_->where);
  return {};
}

Result<std::string> TcpStore::get(const std::string &key, double timeout_s) {
  if (key.size() > kMaxLength)
    return error("tcp store: key longer than 1 MiB");
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string req = "G";
  put_u32(req, std::uint32_t(key.size()));
  req += key;
  ATP_TRY(send_all(impl_->fd, req).with_context("get " + quote(key) + " at " + impl_->where));
  const tcp::Deadline deadline(timeout_s);
  const std::string what = quote(key) + " from " + impl_->where + " (" + std::to_string(timeout_s) + " s)";
  char len[4];
  Status s = tcp::recv_exact(impl_->fd, len, 4, deadline, what).with_context("tcp store");
  if (!s.ok()) { // the reply may still come: this connection can no longer be trusted
    ::close(impl_->fd);
    impl_->fd = -1;
    return s;
  }
  std::string value(get_u32(len), '\0');
  ATP_TRY(tcp::recv_exact(impl_->fd, value.data(), value.size(), deadline, what).with_context("tcp store"));
  return value;
}

Result<TcpStore *> tcp_store_for_job(int global_rank, double timeout_s) {
  static std::mutex mu;
  static std::unique_ptr<TcpStore> store; // lives until exit, so that rank 0's server outlives every rendezvous
  std::lock_guard<std::mutex> lock(mu);
  if (store)
    return store.get();
  const char *addr = std::getenv("MASTER_ADDR"), *port = std::getenv("MASTER_PORT");
  if (!addr || !*addr || !port || !*port)
    return error("tcp store: MASTER_ADDR and MASTER_PORT must both be set for the TCP rendezvous");
  char *end = nullptr;
  long p = std::strtol(port, &end, 10);
  if (*end || p < 1 || p > 65535)
    return error(std::string("tcp store: MASTER_PORT '") + port + "' is not a port number");
  ATP_ASSIGN_OR_RETURN(store, TcpStore::connect(addr, int(p), global_rank == 0, timeout_s));
  return store.get();
}

} // namespace atp
