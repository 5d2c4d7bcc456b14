/* tcp_store.h - a small key-value store over TCP, for bootstraps where there is no MPI.

   torchrun's convention: the process of global rank 0 serves the store at MASTER_ADDR:MASTER_PORT and every
   process, rank 0 included, is a client. The NCCL backend uses it to hand each group's unique id from the
   group's rank 0 to the others (Bootstrap::Tcp). One store per process (tcp_store_for_job), kept alive until
   exit, so that the server outlives every rendezvous it serves.

   Protocol (one TCP connection per client, requests answered in order):
     set: 'S' u32 key_len key u32 value_len value   -> 'K'
     get: 'G' u32 key_len key                        -> u32 value_len value   (sent once the key is set)
   Lengths are little-endian, keys and values at most 1 MiB. Every wait is bounded: a get that is not answered
   within its timeout fails with a Status naming the key, the server and the timeout, never a hang. */
#pragma once

#include "atp/status.h"

#include <memory>
#include <string>

namespace atp {

class TcpStore {
public:
  /// Connects to host:port, retrying until timeout_s (the server may start later). With `serve`, this
  /// process first starts the server on `port` (all interfaces), on a thread of its own.
  static Result<std::unique_ptr<TcpStore>> connect(const std::string &host, int port, bool serve, double timeout_s);
  ~TcpStore();
  TcpStore(const TcpStore &) = delete;
  TcpStore &operator=(const TcpStore &) = delete;

  /// Publishes key = value (a later set of the same key replaces it).
  Status set(const std::string &key, const std::string &value);
  /// The value of key, waiting until some process has set it, at most timeout_s seconds.
  Result<std::string> get(const std::string &key, double timeout_s);

  /// The port the server listens on (with serve and port 0, the one the system chose); 0 for a pure client.
  int served_port() const;
  /// This end's numeric address on the connection to the server ("10.0.0.7", "::1"): the interface through
  /// which this host reaches the job, so the one where its peers can reach it too.
  std::string local_address() const;

  struct Impl;

private:
  explicit TcpStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The process's store for this job, from MASTER_ADDR / MASTER_PORT (and RANK or the MPI rank: rank 0
/// serves). Created on first use and kept until the process exits. Fails when MASTER_ADDR or MASTER_PORT is
/// not set.
Result<TcpStore *> tcp_store_for_job(int global_rank, double timeout_s);

} // namespace atp
