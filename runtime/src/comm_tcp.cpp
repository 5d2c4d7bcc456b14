/* comm_tcp.cpp - the TCP backend of Comm (host buffers): make_tcp_comm, for launches without MPI (torchrun).

   Set-up. Every member of a group listens on an ephemeral port, publishes "address port" in the job's store
   (tcp_store.h; the address is the one through which it reaches the store, so one its peers can reach) under
   atp/tcp/<ranks>#<n>/<group rank>, where n counts this process's earlier comms over the same ranks (the same
   on every member, since members create their groups in the same order). Each member connects to every lower
   group rank and accepts the higher ones; a connection opens with a hello (magic, group key, group rank) that
   the acceptor checks. The group is then a full mesh of its members, and the listener is closed.

   A call. Every rank first sends every peer a header (call, count, dtype, op, root, call number) and checks
   theirs against its own: a peer that called another collective, count, dtype, op or root is an error on both
   sides naming the two calls, not a hang or silent garbage. Then the payload, in chunks:
     all_reduce      every rank sends its chunk to every peer and reduces the n contributions in group-rank
                     order, so every rank computes the same bits whatever the timing; Avg then divides;
     reduce_scatter  the same with each peer's slice only;
     all_gather      every rank sends its chunk to every peer, which stores it in place;
     broadcast       the root sends, the others receive;
     barrier         the headers alone.
   A rank sends (n - 1) x its data: simple and exact, meant for the host side (scalars, agreement,
   consolidated weights, CPU training), not a bandwidth-optimal ring. Headers and payloads travel as raw
   bytes: every rank runs the same binary on hosts of one byte order.

   Failures. Sockets are non-blocking and one poll() loop moves every peer's bytes, so simultaneous sends never
   deadlock. A call that does not complete within comm_timeout_s() fails naming the peers it still waits for; a
   peer that closes its connection (it exited) fails the call naming it. After a failure the comm refuses
   further calls. fail() exits the process, which closes its sockets, so its peers fail in turn. */
#include "atp/comm.h"
#include "atp/tcp_store.h"

#include "tcp_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>

namespace atp {

namespace {

constexpr std::uint32_t kHelloMagic = 0x41545054; // "ATPT"
constexpr std::uint32_t kCallMagic = 0x41545043;  // "ATPC"
/// Bytes received from all peers per chunk: bounds a call's scratch memory whatever the group size.
constexpr std::size_t kScratchBytes = std::size_t(64) << 20;
using tcp::Deadline;
using tcp::errno_text;

enum class Call : std::uint32_t { AllReduce = 1, ReduceScatter, AllGather, Broadcast, Barrier };

const char *call_name(std::uint32_t c) {
  switch (Call(c)) {
  case Call::AllReduce:
    return "all_reduce";
  case Call::ReduceScatter:
    return "reduce_scatter";
  case Call::AllGather:
    return "all_gather";
  case Call::Broadcast:
    return "broadcast";
  case Call::Barrier:
    return "barrier";
  }
  return "an unknown call";
}

/// What a rank says it is calling, sent before every call's payload.
struct Header {
  std::uint32_t magic = kCallMagic;
  std::uint32_t call = 0;
  std::uint64_t seq = 0;   ///< this comm's call number
  std::uint64_t count = 0; ///< the call's count (0 for barrier)
  std::uint32_t dtype = 0, op = 0;
  std::int32_t root = -1; ///< broadcast only
  std::uint32_t pad = 0;
  bool operator==(const Header &o) const {
    return magic == o.magic && call == o.call && seq == o.seq && count == o.count && dtype == o.dtype && op == o.op &&
           root == o.root;
  }
};

std::string describe_header(const Header &h) {
  if (h.magic != kCallMagic)
    return "something that is not a call of this runtime";
  std::string s = call_name(h.call);
  if (Call(h.call) == Call::Barrier)
    return s;
  s += "(" + std::to_string(h.count) + " x " + dtype_name(DType(h.dtype));
  if (Call(h.call) == Call::AllReduce || Call(h.call) == Call::ReduceScatter)
    s += std::string(", ") + reduce_op_name(ReduceOp(h.op));
  if (Call(h.call) == Call::Broadcast)
    s += ", root " + std::to_string(h.root);
  return s + ") as call " + std::to_string(h.seq);
}

/// One call's bytes to and from one peer.
struct Transfer {
  const char *out = nullptr;
  std::size_t out_len = 0, out_done = 0;
  char *in = nullptr;
  std::size_t in_len = 0, in_done = 0;
};

class TcpComm final : public Comm {
public:
  TcpComm(std::vector<int> ranks, int rank, std::vector<int> fds)
      : Comm(std::move(ranks), rank), fds_(std::move(fds)) {}
  ~TcpComm() override {
    for (int fd : fds_)
      if (fd >= 0)
        ::close(fd);
  }
  CommBackend backend() const override { return CommBackend::Tcp; }

  Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) override {
    ATP_TRY(start("all_reduce", send, recv, count, dtype));
    const std::size_t es = dtype_size(dtype);
    const std::string what = describe_call("all_reduce", count, dtype, reduce_op_name(op));
    if (send != recv && comm_detail::overlaps(send, count * es, recv, count * es))
      return error(what + ": send and recv overlap without being the same buffer");
    return guarded(what, Call::AllReduce, count, dtype, int(op), -1, [&] {
      // every rank's result takes this rank's whole buffer
      auto mine_for = [&](int, std::size_t off) { return static_cast<const char *>(send) + off * es; };
      return reduce_chunks(what, count, es, dtype, op, mine_for, static_cast<char *>(recv));
    });
  }

  Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) override {
    ATP_TRY(start("reduce_scatter", send, recv, recv_count, dtype));
    const std::size_t es = dtype_size(dtype), n = std::size_t(size()), rbytes = recv_count * es;
    const std::string what = describe_call("reduce_scatter", recv_count, dtype, reduce_op_name(op));
    const bool in_place = recv == static_cast<const char *>(send) + std::size_t(rank()) * rbytes;
    if (!in_place && comm_detail::overlaps(send, n * rbytes, recv, rbytes))
      return error(what + ": recv overlaps send without being this rank's slice of it");
    return guarded(what, Call::ReduceScatter, recv_count, dtype, int(op), -1, [&] {
      // rank q's result takes slice q of this rank's buffer
      auto mine_for = [&](int q, std::size_t off) {
        return static_cast<const char *>(send) + (std::size_t(q) * recv_count + off) * es;
      };
      return reduce_chunks(what, recv_count, es, dtype, op, mine_for, static_cast<char *>(recv));
    });
  }

  Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) override {
    ATP_TRY(start("all_gather", send, recv, send_count, dtype));
    const std::size_t es = dtype_size(dtype), n = std::size_t(size()), sbytes = send_count * es;
    const std::string what = describe_call("all_gather", send_count, dtype, nullptr);
    char *out = static_cast<char *>(recv);
    const bool in_place = send == out + std::size_t(rank()) * sbytes;
    if (!in_place && comm_detail::overlaps(send, sbytes, recv, n * sbytes))
      return error(what + ": send overlaps recv without being this rank's slice of it");
    return guarded(what, Call::AllGather, send_count, dtype, 0, -1, [&]() -> Status {
      const std::size_t chunk = chunk_elements(es);
      for (std::size_t off = 0; off < send_count; off += chunk) {
        const std::size_t c = std::min(chunk, send_count - off);
        std::vector<Transfer> t(n);
        for (std::size_t p = 0; p < n; ++p) {
          t[p].out = static_cast<const char *>(send) + off * es, t[p].out_len = c * es;
          t[p].in = out + (p * send_count + off) * es, t[p].in_len = c * es;
        }
        ATP_TRY(exchange(t, what));
      }
      if (!in_place && sbytes)
        std::memcpy(out + std::size_t(rank()) * sbytes, send, sbytes);
      return {};
    });
  }

  Status broadcast(void *buf, std::size_t count, DType dtype, int root) override {
    ATP_TRY(start("broadcast", buf, buf, count, dtype));
    const std::string what = describe_call("broadcast", count, dtype, nullptr);
    if (root < 0 || root >= size())
      return error(what + ": root " + std::to_string(root) + " is not a group rank");
    const std::size_t es = dtype_size(dtype), n = std::size_t(size());
    return guarded(what, Call::Broadcast, count, dtype, 0, root, [&]() -> Status {
      const std::size_t chunk = chunk_elements(es);
      for (std::size_t off = 0; off < count; off += chunk) {
        const std::size_t c = std::min(chunk, count - off);
        std::vector<Transfer> t(n);
        char *at = static_cast<char *>(buf) + off * es;
        if (rank() == root) {
          for (std::size_t p = 0; p < n; ++p)
            t[p].out = at, t[p].out_len = c * es;
        } else {
          t[std::size_t(root)].in = at, t[std::size_t(root)].in_len = c * es;
        }
        ATP_TRY(exchange(t, what));
      }
      return {};
    });
  }

  Status barrier() override {
    if (broken_)
      return error(describe_call("barrier", 0, DType::U8, nullptr) + ": an earlier call on this comm failed");
    return guarded(describe_call("barrier", 0, DType::U8, nullptr), Call::Barrier, 0, DType::U8, 0, -1,
                   [] { return Status(); });
  }
  Status synchronize() override {
    return broken_ ? error(describe_call("synchronize", 0, DType::U8, nullptr) + ": an earlier call failed") : Status();
  }
  void abort() override {
    broken_ = true;
    for (int fd : fds_)
      if (fd >= 0)
        ::shutdown(fd, SHUT_RDWR);
  }

private:
  Status start(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const {
    if (broken_)
      return error(describe_call(call, count, dtype, nullptr) + ": an earlier call on this comm failed");
    return check_args(call, send, recv, count, dtype);
  }

  /// Elements of one chunk: the scratch of all peers' contributions stays under kScratchBytes.
  std::size_t chunk_elements(std::size_t es) const {
    const std::size_t peers = std::max<std::size_t>(1, std::size_t(size()) - 1);
    return std::max<std::size_t>(1, kScratchBytes / peers / es);
  }

  /// The header exchange, then `body`; any failure breaks the comm.
  template <class F>
  Status guarded(const std::string &what, Call call, std::size_t count, DType dtype, int op, int root, F &&body) {
    Status s = check_headers(what, call, count, dtype, op, root);
    if (s.ok())
      s = body();
    if (!s.ok())
      broken_ = true;
    return s;
  }

  Status check_headers(const std::string &what, Call call, std::size_t count, DType dtype, int op, int root) {
    Header mine;
    mine.call = std::uint32_t(call), mine.seq = seq_++, mine.count = count;
    mine.dtype = std::uint32_t(dtype), mine.op = std::uint32_t(op), mine.root = root;
    const std::size_t n = std::size_t(size());
    std::vector<Header> theirs(n);
    std::vector<Transfer> t(n);
    for (std::size_t p = 0; p < n; ++p) {
      t[p].out = reinterpret_cast<const char *>(&mine), t[p].out_len = sizeof mine;
      t[p].in = reinterpret_cast<char *>(&theirs[p]), t[p].in_len = sizeof(Header);
    }
    ATP_TRY(exchange(t, what));
    for (std::size_t p = 0; p < n; ++p)
      if (int(p) != rank() && !(theirs[p] == mine))
        return error(what + ": group rank " + peer_name(int(p)) + " called " + describe_header(theirs[p]) +
                     " when this rank called " + describe_header(mine));
    return {};
  }

  /// recv[i] = op over the group ranks q, in group-rank order, of what q holds for this rank's result, chunk
  /// by chunk; mine_for(q, off) points at this rank's elements for rank q's result, from element `off` (sent
  /// to each peer q; its own, mine_for(rank(), off), is read in place). Avg divides at the end.
  template <class MineFor>
  Status reduce_chunks(const std::string &what, std::size_t count, std::size_t es, DType dtype, ReduceOp op,
                       MineFor mine_for, char *recv) {
    const std::size_t n = std::size_t(size()), me = std::size_t(rank()), chunk = chunk_elements(es);
    std::vector<char> scratch(std::min(chunk, std::max<std::size_t>(count, 1)) * es * n), acc;
    for (std::size_t off = 0; off < count; off += chunk) {
      const std::size_t c = std::min(chunk, count - off), bytes = c * es;
      std::vector<Transfer> t(n);
      for (std::size_t p = 0; p < n; ++p) {
        t[p].out = mine_for(int(p), off), t[p].out_len = bytes;
        t[p].in = scratch.data() + p * bytes, t[p].in_len = bytes;
      }
      ATP_TRY(exchange(t, what));
      acc.resize(bytes);
      auto from = [&](std::size_t q) -> const char * {
        return q == me ? mine_for(int(me), off) : scratch.data() + q * bytes;
      };
      std::memcpy(acc.data(), from(0), bytes);
      for (std::size_t q = 1; q < n; ++q)
        comm_detail::reduce_into(acc.data(), from(q), c, dtype, op);
      std::memcpy(recv + off * es, acc.data(), bytes);
    }
    if (op == ReduceOp::Avg)
      comm_detail::divide_for_average(recv, count, dtype, size());
    return {};
  }

  Status exchange(std::vector<Transfer> &t, const std::string &what);
  std::string peer_name(int p) const {
    return std::to_string(p) + " (global rank " + std::to_string(ranks()[std::size_t(p)]) + ")";
  }

  std::vector<int> fds_; // by group rank; -1 for this rank
  std::uint64_t seq_ = 0;
  bool broken_ = false;
};

Status TcpComm::exchange(std::vector<Transfer> &t, const std::string &what) {
  const Deadline deadline(comm_timeout_s());
  const int me = rank();
  std::vector<pollfd> pfds;
  std::vector<int> who;
  for (;;) {
    pfds.clear(), who.clear();
    for (int p = 0; p < size(); ++p) {
      if (p == me)
        continue;
      const Transfer &x = t[std::size_t(p)];
      const short events = short((x.out_done < x.out_len ? POLLOUT : 0) | (x.in_done < x.in_len ? POLLIN : 0));
      if (events) {
        pfds.push_back({fds_[std::size_t(p)], events, 0});
        who.push_back(p);
      }
    }
    if (pfds.empty())
      return {};
    if (deadline.passed()) {
      std::string waiting;
      for (int p : who)
        waiting += (waiting.empty() ? "" : ", ") + peer_name(p);
      return error(what + ": did not complete within " + std::to_string(int(comm_timeout_s())) +
                   " s (ATP_COMM_TIMEOUT_S); still waiting for group rank " + waiting);
    }
    const int r = ::poll(pfds.data(), pfds.size(), deadline.poll_ms());
    if (r < 0 && errno != EINTR)
      return error(what + ": poll failed: " + errno_text());
    if (r <= 0)
      continue;
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      Transfer &x = t[std::size_t(who[i])];
      const short ev = pfds[i].revents;
      const std::string closed = what + ": group rank " + peer_name(who[i]) + " closed its connection (it exited?)";
      if (ev & POLLNVAL)
        return error(what + ": the connection to group rank " + peer_name(who[i]) + " is not open");
      if (ev & (POLLIN | POLLHUP | POLLERR)) {
        if (x.in_done < x.in_len) {
          const ssize_t got = ::recv(pfds[i].fd, x.in + x.in_done, x.in_len - x.in_done, 0);
          if (got == 0)
            return error(closed);
          if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return error(closed + ": " + errno_text());
          if (got > 0)
            x.in_done += std::size_t(got);
        } else if (ev & (POLLHUP | POLLERR)) {
          return error(closed);
        }
      }
      if ((ev & POLLOUT) && x.out_done < x.out_len) {
        const ssize_t put = ::send(pfds[i].fd, x.out + x.out_done, x.out_len - x.out_done, MSG_NOSIGNAL);
        if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return error(closed + ": " + errno_text());
        if (put > 0)
          x.out_done += std::size_t(put);
      }
    }
  }
}

std::string join_ranks(const std::vector<int> &ranks) {
  std::string s;
  for (int r : ranks)
    s += (s.empty() ? "" : ",") + std::to_string(r);
  return s;
}

/// This process's count of earlier comms over the same ranks.
int next_instance(const std::string &ranks) {
  static std::mutex mu;
  static std::map<std::string, int> made;
  std::lock_guard<std::mutex> lock(mu);
  return made[ranks]++;
}

struct Hello {
  std::uint32_t magic = kHelloMagic;
  std::int32_t group_rank = -1;
  std::uint64_t key_hash = 0;
};

std::uint64_t hash_key(const std::string &key) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : key)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

} // namespace

Result<std::unique_ptr<Comm>> make_tcp_comm(const std::vector<int> &ranks) {
  int me = -1, world_size = 0;
  ATP_TRY(comm_detail::global_rank_and_size(&me, &world_size));
  ATP_TRY(comm_detail::check_group("make_tcp_comm", ranks, me, world_size));
  const int rank = int(std::find(ranks.begin(), ranks.end(), me) - ranks.begin()), n = int(ranks.size());
  const std::string key = "atp/tcp/" + join_ranks(ranks) + "#" + std::to_string(next_instance(join_ranks(ranks)));
  const std::string what = "make_tcp_comm: group " + comm_detail::group_string(ranks) + " (group rank " +
                           std::to_string(rank) + "/" + std::to_string(n) + ")";
  std::vector<int> fds(std::size_t(n), -1);
  if (n == 1)
    return std::unique_ptr<Comm>(new TcpComm(ranks, rank, std::move(fds)));
  const Deadline deadline(comm_timeout_s());
  const double store_wait_s = comm_timeout_s() > 0 ? comm_timeout_s() : 1e9; // the store's waits are finite
  Result<TcpStore *> job_store = tcp_store_for_job(me, store_wait_s);
  if (!job_store.ok())
    return job_store.status().with_context(what);
  TcpStore *store = *job_store;
  auto fail_closing = [&](Status s, int listener) -> Status {
    for (int &fd : fds)
      if (fd >= 0)
        ::close(fd), fd = -1;
    if (listener >= 0)
      ::close(listener);
    return s.with_context(what);
  };
  int port = 0;
  ATP_ASSIGN_OR_RETURN(const int listener, tcp::listen_any(0, &port));
  const std::string address = store->local_address();
  if (address.empty())
    return fail_closing(error("cannot tell this host's address on its connection to the store"), listener);
  if (Status s = store->set(key + "/" + std::to_string(rank), address + " " + std::to_string(port)); !s.ok())
    return fail_closing(s, listener);
  const std::uint64_t key_hash = hash_key(key);
  for (int p = 0; p < rank; ++p) { // connect to every lower group rank
    auto where = store->get(key + "/" + std::to_string(p), store_wait_s);
    if (!where.ok())
      return fail_closing(where.status(), listener);
    const std::size_t space = where->find(' ');
    const std::string peer = "group rank " + std::to_string(p) + " (global rank " + std::to_string(ranks[p]) + ")";
    auto fd = tcp::connect_to(where->substr(0, space), std::atoi(where->c_str() + space + 1), deadline,
                              "connecting to " + peer);
    if (!fd.ok())
      return fail_closing(fd.status(), listener);
    fds[std::size_t(p)] = *fd;
    Hello hello;
    hello.group_rank = rank, hello.key_hash = key_hash;
    if (Status s = tcp::send_all(*fd, &hello, sizeof hello, "greeting " + peer); !s.ok())
      return fail_closing(s, listener);
  }
  for (int accepted = 0; accepted < n - 1 - rank;) { // and accept every higher one
    if (deadline.passed())
      return fail_closing(error("timed out waiting for " + std::to_string(n - 1 - rank - accepted) +
                                " higher group ranks to connect (ATP_COMM_TIMEOUT_S)"),
                          listener);
    pollfd pf{listener, POLLIN, 0};
    if (::poll(&pf, 1, deadline.poll_ms()) <= 0)
      continue;
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0)
      continue;
    Hello hello;
    Status s = tcp::recv_exact(fd, &hello, sizeof hello, deadline, "a peer's greeting");
    if (!s.ok() || hello.magic != kHelloMagic || hello.key_hash != key_hash || hello.group_rank <= rank ||
        hello.group_rank >= n || fds[std::size_t(hello.group_rank)] >= 0) {
      ::close(fd); // not one of this group's peers (or a broken one): ignore it
      continue;
    }
    fds[std::size_t(hello.group_rank)] = fd;
    ++accepted;
  }
  ::close(listener);
  for (int fd : fds)
    if (fd >= 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  return std::unique_ptr<Comm>(new TcpComm(ranks, rank, std::move(fds)));
}

} // namespace atp
