/* load_sharded_check.cpp - load_sharded on every rank equals the offline shards, and how fast it reads.

   Built against one generated project's plan (gen::plan). Run as
     mpirun -np W load_sharded_check_<name> HF_CHECKPOINT SHARDS_DIR
   with W a multiple of the plan's TP size: rank r loads TP rank r % tp straight from the HF checkpoint
   (each rank reads only its own byte ranges) and compares every tensor byte for byte with the file that the
   generated `shard` tool wrote for that TP rank. Rank 0 prints the slowest rank's load time, the bytes each
   rank read and the aggregate rate, then "load_sharded_check: N passed, M failed" (one check per rank). */
#include "plan.h"

#include "atp/checkpoint_tools.h"
#include "atp/comm.h"
#include "atp/safetensors.h"
#include "atp/world.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: mpirun -np W %s HF_CHECKPOINT SHARDS_DIR\n", argv[0]);
    return 2;
  }
  ATP_CHECK_OK(atp::mpi_init(&argc, &argv));
  atp::World world = ATP_CHECK_OK(atp::World::from_env());
  atp::set_process_identity(world.rank, world.world_size);
  std::vector<int> all;
  for (int r = 0; r < world.world_size; ++r)
    all.push_back(r);
  auto comm = ATP_CHECK_OK(atp::make_mpi_comm(all));
  const atp::ModelPlan &plan = gen::plan;
  const int tp_rank = world.rank % plan.tp_size;

  ATP_CHECK_OK(comm->barrier());
  auto t0 = std::chrono::steady_clock::now();
  std::vector<atp::HostTensor> local = ATP_CHECK_OK(atp::load_sharded(plan, tp_rank, argv[1]));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double bytes = 0;
  for (const atp::HostTensor &t : local)
    bytes += double(t.nbytes());

  atp::SafetensorsFile shard = ATP_CHECK_OK(
      atp::SafetensorsFile::open(std::string(argv[2]) + "/" + atp::shard_file_name(tp_rank, plan.tp_size)));
  int bad = 0;
  for (int i = 0; i < plan.num_params; ++i) {
    const atp::TensorInfo *t = shard.find(plan.params[i].name);
    if (!t || t->nbytes() != local[std::size_t(i)].nbytes() ||
        std::memcmp(t->data, local[std::size_t(i)].data(), t->nbytes()) != 0)
      if (bad++ < 3)
        std::fprintf(stderr, "rank %d (tp rank %d): %s differs from the offline shard\n", world.rank, tp_rank,
                     plan.params[i].name);
  }
  double stats[3] = {seconds, bytes, double(bad ? 1 : 0)}, max_stats[3], sum_stats[3];
  ATP_CHECK_OK(comm->all_reduce(stats, max_stats, 3, atp::DType::F64, atp::ReduceOp::Max));
  ATP_CHECK_OK(comm->all_reduce(stats, sum_stats, 3, atp::DType::F64, atp::ReduceOp::Sum));
  if (world.rank == 0) {
    std::printf("load_sharded tp=%d ranks=%d: slowest rank %.3f s; %.3f GB per rank (max); %.2f GB/s aggregate\n",
                plan.tp_size, world.world_size, max_stats[0], max_stats[1] / 1e9, sum_stats[1] / 1e9 / max_stats[0]);
    std::printf("load_sharded_check: %d passed, %d failed\n", world.world_size - int(sum_stats[2]), int(sum_stats[2]));
  }
  comm.reset();
  ATP_CHECK_OK(atp::mpi_finalize());
  return sum_stats[2] > 0 ? 1 : 0;
}
