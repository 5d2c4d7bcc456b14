/* comm_nccl.cpp - the NCCL backend of Comm (device buffers), built only with AUTOTPC_ENABLE_CUDA.

   Init. Group rank 0 makes the NCCL unique id and hands it to the others over MPI (MPI_Bcast in an MPI comm
   of the same group) or, without MPI, over a file rendezvous: it writes the id to a temporary name in
   ATP_RENDEZVOUS_DIR and renames it (atomic), the others poll for the file until the timeout. The comm is made
   with ncclCommInitRankConfig in non-blocking mode and polled, so a peer that never joins gives an error
   after the timeout instead of a hang. Where there is neither MPI nor a shared directory (torchrun), the id goes
   through the TCP store that global rank 0 serves at MASTER_ADDR:MASTER_PORT (tcp_store.h).

   Calls. Each collective is enqueued on the comm's stream (a non-blocking comm may answer ncclInProgress: it
   is polled until enqueued), then an event is recorded after it and handed to the watchdog.

   Watchdog. One thread per comm polls the events of the calls in flight and ncclCommGetAsyncError. A call
   still in flight after comm_timeout_s() seconds (counted from its enqueue, so long kernels queued before it
   count too), or an asynchronous error, aborts the comm: ncclCommAbort makes its kernels return, so a stream
   (or a cudaStreamSynchronize anywhere) that waits on them is released; a line naming the rank, host, group
   and call goes to stderr, and every later call returns that error. fail() aborts every live comm through
   an abort hook before the process exits. */
#include "atp/check_cuda.h"
#include "atp/comm.h"
#include "atp/tcp_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace atp {

namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return ncclFloat32;
  case DType::BF16:
    return ncclBfloat16;
  case DType::F16:
    return ncclFloat16;
  case DType::F64:
    return ncclFloat64;
  case DType::I32:
    return ncclInt32;
  case DType::U32:
    return ncclUint32;
  case DType::I64:
    return ncclInt64;
  case DType::U64:
    return ncclUint64;
  case DType::I8:
    return ncclInt8;
  default:
    return ncclUint8; // U8 (check_args refused the rest)
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
  case ReduceOp::Max:
    return ncclMax;
  case ReduceOp::Min:
    return ncclMin;
  case ReduceOp::Avg:
    return ncclAvg;
  default:
    return ncclSum;
  }
}

Clock::time_point deadline_after(double seconds) {
  if (seconds <= 0)
    return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

/// Polls a non-blocking comm until it leaves ncclInProgress; the final state, or ncclInProgress on timeout.
ncclResult_t wait_ready(ncclComm_t comm, Clock::time_point deadline) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess)
      return r;
    if (state != ncclInProgress || Clock::now() >= deadline)
      return state;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// ---------------------------------------------------------------------------------------------------------
// NcclComm

class NcclComm final : public Comm {
public:
  NcclComm(std::vector<int> ranks, int rank, ncclComm_t comm, int device, cudaStream_t stream, bool own_stream,
           int *scratch, std::string label)
      : Comm(std::move(ranks), rank), comm_(comm), device_(device), stream_(stream), own_stream_(own_stream),
        scratch_(scratch), label_(std::move(label)), timeout_s_(comm_timeout_s()) {
    watchdog_ = std::thread([this] { watchdog_loop(); });
  }
  ~NcclComm() override;
  CommBackend backend() const override { return CommBackend::Nccl; }
  cudaStream_t stream() const { return stream_; }

  Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) override {
    ATP_TRY(check_args("all_reduce", send, recv, count, dtype));
    std::string what = describe("all_reduce", count, dtype, reduce_op_name(op));
    std::size_t bytes = count * dtype_size(dtype);
    if (send != recv && comm_detail::overlaps(send, bytes, recv, bytes))
      return error(what + ": send and recv overlap without being the same buffer");
    return enqueue(what, "ncclAllReduce",
                   [&] { return ncclAllReduce(send, recv, count, nccl_type(dtype), nccl_op(op), comm_, stream_); });
  }
  Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) override {
    ATP_TRY(check_args("reduce_scatter", send, recv, recv_count, dtype));
    std::string what = describe("reduce_scatter", recv_count, dtype, reduce_op_name(op));
    std::size_t bytes = recv_count * dtype_size(dtype);
    if (recv != static_cast<const char *>(send) + rank() * bytes &&
        comm_detail::overlaps(send, size() * bytes, recv, bytes))
      return error(what + ": recv overlaps send without being this rank's slice of it");
    return enqueue(what, "ncclReduceScatter", [&] {
      return ncclReduceScatter(send, recv, recv_count, nccl_type(dtype), nccl_op(op), comm_, stream_);
    });
  }
  Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) override {
    ATP_TRY(check_args("all_gather", send, recv, send_count, dtype));
    std::string what = describe("all_gather", send_count, dtype);
    std::size_t bytes = send_count * dtype_size(dtype);
    if (send != static_cast<const char *>(recv) + rank() * bytes &&
        comm_detail::overlaps(send, bytes, recv, size() * bytes))
      return error(what + ": send overlaps recv without being this rank's slice of it");
    return enqueue(what, "ncclAllGather",
                   [&] { return ncclAllGather(send, recv, send_count, nccl_type(dtype), comm_, stream_); });
  }
  Status broadcast(void *buf, std::size_t count, DType dtype, int root) override {
    ATP_TRY(check_args("broadcast", buf, buf, count, dtype));
    std::string what = describe("broadcast", count, dtype);
    if (root < 0 || root >= size())
      return error(what + ": root " + std::to_string(root) + " is not a group rank");
    return enqueue(what, "ncclBroadcast",
                   [&] { return ncclBroadcast(buf, buf, count, nccl_type(dtype), root, comm_, stream_); });
  }
  /// NCCL has no barrier: a one-element all-reduce, waited for.
  Status barrier() override {
    ATP_TRY(enqueue(describe("barrier"), "ncclAllReduce",
                    [&] { return ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_); }));
    return synchronize();
  }
  Status synchronize() override;
  void abort() override {
    std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
    // From an abort hook the watchdog may hold the lock for a moment; never wait long.
    bool locked = lock.try_lock_for(std::chrono::seconds(2));
    (void)abort_comm("comm on group " + comm_detail::group_string(ranks()) + " aborted (abort() or fail())", locked);
  }

private:
  struct Pending {
    cudaEvent_t event;
    std::string what;
    Clock::time_point start;
  };

  std::string describe(const char *call, std::size_t count = 0, DType dtype = DType::U8,
                       const char *op = nullptr) const {
    return describe_call(call, count, dtype, op, ", device " + std::to_string(device_));
  }

  template <class F> Status enqueue(const std::string &what, const char *nccl_call, F &&call) {
    std::lock_guard<std::timed_mutex> lock(mu_);
    if (failed_)
      return sticky();
    ncclResult_t r = call();
    if (r == ncclInProgress)
      r = wait_ready(comm_, deadline_after(timeout_s_));
    if (r == ncclInProgress)
      return abort_comm(what + ": " + nccl_call + " was not enqueued within " + seconds_text(timeout_s_), true);
    if (r != ncclSuccess)
      return abort_comm(what + ": " + nccl_call + " failed: " + nccl_error_detail(r, comm_), true);
    cudaEvent_t event = nullptr;
    if (!free_events_.empty()) {
      event = free_events_.back();
      free_events_.pop_back();
    } else if (cudaError_t e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming); e != cudaSuccess) {
      return abort_comm(what + ": cudaEventCreateWithFlags failed: " + cuda_error_detail(e), true);
    }
    if (cudaError_t e = cudaEventRecord(event, stream_); e != cudaSuccess) {
      cudaEventDestroy(event);
      return abort_comm(what + ": cudaEventRecord failed: " + cuda_error_detail(e), true);
    }
    pending_.push_back(Pending{event, what + ", in " + nccl_call, Clock::now()});
    cv_.notify_all();
    return {};
  }

  /// Aborts the comm once (the first reason wins), prints the reason, and returns the sticky error. Without
  /// the lock (an abort hook that could not get it) it only marks the comm failed and aborts it.
  Status abort_comm(const std::string &why, bool locked) {
    if (failed_.exchange(true))
      return locked ? sticky() : error(why);
    if (locked)
      error_ = error(why);
    std::fprintf(stderr, "atp: error: %s: %s; aborting the NCCL communicator\n", label_.c_str(), why.c_str());
    std::fflush(stderr);
    if (!aborted_.exchange(true))
      ncclCommAbort(comm_); // its kernels return: nothing waits on them forever
    return locked ? sticky() : error(why);
  }
  /// The error that failed the comm (call with the lock held).
  Status sticky() const { return error_.ok() ? error(describe("comm") + ": the communicator was aborted") : error_; }

  void watchdog_loop();

  std::timed_mutex mu_;
  std::condition_variable_any cv_;
  ncclComm_t comm_;
  int device_;
  cudaStream_t stream_;
  bool own_stream_;
  int *scratch_;
  std::string label_;
  double timeout_s_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  std::atomic<bool> failed_{false}, aborted_{false}; // failed_: calls return sticky(); aborted_: ncclCommAbort done
  bool stop_ = false;
  Status error_;
  std::thread watchdog_;
};

void NcclComm::watchdog_loop() {
  cudaSetDevice(device_);
  std::unique_lock<std::timed_mutex> lock(mu_);
  while (!stop_) {
    if (pending_.empty() || failed_) {
      cv_.wait(lock);
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (stop_ || failed_)
      continue;
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      (void)abort_comm(
          pending_.front().what + ": NCCL reported an asynchronous error: " + nccl_error_detail(async, comm_), true);
      continue;
    }
    while (!pending_.empty()) {
      cudaError_t e = cudaEventQuery(pending_.front().event);
      if (e == cudaErrorNotReady)
        break;
      if (e != cudaSuccess) {
        (void)abort_comm(pending_.front().what + ": " + cuda_error_detail(e), true);
        break;
      }
      free_events_.push_back(pending_.front().event);
      pending_.pop_front();
    }
    if (!failed_ && !pending_.empty() && timeout_s_ > 0 &&
        Clock::now() - pending_.front().start > std::chrono::duration<double>(timeout_s_))
      (void)abort_comm(pending_.front().what + " did not complete within " + seconds_text(timeout_s_) +
                           " (ATP_COMM_TIMEOUT_S): a peer is dead, hung, or called a different collective",
                       true);
  }
}

Status NcclComm::synchronize() {
  {
    std::lock_guard<std::timed_mutex> lock(mu_);
    if (failed_)
      return sticky();
  }
  // Returns once the stream's work is done, or once the watchdog's abort made the NCCL kernels return.
  cudaError_t e = cudaStreamSynchronize(stream_);
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (failed_)
    return sticky();
  if (e != cudaSuccess)
    return abort_comm(describe("synchronize") + ": cudaStreamSynchronize failed: " + cuda_error_detail(e), true);
  ncclResult_t async = ncclSuccess;
  ncclCommGetAsyncError(comm_, &async);
  if (async != ncclSuccess && async != ncclInProgress)
    return abort_comm(
        describe("synchronize") + ": NCCL reported an asynchronous error: " + nccl_error_detail(async, comm_), true);
  for (Pending &p : pending_)
    free_events_.push_back(p.event);
  pending_.clear();
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// every live comm, for fail()'s abort hook

std::mutex g_live_mu;
std::set<NcclComm *> *g_live = new std::set<NcclComm *>; // never destroyed: hooks may run during exit

void register_live(NcclComm *c) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  static bool hooked = false;
  if (!hooked) {
    add_abort_hook([] {
      std::unique_lock<std::mutex> lock(g_live_mu, std::try_to_lock);
      if (lock.owns_lock())
        for (NcclComm *comm : *g_live)
          comm->abort();
    });
    hooked = true;
  }
  g_live->insert(c);
}

void unregister_live(NcclComm *c) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live->erase(c);
}

NcclComm::~NcclComm() {
  unregister_live(this);
  {
    std::lock_guard<std::timed_mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  watchdog_.join();
  cudaSetDevice(device_);
  if (!failed_ && !aborted_) {
    // Flush what is in flight, under the timeout; abort instead if it does not finish.
    ncclResult_t r = ncclCommFinalize(comm_);
    if (r == ncclInProgress || r == ncclSuccess)
      r = wait_ready(comm_, deadline_after(timeout_s_));
    if (r == ncclSuccess)
      ncclCommDestroy(comm_);
    else
      ncclCommAbort(comm_);
  }
  for (Pending &p : pending_)
    cudaEventDestroy(p.event);
  for (cudaEvent_t e : free_events_)
    cudaEventDestroy(e);
  cudaFree(scratch_);
  if (own_stream_)
    cudaStreamDestroy(stream_);
}

// ---------------------------------------------------------------------------------------------------------
// bootstrap: the unique id from group rank 0 to the others

std::string env_or(const char *name, const std::string &fallback) {
  const char *v = std::getenv(name);
  return v && *v ? v : fallback;
}

/// A name for the rendezvous file that is the same on every member and differs between groups, between
/// successive comms over the same group, and (through the run id) between jobs.
std::string rendezvous_name(const std::vector<int> &ranks, const std::string &run_id) {
  static std::mutex mu;
  static std::map<std::vector<int>, int> made;
  int seq;
  {
    std::lock_guard<std::mutex> lock(mu);
    seq = made[ranks]++;
  }
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (int r : ranks)
    h = (h ^ static_cast<std::uint32_t>(r)) * 1099511628211ull;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return "atp-nccl-id." + run_id + ".g" + std::to_string(ranks.front()) + "n" + std::to_string(ranks.size()) + "." +
         buf + "." + std::to_string(seq);
}

Status file_write_id(const std::string &dir, const std::string &path, const ncclUniqueId &id) {
  ::mkdir(dir.c_str(), 0700); // the others poll for the file, so the directory may be made here
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return error("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, &id, sizeof id) == static_cast<ssize_t>(sizeof id) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return error("cannot write " + path + ": " + why);
  }
  return {};
}

Status file_read_id(const std::string &path, ncclUniqueId *id, double timeout_s, int root_global_rank) {
  Clock::time_point deadline = deadline_after(timeout_s);
  for (;;) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd >= 0) {
      ssize_t n = ::read(fd, id, sizeof *id);
      ::close(fd);
      if (n == static_cast<ssize_t>(sizeof *id))
        return {};
      return error(path + " holds " + std::to_string(n) + " bytes, not an NCCL unique id of " +
                   std::to_string(sizeof *id));
    }
    if (errno != ENOENT)
      return error("cannot read " + path + ": " + std::strerror(errno));
    if (Clock::now() >= deadline)
      return error("waited " + seconds_text(timeout_s) + " for " + path + ", which global rank " +
                   std::to_string(root_global_rank) + " writes (ATP_COMM_TIMEOUT_S)");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// make_nccl_comm

Result<std::unique_ptr<Comm>> make_nccl_comm(const std::vector<int> &ranks, const NcclCommOptions &options) {
  Bootstrap boot = options.bootstrap;
  if (boot == Bootstrap::Mpi)
    ATP_TRY(mpi_init());
  int global_rank = -1, world_size = 0;
  ATP_TRY(comm_detail::global_rank_and_size(&global_rank, &world_size));
  if (options.global_rank >= 0)
    global_rank = options.global_rank;
  set_process_identity(global_rank, world_size); // for fail()'s messages, also without MPI
  std::string label = process_label();
  std::string what = "make_nccl_comm on group " + comm_detail::group_string(ranks);
  ATP_TRY(comm_detail::check_group("make_nccl_comm", ranks, global_rank, world_size));
  int group_rank = static_cast<int>(std::find(ranks.begin(), ranks.end(), global_rank) - ranks.begin());
  int n = static_cast<int>(ranks.size());
  double timeout_s = comm_timeout_s();

  int device = options.device;
  if (device >= 0)
    ATP_CUDA_TRY(cudaSetDevice(device));
  else
    ATP_CUDA_TRY(cudaGetDevice(&device));

  // The unique id, from group rank 0.
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (group_rank == 0)
    ATP_NCCL_TRY(ncclGetUniqueId(&id));
  std::string rendezvous_dir =
      options.rendezvous_dir.empty() ? env_or("ATP_RENDEZVOUS_DIR", "") : options.rendezvous_dir;
  if (boot == Bootstrap::Auto)
    boot = mpi_active()                 ? Bootstrap::Mpi
           : !rendezvous_dir.empty()      ? Bootstrap::File
           : std::getenv("MASTER_ADDR") ? Bootstrap::Tcp
                                          : Bootstrap::Auto;
  std::string id_file;
  if (n > 1) {
    if (boot == Bootstrap::Mpi) {
      ATP_ASSIGN_OR_RETURN(std::unique_ptr<Comm> mpi, make_mpi_comm(ranks));
      Status s = mpi->broadcast(&id, sizeof id, DType::U8, 0);
      if (!s.ok())
        return s.with_context(what + ": sending the NCCL unique id");
    } else if (boot == Bootstrap::File) {
      if (rendezvous_dir.empty())
        return error(what + ": the file bootstrap needs ATP_RENDEZVOUS_DIR (a directory every rank can read)");
      std::string run_id = options.run_id;
      for (const char *var : {"ATP_RUN_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "MASTER_PORT"})
        if (run_id.empty())
          run_id = env_or(var, "");
      id_file = rendezvous_dir + "/" + rendezvous_name(ranks, run_id.empty() ? "job" : run_id);
      Status s = group_rank == 0 ? file_write_id(rendezvous_dir, id_file, id)
                                 : file_read_id(id_file, &id, timeout_s, ranks[0]);
      if (!s.ok())
        return s.with_context(what + ": file rendezvous");
    } else if (boot == Bootstrap::Tcp) {
      ATP_ASSIGN_OR_RETURN(TcpStore * store, tcp_store_for_job(global_rank, timeout_s));
      const std::string key = rendezvous_name(ranks, "tcp");
      Status s;
      if (group_rank == 0) {
        s = store->set(key, std::string(reinterpret_cast<const char *>(&id), sizeof id));
      } else {
        Result<std::string> got = store->get(key, timeout_s);
        if (got.ok() && got->size() != sizeof id)
          got = error("the store holds " + std::to_string(got->size()) + " bytes for " + key +
                      ", not an NCCL unique id");
        if (got.ok())
          std::memcpy(&id, got->data(), sizeof id);
        s = got.status();
      }
      if (!s.ok())
        return s.with_context(what + ": TCP rendezvous (global rank " + std::to_string(ranks[0]) + " publishes)");
    } else {
      return error(what + ": no way to share the NCCL unique id: MPI is not initialised, and neither "
                          "ATP_RENDEZVOUS_DIR nor MASTER_ADDR/MASTER_PORT is set");
    }
  }

  // Non-blocking init, polled under the timeout.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, n, id, group_rank, &config);
  if ((r == ncclSuccess || r == ncclInProgress) && comm)
    r = wait_ready(comm, deadline_after(timeout_s));
  if (r != ncclSuccess) {
    std::string why = r == ncclInProgress ? "did not complete within " + seconds_text(timeout_s) +
                                                " (ATP_COMM_TIMEOUT_S): a member of the group did not join"
                                          : "failed: " + nccl_error_detail(r, comm);
    if (comm)
      ncclCommAbort(comm);
    if (!id_file.empty() && group_rank == 0)
      ::unlink(id_file.c_str()); // no later job may read a stale id
    return error(what + ": ncclCommInitRankConfig " + why);
  }
  if (!id_file.empty() && group_rank == 0)
    ::unlink(id_file.c_str()); // every member has joined, so every member has read it

  cudaStream_t stream = static_cast<cudaStream_t>(options.stream);
  bool own_stream = stream == nullptr;
  int *scratch = nullptr;
  cudaError_t e = own_stream ? cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) : cudaSuccess;
  if (e == cudaSuccess)
    e = cudaMalloc(&scratch, sizeof(int));
  if (e != cudaSuccess) {
    ncclCommAbort(comm);
    if (own_stream && stream)
      cudaStreamDestroy(stream);
    return error(what + ": " + cuda_error_detail(e));
  }
  auto *c = new NcclComm(ranks, group_rank, comm, device, stream, own_stream, scratch, label);
  register_live(c);
  return std::unique_ptr<Comm>(c);
}

void *comm_stream(const Comm &comm) {
  auto *nccl = dynamic_cast<const NcclComm *>(&comm);
  return nccl ? static_cast<void *>(nccl->stream()) : nullptr;
}

bool nccl_available() { return true; }

} // namespace atp
