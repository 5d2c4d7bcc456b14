/* comm_collectives.cpp - every collective over every TP/DP group layout of the world, MPI or TCP backend.

   Run under mpirun (ctest: -np 8), or with the argument `tcp` under a torchrun-style launch (ctest:
   tools/launch-local 8) for the TCP backend, which then makes every comm below. For each TP size that divides the world
   (1, 2, 4, 8 in a world of 8) each rank makes its TP group (contiguous ranks) and its DP group (strided ranks) with
   make_groups and runs the Checker of comm_check.h over both: all_reduce, reduce_scatter, all_gather, broadcast (every
   root) and barrier, on every dtype comms move, with sum/max/min (and avg on float types), counts 0, 1, 5, 131 and a
   big one, in and out of place, with inputs computed from (seed, global rank, index). Three more layouts:
   the world listed backwards (group ranks are not global ranks), the TP=2 DP groups with the MPI backend's
   split path forced (max_chunk 3; MPI only), and the TP=2 TP groups through the staged comm (comm_staged.h). Each rank
   prints its first failures; rank 0 prints a one-line summary; the exit status is 1 on any mismatch or error on any
   rank. */
#include "atp/comm.h"
#include "atp/comm_staged.h"
#include "atp/ops.h"
#include "atp/world.h"

#include "comm_check.h"

#include <algorithm>
#include <cstdio>
#include <memory>

using namespace atp;

namespace {

void check_groups(const Comm &comm, const std::vector<int> &ranks, int group_rank, test::Report &report,
                  const std::string &layout) {
  ++report.checks;
  if (comm.ranks() != ranks || comm.rank() != group_rank || comm.size() != int(ranks.size())) {
    ++report.mismatches;
    report.note(layout + ": comm reports group rank " + std::to_string(comm.rank()) + " of " +
                comm_detail::group_string(comm.ranks()) + ", expected " + std::to_string(group_rank));
  }
}

} // namespace

int main(int argc, char **argv) {
  const bool tcp = argc > 1 && std::string(argv[1]) == "tcp";
  if (!tcp)
    ATP_CHECK_OK(mpi_init(&argc, &argv));
  auto make = [&](const std::vector<int> &ranks) { return tcp ? make_tcp_comm(ranks) : make_mpi_comm(ranks); };
  World world = ATP_CHECK_OK(World::from_env());
  test::HostMemory host;
  test::Report report;
  const std::vector<std::size_t> counts = {0, 1, 5, 131};
  const std::size_t big = 1 << 16;
  int layouts = 0;

  for (int tp : {1, 2, 4, 8}) {
    if (world.world_size % tp != 0)
      continue;
    Groups g = ATP_CHECK_OK(make_groups(world, tp));
    std::unique_ptr<Comm> tp_comm = ATP_CHECK_OK(make(g.tp_group));
    std::unique_ptr<Comm> dp_comm = ATP_CHECK_OK(make(g.dp_group));
    std::string tp_name = "tp=" + std::to_string(tp) + " tp-group " + comm_detail::group_string(g.tp_group);
    std::string dp_name = "tp=" + std::to_string(tp) + " dp-group " + comm_detail::group_string(g.dp_group);
    check_groups(*tp_comm, g.tp_group, g.tp_rank, report, tp_name);
    check_groups(*dp_comm, g.dp_group, g.dp_rank, report, dp_name);
    test::Checker(*tp_comm, host, tp_name, report, counts, big).run_all();
    test::Checker(*dp_comm, host, dp_name, report, counts, big).run_all();
    layouts += 2;
  }

  // The world backwards: group rank r is global rank world-1-r.
  std::vector<int> backwards(std::size_t(world.world_size));
  for (int r = 0; r < world.world_size; ++r)
    backwards[std::size_t(r)] = world.world_size - 1 - r;
  {
    std::unique_ptr<Comm> comm = ATP_CHECK_OK(make(backwards));
    std::string name = "world backwards " + comm_detail::group_string(backwards);
    check_groups(*comm, backwards, world.world_size - 1 - world.rank, report, name);
    test::Checker(*comm, host, name, report, counts, big).run_all();
    ++layouts;
  }

  // Calls split into chunks of 3 elements (MPI counts are int; big calls are split the same way).
  if (!tcp && world.world_size % 2 == 0) {
    Groups g = ATP_CHECK_OK(make_groups(world, 2));
    MpiCommOptions small;
    small.max_chunk = 3;
    std::unique_ptr<Comm> comm = ATP_CHECK_OK(make_mpi_comm(g.dp_group, small));
    test::Checker(*comm, host, "tp=2 dp-group, chunks of 3", report, {1, 5, 131}, 1000).run_all();
    ++layouts;
  }

  // The staged comm (comm_staged.h) over the TP=2 TP groups: every collective through its host copies (the
  // CPU ops stand in for a device's; on a GPU the same wrapper serves ranks that share one card).
  if (world.world_size % 2 == 0) {
    Groups g = ATP_CHECK_OK(make_groups(world, 2));
    std::unique_ptr<Ops> ops = make_cpu_ops();
    std::unique_ptr<Comm> comm = make_staged_comm(ATP_CHECK_OK(make(g.tp_group)), *ops);
    std::string name = "tp=2 tp-group, staged";
    check_groups(*comm, g.tp_group, g.tp_rank, report, name);
    test::Checker(*comm, host, name, report, counts, big).run_all();
    ++layouts;
  }

  // Totals over the world, then the report.
  std::vector<int> everyone(backwards.rbegin(), backwards.rend());
  std::unique_ptr<Comm> all = ATP_CHECK_OK(make(everyone));
  std::int64_t totals[4] = {report.checks, report.elements, report.mismatches, report.errors};
  ATP_CHECK_OK(all->all_reduce(totals, totals, 4, DType::I64, ReduceOp::Sum));
  for (const std::string &line : report.first)
    std::fprintf(stderr, "comm_collectives: rank %d: FAIL %s\n", world.rank, line.c_str());
  bool pass = totals[2] == 0 && totals[3] == 0;
  if (world.rank == 0)
    std::printf("comm_collectives (%s): %s: world %d, %d group layouts, %lld collective calls (summed over ranks), "
                "%lld elements checked, %lld mismatches, %lld errors\n",
                tcp ? "tcp" : "mpi", pass ? "PASS" : "FAIL", world.world_size, layouts,
                static_cast<long long>(totals[0]), static_cast<long long>(totals[1]), static_cast<long long>(totals[2]),
                static_cast<long long>(totals[3]));
  std::fflush(stdout);
  all.reset();
  if (!tcp)
    ATP_CHECK_OK(mpi_finalize());
  return pass ? 0 : 1;
}
