/* comm_nccl_collectives.cpp - the collective checks of comm_collectives.cpp on the NCCL backend.

   Needs one GPU per rank (rank r uses device local_rank % device count), so it is built with CUDA but not
   registered with ctest. Run on the GPU machine under mpirun (the NCCL unique id goes over MPI):
     mpirun --allow-run-as-root -np <gpus> test/runtime/comm_nccl_collectives
   or, where there is no MPI, as torchrun would start it (the id goes through a file rendezvous):
     for r in 0 1; do ATP_RENDEZVOUS_DIR=/tmp/rdv RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 \
       test/runtime/comm_nccl_collectives & done; wait
   With the argument `hang` (2 or more GPUs, ATP_COMM_TIMEOUT_S=5 say) it checks instead that a rank that
   skips a call makes the others' calls fail after the timeout rather than hang.
   For each TP size that divides the world it checks the TP and the DP group of every rank, then the world on
   a stream the test owns, and, under mpirun with ATP_RENDEZVOUS_DIR set, the world with the file bootstrap.
   Inputs, expected values and buffers as in comm_check.h, on device memory. Rank 0 prints a one-line
   summary; the exit status is 1 on any mismatch or error on any rank. */
#include "atp/check_cuda.h"
#include "atp/comm.h"
#include "atp/world.h"

#include "comm_check.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <thread>

using namespace atp;

namespace {

struct DeviceMemory final : test::Memory {
  void *alloc(std::size_t bytes) override {
    void *p = nullptr;
    ATP_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
  }
  void release(void *p) override { ATP_CUDA_CHECK(cudaFree(p)); }
  void upload(void *dst, const void *src, std::size_t bytes) override {
    ATP_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  }
  void download(void *dst, const void *src, std::size_t bytes) override {
    ATP_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
};

/// Argument errors and abort() on a group of one (no peer involved): each call must fail with its message.
void local_checks(int me, const NcclCommOptions &options, test::Report &report) {
  std::unique_ptr<Comm> c = ATP_CHECK_OK(make_nccl_comm({me}, options));
  DeviceMemory mem;
  void *buf = mem.alloc(64);
  float *f = static_cast<float *>(buf);
  auto expect = [&](const Status &s, const std::string &part) {
    ++report.checks;
    if (s.ok() || s.message().find(part) == std::string::npos) {
      ++report.mismatches;
      report.note("nccl group of one: expected an error containing '" + part + "', got '" + s.message() + "'");
    }
  };
  expect(c->broadcast(buf, 4, DType::F32, 1), "root 1 is not a group rank");
  expect(c->all_reduce(f, f + 1, 4, DType::F32, ReduceOp::Sum), "overlap");
  expect(c->all_reduce(f, f + 8, 4, DType::BOOL, ReduceOp::Sum), "dtype BOOL is not supported");
  c->abort();
  expect(c->all_reduce(f, f + 8, 4, DType::F32, ReduceOp::Sum), "aborted");
  expect(c->synchronize(), "aborted");
  c.reset();
  mem.release(buf);
}

/// Rank 1 skips an all_reduce; every other rank must get an error (the watchdog's abort) from
/// synchronize() within about ATP_COMM_TIMEOUT_S, and never hang. Exit 0 when that happened on every rank.
int hang_test(const World &world, const NcclCommOptions &options, bool use_mpi) {
  if (world.world_size < 2) {
    std::fprintf(stderr, "comm_nccl_collectives hang: needs 2 or more ranks (one GPU each)\n");
    return 2;
  }
  std::vector<int> everyone(std::size_t(world.world_size));
  std::iota(everyone.begin(), everyone.end(), 0);
  std::unique_ptr<Comm> comm = ATP_CHECK_OK(make_nccl_comm(everyone, options));
  DeviceMemory mem;
  void *buf = mem.alloc(1 << 20);
  ATP_CHECK_OK(comm->all_reduce(buf, buf, (1 << 20) / 4, DType::F32, ReduceOp::Sum)); // all connected
  ATP_CHECK_OK(comm->synchronize());
  int rc = 0;
  if (world.rank == 1) {
    std::printf("comm_nccl_collectives hang: rank 1 skips the call and waits %g s\n", comm_timeout_s() + 5);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(comm_timeout_s() + 5));
  } else {
    auto t0 = std::chrono::steady_clock::now();
    Status s = comm->all_reduce(buf, buf, (1 << 20) / 4, DType::F32, ReduceOp::Sum);
    if (s.ok())
      s = comm->synchronize();
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rc = s.ok() ? 1 : 0;
    std::printf("comm_nccl_collectives hang: rank %d: %s after %.1f s: %s\n", world.rank,
                s.ok() ? "FAIL, the call succeeded" : "PASS, error", took, s.message().c_str());
    std::fflush(stdout);
  }
  mem.release(buf);
  comm.reset();
  if (use_mpi)
    ATP_CHECK_OK(mpi_finalize());
  return rc;
}

} // namespace

int main(int argc, char **argv) {
  World world = ATP_CHECK_OK(World::from_env());
  set_process_identity(world.rank, world.world_size);
  const bool use_mpi = world.launcher == "openmpi" || world.launcher == "pmi" || world.launcher == "slurm";
  if (use_mpi)
    ATP_CHECK_OK(mpi_init(&argc, &argv));
  int devices = 0;
  ATP_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices < 1) {
    std::fprintf(stderr, "comm_nccl_collectives: no CUDA device\n");
    return 1;
  }
  int device = world.local_rank % devices;
  ATP_CUDA_CHECK(cudaSetDevice(device));

  DeviceMemory mem;
  test::Report report;
  const std::vector<std::size_t> counts = {0, 1, 5, 131};
  const std::size_t big = 1 << 18;
  int layouts = 0;
  NcclCommOptions options; // the unique id over MPI, else over a file in ATP_RENDEZVOUS_DIR
  options.bootstrap = use_mpi ? Bootstrap::Mpi : Bootstrap::File;
  if (argc > 1 && std::string(argv[1]) == "hang")
    return hang_test(world, options, use_mpi);

  for (int tp : {1, 2, 4, 8}) {
    if (world.world_size % tp != 0)
      continue;
    Groups g = ATP_CHECK_OK(make_groups(world, tp));
    std::unique_ptr<Comm> tp_comm = ATP_CHECK_OK(make_nccl_comm(g.tp_group, options));
    std::unique_ptr<Comm> dp_comm = ATP_CHECK_OK(make_nccl_comm(g.dp_group, options));
    test::Checker(*tp_comm, mem, "nccl tp=" + std::to_string(tp) + " tp-group " + comm_detail::group_string(g.tp_group),
                  report, counts, big)
        .run_all();
    test::Checker(*dp_comm, mem, "nccl tp=" + std::to_string(tp) + " dp-group " + comm_detail::group_string(g.dp_group),
                  report, counts, big)
        .run_all();
    layouts += 2;
  }

  std::vector<int> everyone(std::size_t(world.world_size));
  std::iota(everyone.begin(), everyone.end(), 0);
  {
    cudaStream_t stream = nullptr;
    ATP_CUDA_CHECK(cudaStreamCreate(&stream));
    NcclCommOptions on_stream = options;
    on_stream.stream = stream;
    std::unique_ptr<Comm> comm = ATP_CHECK_OK(make_nccl_comm(everyone, on_stream));
    ++report.checks;
    if (comm_stream(*comm) != stream) {
      ++report.mismatches;
      report.note("world on the test's stream: comm_stream() is not the stream passed in");
    }
    test::Checker(*comm, mem, "nccl world on the test's stream", report, counts, big).run_all();
    comm.reset();
    ATP_CUDA_CHECK(cudaStreamDestroy(stream));
    ++layouts;
  }
  if (const char *dir = std::getenv("ATP_RENDEZVOUS_DIR"); use_mpi && dir && *dir) {
    NcclCommOptions by_file;
    by_file.bootstrap = Bootstrap::File;
    std::unique_ptr<Comm> comm = ATP_CHECK_OK(make_nccl_comm(everyone, by_file));
    test::Checker(*comm, mem, "nccl world, file bootstrap", report, counts, big).run_all();
    ++layouts;
  }

  local_checks(world.rank, options, report);

  // Totals over the world, through NCCL itself.
  std::unique_ptr<Comm> all = ATP_CHECK_OK(make_nccl_comm(everyone, options));
  std::int64_t totals[4] = {report.checks, report.elements, report.mismatches, report.errors};
  void *dev_totals = mem.alloc(sizeof totals);
  mem.upload(dev_totals, totals, sizeof totals);
  ATP_CHECK_OK(all->all_reduce(dev_totals, dev_totals, 4, DType::I64, ReduceOp::Sum));
  ATP_CHECK_OK(all->synchronize());
  mem.download(totals, dev_totals, sizeof totals);
  mem.release(dev_totals);
  for (const std::string &line : report.first)
    std::fprintf(stderr, "comm_nccl_collectives: rank %d: FAIL %s\n", world.rank, line.c_str());
  bool pass = totals[2] == 0 && totals[3] == 0;
  if (world.rank == 0) {
    cudaDeviceProp prop;
    ATP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    std::printf("comm_nccl_collectives: %s: world %d on %s, NCCL %d.%d.%d, %d group layouts, %lld collective "
                "calls (summed over ranks), %lld elements checked, %lld mismatches, %lld errors\n",
                pass ? "PASS" : "FAIL", world.world_size, prop.name, NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, layouts,
                static_cast<long long>(totals[0]), static_cast<long long>(totals[1]), static_cast<long long>(totals[2]),
                static_cast<long long>(totals[3]));
  }
  std::fflush(stdout);
  all.reset();
  if (use_mpi)
    ATP_CHECK_OK(mpi_finalize());
  return pass ? 0 : 1;
}
