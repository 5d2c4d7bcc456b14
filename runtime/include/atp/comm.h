/* comm.h - collectives over one group of ranks.

   A Comm is one communicator over an ordered list of global ranks (a TP group, a DP group, the world). The
   generated code and the ZeRO glue call the same five collectives on every backend:
     - MPI  (make_mpi_comm):  host buffers; the CPU path under mpirun / srun. Calls block until done.
     - TCP  (make_tcp_comm):  host buffers over sockets between the members, for launches without MPI
                              (torchrun); calls block until done. make_host_mesh picks MPI or TCP.
     - NCCL (make_nccl_comm): device buffers, enqueued on the comm's CUDA stream; synchronize() waits.
   Every call returns a Status that names the call, group and group rank on failure (fail() adds the rank and
   host when top-level code exits on it). Neither backend hangs forever: a call that does not complete within
   ATP_COMM_TIMEOUT_S seconds (default 300, 0 = no limit) or a peer's asynchronous error aborts the
   communicators (NCCL: ncclCommAbort; MPI: MPI_Abort of the job) with a message on stderr (comm_mpi.cpp says
   what the MPI backend does and does not guarantee).
   Semantics follow NCCL: reduce_scatter's count is the per-rank output count, all_gather's the per-rank input
   count; in place means recv == send (all_reduce) or the rank's own slice of the larger buffer
   (reduce_scatter: recv == send + rank*count; all_gather: send == recv + rank*count). Any other overlap of
   send and recv is refused with a Status. */
#pragma once

#include "atp/dtype.h"
#include "atp/status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace atp {

// ---------------------------------------------------------------------------------------------------------
// element types and reductions

/// Comms move F32, BF16, F16, F64, I32, U32, I64, U64, I8 and U8 (DType from dtype.h); the other dtypes
/// (BOOL, I16, U16, F8_*) are refused with a Status.
bool comm_supports(DType dtype);

enum class ReduceOp { Sum, Max, Min, Avg };

/// "sum", "max", "min", "avg"
const char *reduce_op_name(ReduceOp op);

/// bfloat16 and IEEE half <-> float; float -> 16 bit rounds to nearest even (NaN stays NaN).
float bf16_to_float(std::uint16_t bits);
std::uint16_t float_to_bf16(float value);
float f16_to_float(std::uint16_t bits);
std::uint16_t float_to_f16(float value);

// ---------------------------------------------------------------------------------------------------------
// the communicator interface

enum class CommBackend { Mpi, Nccl, Tcp };

class Comm {
public:
  virtual ~Comm() = default;
  Comm(const Comm &) = delete;
  Comm &operator=(const Comm &) = delete;

  /// This process's rank in the group (its index in ranks()).
  int rank() const { return rank_; }
  /// Number of ranks in the group.
  int size() const { return static_cast<int>(ranks_.size()); }
  /// Global ranks of the group, in group-rank order.
  const std::vector<int> &ranks() const { return ranks_; }
  virtual CommBackend backend() const = 0;

  /// recv[i] = op over ranks of send[i], i < count. Avg divides the sum by size() (integers truncate).
  virtual Status all_reduce(const void *send, void *recv, std::size_t count, DType dtype, ReduceOp op) = 0;
  /// send holds size()*recv_count elements; recv[i] = op over ranks of send[rank()*recv_count + i].
  virtual Status reduce_scatter(const void *send, void *recv, std::size_t recv_count, DType dtype, ReduceOp op) = 0;
  /// recv holds size()*send_count elements; recv[r*send_count + i] = send[i] of group rank r.
  virtual Status all_gather(const void *send, void *recv, std::size_t send_count, DType dtype) = 0;
  /// buf of every rank = buf of group rank root.
  virtual Status broadcast(void *buf, std::size_t count, DType dtype, int root) = 0;
  /// Returns once every rank of the group has entered (NCCL: once the barrier completed on the device).
  virtual Status barrier() = 0;
  /// Waits for every call issued so far to complete (MPI: nothing to wait for).
  virtual Status synchronize() = 0;
  /// Tears the communicator down without waiting for peers; later calls fail. Safe from an abort hook.
  virtual void abort() = 0;

protected:
  Comm(std::vector<int> ranks, int rank) : ranks_(std::move(ranks)), rank_(rank) {}
  /// Checks the arguments every backend checks; names `call` in the message.
  Status check_args(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const;
  /// "all_reduce(1024 x bf16, sum) on group [0,1] (group rank 0/2)" for messages: count 0 leaves out the
  /// parenthesis after the call, a null op the op; `where` is added after the group rank (NCCL: the device).
  std::string describe_call(const char *call, std::size_t count, DType dtype, const char *op,
                            const std::string &where = "") const;

private:
  std::vector<int> ranks_;
  int rank_;
};

// ---------------------------------------------------------------------------------------------------------
// MPI backend (host buffers)

/// Initialises MPI once per process (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE so that the watchdog may
/// call MPI_Abort); does nothing if MPI is already initialised. make_mpi_comm calls it.
Status mpi_init(int *argc = nullptr, char ***argv = nullptr);
/// Frees atp's MPI objects and calls MPI_Finalize if atp initialised MPI. Comms must be destroyed first.
Status mpi_finalize();
/// True between MPI_Init and MPI_Finalize (whoever called them).
bool mpi_active();

struct MpiCommOptions {
  /// Largest count passed to one MPI call; bigger calls are split (MPI counts are int). Tests lower it.
  std::size_t max_chunk = 0x7fffffff;
};

/// Communicator over `ranks` (global ranks of MPI_COMM_WORLD, in the order that defines group ranks). Only
/// the members call it (MPI_Comm_create_group), and each member must create its groups in the same order.
Result<std::unique_ptr<Comm>> make_mpi_comm(const std::vector<int> &ranks, const MpiCommOptions &options = {});

/// One rank's host communicators of the (dp, tp) mesh (world.h's make_groups): its TP group, its DP group,
/// and the whole world.
struct HostMesh {
  std::unique_ptr<Comm> tp, dp, world;
};
using MpiMesh = HostMesh;
/// Every rank creates all TP groups, then all DP groups, then the world, in the same order (each joining
/// only its own): what a program under mpirun does once at start. world_size and tp_size as make_groups.
Result<HostMesh> make_mpi_mesh(int world_rank, int world_size, int tp_size);

// ---------------------------------------------------------------------------------------------------------
// TCP backend (host buffers), for launches without MPI

/// Communicator over `ranks` (global ranks, in group-rank order) on TCP sockets between its members, set up
/// through the job's TcpStore (tcp_store.h: MASTER_ADDR / MASTER_PORT, global rank 0 serves). Only the members
/// call it, each member creating its groups in the same order. Reductions run in group-rank order, so every
/// rank gets the same bits; every call first checks that the peers called the same collective with the same
/// count, dtype, op and root (a mismatch is an error naming both calls); waits are bounded by
/// comm_timeout_s(), and a peer that exits fails the call naming it (comm_tcp.cpp says how).
Result<std::unique_ptr<Comm>> make_tcp_comm(const std::vector<int> &ranks);
/// make_mpi_mesh's mesh over TCP (the same creation order).
Result<HostMesh> make_tcp_mesh(int world_rank, int world_size, int tp_size);

/// Whether a launch uses MPI for its host comms: not under torchrun (the launcher World::from_env found),
/// which starts plain processes with MASTER_ADDR / MASTER_PORT and no MPI; everything else (mpirun, srun,
/// a single process) does.
bool launch_uses_mpi(const std::string &launcher);
/// A host comm over `ranks` of the running launch: MPI when MPI is active, else TCP.
Result<std::unique_ptr<Comm>> make_host_comm(const std::vector<int> &ranks);
/// The host mesh of the running launch: make_mpi_mesh when MPI is active, else make_tcp_mesh.
Result<HostMesh> make_host_mesh(int world_rank, int world_size, int tp_size);

// ---------------------------------------------------------------------------------------------------------
// NCCL backend (device buffers); make_nccl_comm fails with a clear Status in builds without CUDA

enum class Bootstrap {
  Auto, ///< MPI when MPI is active, else File when ATP_RENDEZVOUS_DIR is set, else Tcp when MASTER_ADDR is set
  Mpi,  ///< group rank 0 creates the unique id, MPI_Bcast within the group
  File, ///< group rank 0 writes the id to ATP_RENDEZVOUS_DIR atomically, the others poll for it
  Tcp,  ///< torchrun's way: global rank 0 serves a key-value store at MASTER_ADDR:MASTER_PORT (tcp_store.h)
};

struct NcclCommOptions {
  Bootstrap bootstrap = Bootstrap::Auto;
  /// cudaStream_t the collectives run on; null: the comm creates (and owns) a non-blocking stream.
  void *stream = nullptr;
  /// CUDA device; -1: the current device.
  int device = -1;
  /// This process's global rank; -1: from MPI when active, else from World::from_env().
  int global_rank = -1;
  /// File bootstrap: the shared directory (empty: $ATP_RENDEZVOUS_DIR) and a name that is unique per job
  /// (empty: from ATP_RUN_ID, TORCHELASTIC_RUN_ID, SLURM_JOB_ID or MASTER_PORT).
  std::string rendezvous_dir;
  std::string run_id;
};

/// Communicator over `ranks` on device buffers. Non-blocking init under the watchdog: an init that does not
/// complete within the timeout is aborted with a Status naming the rank, host and group.
Result<std::unique_ptr<Comm>> make_nccl_comm(const std::vector<int> &ranks, const NcclCommOptions &options = {});
/// The cudaStream_t an NCCL comm runs on (null for other backends).
void *comm_stream(const Comm &comm);
/// True when this build has the NCCL backend.
bool nccl_available();

/// Seconds a collective may take before the watchdog aborts it: ATP_COMM_TIMEOUT_S, default 300; 0 = none.
double comm_timeout_s();
/// "rank 3/8 (host node1)" for messages: from MPI when active, else from World::from_env().
std::string process_label();

namespace comm_detail { // shared by the backends
/// "[0,1,2,3]"; long lists are cut ("[0,8,16,...,120] (16 ranks)").
std::string group_string(const std::vector<int> &ranks);
/// Checks that `ranks` is a non-empty list of distinct ranks in [0, world_size) that holds `global_rank`.
Status check_group(const char *call, const std::vector<int> &ranks, int global_rank, int world_size);
/// This process's global rank and the world size: from MPI when active, else from World::from_env().
Status global_rank_and_size(int *rank, int *world_size);
/// True when the byte ranges [a, a+an) and [b, b+bn) share a byte.
bool overlaps(const void *a, std::size_t an, const void *b, std::size_t bn);
/// Avg = sum / n, in place, in the element type (integers truncate; bf16/f16 divide in float, round once).
void divide_for_average(void *buf, std::size_t count, DType dtype, int n);
/// acc[i] = acc[i] op x[i] (Avg adds); bf16 and f16 in float, rounded to nearest even at every step.
void reduce_into(void *acc, const void *x, std::size_t count, DType dtype, ReduceOp op);
} // namespace comm_detail

} // namespace atp
