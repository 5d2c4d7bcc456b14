/* comm_mpi.cpp - the MPI backend of Comm (host buffers): MpiComm and make_mpi_comm.

   Groups are made with MPI_Comm_create_group, so only a group's members take part in making it. Every
   communicator has MPI_ERRORS_RETURN, and a failed call becomes a Status that names the rank, host, group and
   call with MPI's error string. bf16 and f16 have no MPI type: they travel as MPI_UINT16_T and are reduced by
   user-defined ops that compute in float and round to nearest even at every step, as NCCL does.

   What the MPI backend guarantees about failures, and what it does not:
     - A peer that dies: mpirun (Open MPI) sees a process exit without MPI_Finalize and kills the job. Under
       other launchers that depends on the launcher (srun needs --kill-on-bad-exit); the watchdog
       (mpi_watchdog.cpp) is the backstop either way.
     - A call that blocks (a dead, hung or diverged peer): MPI calls cannot be interrupted, so a process-wide
       watchdog thread ends the job through fail() (MPI_Abort of MPI_COMM_WORLD via the abort hook) once a call
       has run comm_timeout_s() seconds. This is the one place where the runtime exits on its own.
     - Ranks that call with different counts or collectives: MPI detects some cases (MPI_ERR_TRUNCATE on the
       rank that receives too much) and returns them as a Status; others block (the watchdog ends them); MPI
       checks no counts, so a mismatch whose messages happen to fit can go unnoticed.
     - An error Status does not stop the peers by itself: top-level code passes it to fail(), whose abort hook
       (registered by mpi_init) calls MPI_Abort so that the whole job ends. */
#include "mpi_internal.h"

#include "atp/world.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <utility>

namespace atp {

using mpi_detail::mpi_error_string;
using mpi_detail::mpi_op;
using mpi_detail::mpi_type;
using mpi_detail::WatchdogScope;

namespace {

const char *cbytes(const void *p) { return static_cast<const char *>(p); }
char *bytes(void *p) { return static_cast<char *>(p); }

class MpiComm final : public Comm {
public:
  MpiComm(std::vector<int> ranks, int rank, MPI_Comm comm, std::size_t max_chunk)
      : Comm(std::move(ranks), rank), comm_(comm), max_chunk_(max_chunk) {}
  ~MpiComm() override {
    if (comm_ != MPI_COMM_NULL && mpi_active())
      MPI_Comm_free(&comm_);
  }
  CommBackend backend() const override { return CommBackend::Mpi; }
  Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) override;
  Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) override;
  Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) override;
  Status broadcast(void *buf, std::size_t count, DType dtype, int root) override;
  Status barrier() override;
  Status synchronize() override {
    return aborted_ ? error(describe("synchronize") + ": the comm was aborted") : Status{};
  }
  /// MPI cannot abort one communicator without the job: later calls fail; ending the job is fail()'s hook.
  void abort() override { aborted_ = true; }

private:
  std::string describe(const char *call, std::size_t count = 0, DType dtype = DType::U8,
                       const char *op = nullptr) const {
    return describe_call(call, count, dtype, op);
  }
  Status start(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const {
    if (aborted_)
      return error(describe(call) + ": the comm was aborted");
    return check_args(call, send, recv, count, dtype);
  }
  /// Runs one MPI call under the watchdog; an error names `what` and the MPI function.
  template <class F> Status run(const std::string &what, const char *mpi_call, F &&f) {
    WatchdogScope guard(what, mpi_call);
    int rc = f();
    if (rc != MPI_SUCCESS)
      return error(what + ": " + mpi_call + " failed: " + mpi_error_string(rc));
    return {};
  }
  int chunk(std::size_t left) const { return static_cast<int>(std::min(left, max_chunk_)); }

  MPI_Comm comm_;
  std::size_t max_chunk_;
  bool aborted_ = false;
};

Status MpiComm::all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) {
  ATP_TRY(start("all_reduce", send, recv, count, dtype));
  std::size_t es = dtype_size(dtype);
  std::string what = describe("all_reduce", count, dtype, reduce_op_name(op));
  bool in_place = send == recv;
  if (!in_place && comm_detail::overlaps(send, count * es, recv, count * es))
    return error(what + ": send and recv overlap without being the same buffer");
  for (std::size_t off = 0; off < count; off += max_chunk_) {
    const void *s = in_place ? MPI_IN_PLACE : cbytes(send) + off * es;
    ATP_TRY(run(what, "MPI_Allreduce", [&] {
      return MPI_Allreduce(s, bytes(recv) + off * es, chunk(count - off), mpi_type(dtype), mpi_op(dtype, op), comm_);
    }));
  }
  if (op == ReduceOp::Avg)
    comm_detail::divide_for_average(recv, count, dtype, size());
  return {};
}

Status MpiComm::reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) {
  ATP_TRY(start("reduce_scatter", send, recv, recv_count, dtype));
  std::size_t es = dtype_size(dtype), n = static_cast<std::size_t>(size()), rbytes = recv_count * es;
  std::string what = describe("reduce_scatter", recv_count, dtype, reduce_op_name(op));
  bool in_place = recv == cbytes(send) + rank() * rbytes;
  if (!in_place && comm_detail::overlaps(send, n * rbytes, recv, rbytes))
    return error(what + ": recv overlaps send without being this rank's slice of it");
  if (recv_count <= max_chunk_ && !in_place) {
    ATP_TRY(run(what, "MPI_Reduce_scatter_block", [&] {
      return MPI_Reduce_scatter_block(send, recv, chunk(recv_count), mpi_type(dtype), mpi_op(dtype, op), comm_);
    }));
  } else {
    // In place (MPI's in-place layout differs from NCCL's) or too big for one call: pack each chunk of every
    // rank's slice into a staging buffer first, so send is only read and recv only written.
    std::size_t c0 = std::min(recv_count, max_chunk_);
    std::vector<char> staged(n * c0 * es), out(c0 * es);
    for (std::size_t off = 0; off < recv_count; off += max_chunk_) {
      std::size_t c = std::min(recv_count - off, max_chunk_);
      for (std::size_t r = 0; r < n; ++r)
        std::memcpy(staged.data() + r * c * es, cbytes(send) + (r * recv_count + off) * es, c * es);
      ATP_TRY(run(what, "MPI_Reduce_scatter_block", [&] {
        return MPI_Reduce_scatter_block(staged.data(), out.data(), static_cast<int>(c), mpi_type(dtype),
                                        mpi_op(dtype, op), comm_);
      }));
      std::memcpy(bytes(recv) + off * es, out.data(), c * es);
    }
  }
  if (op == ReduceOp::Avg)
    comm_detail::divide_for_average(recv, recv_count, dtype, size());
  return {};
}

Status MpiComm::all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) {
  ATP_TRY(start("all_gather", send, recv, send_count, dtype));
  std::size_t es = dtype_size(dtype), n = static_cast<std::size_t>(size()), sbytes = send_count * es;
  std::string what = describe("all_gather", send_count, dtype);
  bool in_place = send == cbytes(recv) + rank() * sbytes;
  if (!in_place && comm_detail::overlaps(send, sbytes, recv, n * sbytes))
    return error(what + ": send overlaps recv without being this rank's slice of it");
  if (send_count <= max_chunk_) {
    const void *s = in_place ? MPI_IN_PLACE : send;
    return run(what, "MPI_Allgather", [&] {
      return MPI_Allgather(s, chunk(send_count), mpi_type(dtype), recv, chunk(send_count), mpi_type(dtype), comm_);
    });
  }
  std::vector<char> staged(n * max_chunk_ * es);
  for (std::size_t off = 0; off < send_count; off += max_chunk_) {
    std::size_t c = std::min(send_count - off, max_chunk_);
    ATP_TRY(run(what, "MPI_Allgather", [&] {
      return MPI_Allgather(cbytes(send) + off * es, static_cast<int>(c), mpi_type(dtype), staged.data(),
                           static_cast<int>(c), mpi_type(dtype), comm_);
    }));
    for (std::size_t r = 0; r < n; ++r) // in place, our own slice gets the bytes it already holds
      std::memmove(bytes(recv) + (r * send_count + off) * es, staged.data() + r * c * es, c * es);
  }
  return {};
}

Status MpiComm::broadcast(void *buf, std::size_t count, DType dtype, int root) {
  ATP_TRY(start("broadcast", buf, buf, count, dtype));
  std::string what = describe("broadcast", count, dtype);
  if (root < 0 || root >= size())
    return error(what + ": root " + std::to_string(root) + " is not a group rank");
  std::size_t es = dtype_size(dtype);
  for (std::size_t off = 0; off < count; off += max_chunk_)
    ATP_TRY(run(what, "MPI_Bcast",
                [&] { return MPI_Bcast(bytes(buf) + off * es, chunk(count - off), mpi_type(dtype), root, comm_); }));
  return {};
}

Status MpiComm::barrier() {
  if (aborted_)
    return error(describe("barrier") + ": the comm was aborted");
  return run(describe("barrier"), "MPI_Barrier", [&] { return MPI_Barrier(comm_); });
}

/// A tag that differs between groups, so that concurrent creations of different groups never mix.
int group_tag(const std::vector<int> &ranks) {
  std::uint32_t h = 2166136261u; // FNV-1a
  for (int r : ranks)
    h = (h ^ static_cast<std::uint32_t>(r)) * 16777619u;
  return static_cast<int>(h % 32768u); // MPI_TAG_UB is at least 32767
}

} // namespace

Result<std::unique_ptr<Comm>> make_mpi_comm(const std::vector<int> &ranks, const MpiCommOptions &options) {
  ATP_TRY(mpi_init());
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  std::string who = "make_mpi_comm";
  ATP_TRY(comm_detail::check_group(who.c_str(), ranks, world_rank, world_size));
  if (options.max_chunk == 0 || options.max_chunk > static_cast<std::size_t>(INT_MAX))
    return error(who + ": max_chunk " + std::to_string(options.max_chunk) + " is not in [1, INT_MAX]");
  std::string what = who + " on group " + comm_detail::group_string(ranks);

  MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  int rc = MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  if (rc == MPI_SUCCESS)
    rc = MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &group);
  if (rc == MPI_SUCCESS) {
    WatchdogScope guard(what, "MPI_Comm_create_group");
    rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, group_tag(ranks), &comm);
  }
  if (group != MPI_GROUP_NULL)
    MPI_Group_free(&group);
  if (world_group != MPI_GROUP_NULL)
    MPI_Group_free(&world_group);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    if (comm != MPI_COMM_NULL)
      MPI_Comm_free(&comm);
    return error(what + ": making the communicator failed: " + mpi_error_string(rc));
  }
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return std::unique_ptr<Comm>(new MpiComm(ranks, rank, comm, options.max_chunk));
}

} // namespace atp
