/* comm_faults.cpp - one rank misbehaves; the job must end, non-zero, with a message, in bounded time.

   Usage: mpirun -np N comm_faults MODE, or tools/launch-local N comm_faults MODE tcp (the TCP backend under a
   torchrun-style launch), with ATP_COMM_TIMEOUT_S set low (ctest sets 3). Rank 1 misbehaves:
     dead-peer        it exits (_exit(3)) while the others are in all_reduce calls;
     hang             it sleeps instead of calling, so the others block until the watchdog ends the job;
     count-mismatch   it calls all_reduce with one element more than the others;
     wrong-collective it calls broadcast while the others call all_reduce.
   The others call through ATP_CHECK_OK, as top-level code does: an error Status goes to fail(), whose abort
   hook (MPI_Abort) ends the job; over TCP fail() ends the process, whose closed sockets fail its peers. A rank that
   gets through every call prints "UNEXPECTED", which the ctest wrapper treats as a failure. The wrapper
   (test/runtime/comm.cmake) checks the exit status, the message and the time taken. */
#include "atp/comm.h"
#include "atp/world.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

using namespace atp;

int main(int argc, char **argv) {
  const bool tcp = argc > 2 && std::strcmp(argv[2], "tcp") == 0;
  if (!tcp)
    ATP_CHECK_OK(mpi_init(&argc, &argv));
  World world = ATP_CHECK_OK(World::from_env());
  set_process_identity(world.rank, world.world_size);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "dead-peer" && mode != "hang" && mode != "count-mismatch" && mode != "wrong-collective") {
    std::fprintf(stderr, "usage: comm_faults dead-peer|hang|count-mismatch|wrong-collective [tcp]\n");
    return 2;
  }
  std::vector<int> everyone(std::size_t(world.world_size));
  std::iota(everyone.begin(), everyone.end(), 0);
  std::unique_ptr<Comm> comm = ATP_CHECK_OK(tcp ? make_tcp_comm(everyone) : make_mpi_comm(everyone));

  // One call that works, so that every connection is up before anything goes wrong.
  std::vector<float> buf(4096, 1.0f);
  ATP_CHECK_OK(comm->all_reduce(buf.data(), buf.data(), buf.size(), DType::F32, ReduceOp::Sum));

  const bool bad = world.rank == 1;
  if (bad) {
    std::fprintf(stderr, "comm_faults: rank 1 misbehaves: %s\n", mode.c_str());
    std::fflush(stderr);
  }
  if (bad && mode == "dead-peer")
    _exit(3);
  if (bad && mode == "hang")
    std::this_thread::sleep_for(std::chrono::seconds(600));
  if (bad && mode == "wrong-collective")
    ATP_CHECK_OK(comm->broadcast(buf.data(), buf.size(), DType::F32, 0));
  std::size_t count = bad && mode == "count-mismatch" ? buf.size() : buf.size() - 1;
  for (int i = 0; i < 100; ++i)
    ATP_CHECK_OK(comm->all_reduce(buf.data(), buf.data(), count, DType::F32, ReduceOp::Max));

  std::printf("comm_faults: UNEXPECTED: rank %d got through every call in mode %s\n", world.rank, mode.c_str());
  std::fflush(stdout);
  comm.reset();
  if (!tcp)
    ATP_CHECK_OK(mpi_finalize());
  return 0;
}
