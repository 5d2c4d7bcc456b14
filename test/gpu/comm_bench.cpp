/* comm_bench.cpp - the trainer's collectives through atp::Comm (NCCL backend) against NCCL called directly, in
   one run: the overhead of our wrapper beyond NCCL's own (issue 11, item 2). A benchmark: it prints, it does
   not judge.

     mpirun --allow-run-as-root -np <gpus> <test/gpu build>/comm_bench TP [MIB...]

   One GPU per rank (device local_rank % count). For the TP group (contiguous ranks) and the DP group (strided
   ranks) of this rank in a (dp, tp) mesh, at each size (MiB of bf16; default 8 32 128 512): all_reduce (what
   the decoder issues over TP: the row outputs and the column input gradients), reduce_scatter and all_gather
   (what the ZeRO engine issues over DP: a bucket's gradients and parameters). The size is nccl-tests' "size":
   the all-reduce buffer, the reduce-scatter input, the all-gather output. Each is timed both ways with CUDA
   events over ITERS calls (default 20) after 5 warm-up calls, on a stream of its own:
     ours  the call of make_nccl_comm's Comm (argument checks, the watchdog's bookkeeping, then NCCL);
     raw   ncclAllReduce / ncclReduceScatter / ncclAllGather on a communicator of the same ranks made here.
   Rank 0 prints, per (group, collective, size): microseconds per call, algorithm bandwidth (bytes / time) and
   bus bandwidth as nccl-tests computes it (all-reduce x 2(n-1)/n, reduce-scatter and all-gather x (n-1)/n),
   and ours / raw: our speed over raw NCCL's (1: no overhead beyond NCCL's own). Every group runs the same calls at
   once, so DP rows include the contention of all DP groups (as in training). */
#include "atp/check_cuda.h"
#include "atp/comm.h"
#include "atp/world.h"

#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

using namespace atp;

namespace {

#define NCCL_CHECK(expr)                                                                                               \
  do {                                                                                                                 \
    ncclResult_t r_ = (expr);                                                                                          \
    if (r_ != ncclSuccess)                                                                                             \
      fail("NCCL call", #expr, __FILE__, __LINE__, ncclGetErrorString(r_));                                            \
  } while (0)

enum class Kind { AllReduce, ReduceScatter, AllGather };
const char *kind_name(Kind k) {
  return k == Kind::AllReduce ? "all_reduce" : k == Kind::ReduceScatter ? "reduce_scatter" : "all_gather";
}

/// A raw NCCL communicator over `ranks` (global), its id from the group's rank 0 over MPI.
ncclComm_t raw_comm(const std::vector<int> &ranks, int me) {
  int color = ranks.front(), key = 0;
  for (std::size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i] == me)
      key = int(i);
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, color, key, &group);
  ncclUniqueId id;
  if (key == 0)
    NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, group);
  MPI_Comm_free(&group);
  ncclComm_t c;
  NCCL_CHECK(ncclCommInitRank(&c, int(ranks.size()), id, key));
  return c;
}

template <class Call> double time_calls(cudaStream_t stream, int iters, Call call) {
  for (int i = 0; i < 5; ++i)
    call();
  cudaEvent_t a, b;
  ATP_CUDA_CHECK(cudaEventCreate(&a));
  ATP_CUDA_CHECK(cudaEventCreate(&b));
  ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
  MPI_Barrier(MPI_COMM_WORLD);
  ATP_CUDA_CHECK(cudaEventRecord(a, stream));
  for (int i = 0; i < iters; ++i)
    call();
  ATP_CUDA_CHECK(cudaEventRecord(b, stream));
  ATP_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  ATP_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  ATP_CUDA_CHECK(cudaEventDestroy(a));
  ATP_CUDA_CHECK(cudaEventDestroy(b));
  return 1000.0 * ms / iters;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mpirun -np <gpus> comm_bench TP [MIB...]\n");
    return 2;
  }
  ATP_CHECK_OK(mpi_init(&argc, &argv));
  const World world = ATP_CHECK_OK(World::from_env());
  set_process_identity(world.rank, world.world_size);
  const Groups g = ATP_CHECK_OK(make_groups(world, std::atoi(argv[1])));
  std::vector<double> mibs;
  for (int i = 2; i < argc; ++i)
    mibs.push_back(std::atof(argv[i]));
  if (mibs.empty())
    mibs = {8, 32, 128, 512};
  const int iters = std::getenv("ITERS") ? std::atoi(std::getenv("ITERS")) : 20;
  int devices = 0;
  ATP_CUDA_CHECK(cudaGetDeviceCount(&devices));
  ATP_CUDA_CHECK(cudaSetDevice(world.local_rank % devices));

  cudaStream_t ours_stream, raw_stream;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&ours_stream, cudaStreamNonBlocking));
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&raw_stream, cudaStreamNonBlocking));
  NcclCommOptions o;
  o.stream = ours_stream;
  o.global_rank = world.rank;
  struct Group {
    const char *name;
    std::vector<int> ranks;
    std::unique_ptr<Comm> ours;
    ncclComm_t raw;
    std::vector<Kind> kinds;
  };
  std::vector<Group> groups;
  // Every rank creates the TP groups first, then the DP groups, as the trainer does.
  groups.push_back({"TP",
                    g.tp_group,
                    ATP_CHECK_OK(make_nccl_comm(g.tp_group, o)),
                    raw_comm(g.tp_group, world.rank),
                    {Kind::AllReduce}});
  groups.push_back({"DP",
                    g.dp_group,
                    ATP_CHECK_OK(make_nccl_comm(g.dp_group, o)),
                    raw_comm(g.dp_group, world.rank),
                    {Kind::ReduceScatter, Kind::AllGather, Kind::AllReduce}});

  const double max_mib = *std::max_element(mibs.begin(), mibs.end());
  const std::size_t max_bytes = std::size_t(max_mib * (1 << 20));
  void *send = nullptr, *recv = nullptr;
  ATP_CUDA_CHECK(cudaMalloc(&send, max_bytes + 256));
  ATP_CUDA_CHECK(cudaMalloc(&recv, max_bytes + 256));
  ATP_CUDA_CHECK(cudaMemset(send, 0, max_bytes + 256));
  if (world.rank == 0)
    std::printf("comm_bench: %d ranks, TP %d x DP %d, bf16, %d calls per figure\n%-4s %-15s %9s %11s %11s %11s "
                "%11s %11s %8s\n",
                world.world_size, g.tp_size, g.dp_size, iters, "grp", "collective", "MiB", "ours us", "raw us",
                "ours busbw", "raw busbw", "algbw GB/s", "ours/raw");
  for (Group &gr : groups) {
    const int n = int(gr.ranks.size());
    if (n < 2)
      continue;
    for (Kind k : gr.kinds)
      for (double mib : mibs) {
        const std::size_t bytes = std::size_t(mib * (1 << 20)) / (2 * std::size_t(n)) * 2 * std::size_t(n);
        const std::size_t elems = bytes / 2, per_rank = elems / std::size_t(n);
        const int me = gr.ours->rank();
        auto ours = [&] {
          if (k == Kind::AllReduce)
            ATP_CHECK_OK(gr.ours->all_reduce(send, recv, elems, DType::BF16, ReduceOp::Sum));
          else if (k == Kind::ReduceScatter)
            ATP_CHECK_OK(gr.ours->reduce_scatter(send, recv, per_rank, DType::BF16, ReduceOp::Sum));
          else
            ATP_CHECK_OK(gr.ours->all_gather(static_cast<char *>(send) + std::size_t(me) * per_rank * 2, recv, per_rank,
                                             DType::BF16));
        };
        auto raw = [&] {
          if (k == Kind::AllReduce)
            NCCL_CHECK(ncclAllReduce(send, recv, elems, ncclBfloat16, ncclSum, gr.raw, raw_stream));
          else if (k == Kind::ReduceScatter)
            NCCL_CHECK(ncclReduceScatter(send, recv, per_rank, ncclBfloat16, ncclSum, gr.raw, raw_stream));
          else
            NCCL_CHECK(ncclAllGather(static_cast<char *>(send) + std::size_t(me) * per_rank * 2, recv, per_rank,
                                     ncclBfloat16, gr.raw, raw_stream));
        };
        const double t_ours = time_calls(ours_stream, iters, ours);
        const double t_raw = time_calls(raw_stream, iters, raw);
        const double factor = k == Kind::AllReduce ? 2.0 * (n - 1) / n : double(n - 1) / n;
        const double alg_ours = double(bytes) / (t_ours * 1e-6) / 1e9, alg_raw = double(bytes) / (t_raw * 1e-6) / 1e9;
        if (world.rank == 0)
          std::printf("%-4s %-15s %9.1f %11.1f %11.1f %11.1f %11.1f %11.1f %8.3f\n", gr.name, kind_name(k),
                      double(bytes) / (1 << 20), t_ours, t_raw, alg_ours * factor, alg_raw * factor, alg_raw,
                      t_raw / t_ours);
        std::fflush(stdout);
      }
  }
  for (Group &gr : groups) {
    gr.ours.reset();
    NCCL_CHECK(ncclCommDestroy(gr.raw));
  }
  ATP_CUDA_CHECK(cudaFree(send));
  ATP_CUDA_CHECK(cudaFree(recv));
  ATP_CHECK_OK(mpi_finalize());
  return 0;
}
