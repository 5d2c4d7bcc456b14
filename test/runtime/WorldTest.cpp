/* World::from_env for each launcher, its precedence and its errors; TP/DP
   groups as DeepSpeed makes them (reference deepspeed-autotp.md §4.1),
   checked on the reference's example and exhaustively for a world of 8. */
#include "atp/world.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

using namespace atp;
using Env = std::map<std::string, std::string>;

namespace {

World ok_world(const Env &env) {
  Result<World> w = World::from_env(env);
  EXPECT_TRUE(w.ok()) << w.status().message();
  return w.ok() ? *w : World();
}

std::string error_of(const Env &env) {
  Result<World> w = World::from_env(env);
  EXPECT_FALSE(w.ok()) << "launcher " << (w.ok() ? w->launcher : "");
  return w.ok() ? "" : w.status().message();
}

void expect_world(const World &w, int rank, int size, int local_rank, int local_size,
                  const std::string &launcher) {
  EXPECT_EQ(w.rank, rank);
  EXPECT_EQ(w.world_size, size);
  EXPECT_EQ(w.local_rank, local_rank);
  EXPECT_EQ(w.local_world_size, local_size);
  EXPECT_EQ(w.launcher, launcher);
}

const Env kTorchrun = {{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                       {"LOCAL_WORLD_SIZE", "4"}, {"MASTER_ADDR", "node0"},
                       {"MASTER_PORT", "29500"}};
const Env kOpenMpi = {{"OMPI_COMM_WORLD_RANK", "6"}, {"OMPI_COMM_WORLD_SIZE", "16"},
                      {"OMPI_COMM_WORLD_LOCAL_RANK", "6"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "8"}};
const Env kSlurm = {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"},
                    {"SLURM_NTASKS_PER_NODE", "2"}};
const Env kPmi = {{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"},
                  {"MPI_LOCALNRANKS", "1"}};

Env merged(std::initializer_list<Env> envs) {
  Env out;
  for (const Env &e : envs)
    out.insert(e.begin(), e.end());
  return out;
}

} // namespace

TEST(World, NoLauncherIsOneProcess) {
  World w = ok_world({});
  expect_world(w, 0, 1, 0, 1, "single");
  EXPECT_EQ(w.master_addr, "");
  EXPECT_EQ(w.master_port, 0);
}

TEST(World, Torchrun) {
  World w = ok_world(kTorchrun);
  expect_world(w, 5, 8, 1, 4, "torchrun");
  EXPECT_EQ(w.master_addr, "node0");
  EXPECT_EQ(w.master_port, 29500);
  // The DeepSpeed launcher writes LOCAL_SIZE instead of LOCAL_WORLD_SIZE.
  Env ds = kTorchrun;
  ds.erase("LOCAL_WORLD_SIZE");
  ds["LOCAL_SIZE"] = "4";
  expect_world(ok_world(ds), 5, 8, 1, 4, "torchrun");
  // One process needs no local rank.
  expect_world(ok_world({{"RANK", "0"}, {"WORLD_SIZE", "1"}}), 0, 1, 0, 1, "torchrun");
}

TEST(World, OpenMpiSlurmPmi) {
  expect_world(ok_world(kOpenMpi), 6, 16, 6, 8, "openmpi");
  expect_world(ok_world(kSlurm), 3, 4, 1, 2, "slurm");
  expect_world(ok_world(kPmi), 2, 3, 0, 1, "pmi");
  Env nprocs = kSlurm;
  nprocs.erase("SLURM_NTASKS");
  nprocs["SLURM_NPROCS"] = "4";
  expect_world(ok_world(nprocs), 3, 4, 1, 2, "slurm");
}

TEST(World, SlurmLocalSizeFromTasksPerNode) {
  Env e = {{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "11"}, {"SLURM_LOCALID", "1"},
           {"SLURM_TASKS_PER_NODE", "4(x2),3"}, {"SLURM_NODEID", "2"}};
  expect_world(ok_world(e), 9, 11, 1, 3, "slurm");
  e["SLURM_NODEID"] = "1";
  e["SLURM_PROCID"] = "5";
  expect_world(ok_world(e), 5, 11, 1, 4, "slurm");
  // The step's list wins over the job's.
  e["SLURM_STEP_TASKS_PER_NODE"] = "2(x5),1";
  expect_world(ok_world(e), 5, 11, 1, 2, "slurm");

  e.erase("SLURM_STEP_TASKS_PER_NODE");
  e["SLURM_NODEID"] = "3";
  EXPECT_NE(error_of(e).find("lists 3 nodes, but SLURM_NODEID is 3"), std::string::npos);
  e["SLURM_NODEID"] = "0";
  e["SLURM_TASKS_PER_NODE"] = "4(2)";
  EXPECT_NE(error_of(e).find("SLURM_TASKS_PER_NODE='4(2)' is not a Slurm tasks-per-node list"),
            std::string::npos);
  e.erase("SLURM_TASKS_PER_NODE");
  EXPECT_NE(error_of(e).find("neither SLURM_NTASKS_PER_NODE"), std::string::npos);
}

TEST(World, Precedence) {
  expect_world(ok_world(merged({kPmi, kSlurm, kOpenMpi, kTorchrun})), 5, 8, 1, 4, "torchrun");
  expect_world(ok_world(merged({kPmi, kSlurm, kOpenMpi})), 6, 16, 6, 8, "openmpi");
  expect_world(ok_world(merged({kPmi, kSlurm})), 3, 4, 1, 2, "slurm");
  // salloc and sbatch set SLURM_NTASKS in a shell that is no task.
  expect_world(ok_world({{"SLURM_NTASKS", "8"}, {"SLURM_NTASKS_PER_NODE", "8"}}), 0, 1, 0, 1,
               "single");
}

TEST(World, PartialSetsAreErrors) {
  EXPECT_EQ(error_of({{"RANK", "0"}}), "torchrun environment: RANK is set but WORLD_SIZE is not");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "2"}}),
            "torchrun environment: WORLD_SIZE is set but RANK is not");
  EXPECT_EQ(error_of({{"OMPI_COMM_WORLD_SIZE", "2"}}),
            "openmpi environment: OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not");
  EXPECT_EQ(error_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}}),
            "torchrun environment: RANK and WORLD_SIZE are set but LOCAL_RANK is not, so the "
            "rank's GPU on its node is unknown");
  EXPECT_EQ(error_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}}),
            "torchrun environment: LOCAL_RANK is set but LOCAL_WORLD_SIZE is not");
  EXPECT_EQ(error_of({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "1"}}),
            "pmi environment: MPI_LOCALRANKID is set but MPI_LOCALNRANKS is not");
}

TEST(World, BadNumbersAreErrors) {
  auto with = [](const std::string &key, const std::string &value) {
    Env e = kTorchrun;
    e[key] = value;
    return e;
  };
  EXPECT_EQ(error_of(with("RANK", "abc")), "torchrun environment: RANK='abc' is not a number");
  EXPECT_EQ(error_of(with("RANK", "1x")), "torchrun environment: RANK='1x' is not a number");
  EXPECT_EQ(error_of(with("RANK", " 1")), "torchrun environment: RANK=' 1' is not a number");
  EXPECT_EQ(error_of(with("RANK", "")), "torchrun environment: RANK is set but empty");
  EXPECT_EQ(error_of(with("RANK", "-1")), "torchrun environment: RANK='-1' is negative");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "99999999999")),
            "torchrun environment: WORLD_SIZE='99999999999' is too large");
  EXPECT_EQ(error_of(with("RANK", "8")),
            "torchrun environment: RANK='8' is not less than WORLD_SIZE='8'");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "0")),
            "torchrun environment: WORLD_SIZE='0' must be at least 1");
  EXPECT_EQ(error_of(with("LOCAL_RANK", "4")),
            "torchrun environment: LOCAL_RANK='4' is not less than LOCAL_WORLD_SIZE='4'");
  EXPECT_EQ(error_of(with("LOCAL_WORLD_SIZE", "16")),
            "torchrun environment: LOCAL_WORLD_SIZE='16' is more than WORLD_SIZE='8'");
  EXPECT_EQ(error_of(with("MASTER_PORT", "0")), "MASTER_PORT='0' is not a TCP port (1-65535)");
  EXPECT_EQ(error_of(with("MASTER_PORT", "70000")),
            "MASTER_PORT='70000' is not a TCP port (1-65535)");
  EXPECT_EQ(error_of(with("MASTER_PORT", "http")), "MASTER_PORT='http' is not a number");
  Env slurm = kSlurm;
  slurm["SLURM_LOCALID"] = "2";
  EXPECT_EQ(error_of(slurm), "slurm environment: SLURM_LOCALID='2' is not less than the "
                             "Slurm tasks on this node (2)");
}

TEST(World, FromProcessEnvironment) {
  // Only when no launcher variable is set already (not under mpirun/srun).
  for (const char *v : {"RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                        "SLURM_PROCID", "PMI_RANK", "PMI_SIZE", "MASTER_PORT", "LOCAL_RANK",
                        "LOCAL_WORLD_SIZE"})
    if (std::getenv(v))
      GTEST_SKIP() << v << " is set in this environment";
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "2", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("LOCAL_WORLD_SIZE", "2", 1);
  Result<World> w = World::from_env();
  for (const char *v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"})
    unsetenv(v);
  ASSERT_TRUE(w.ok()) << w.status().message();
  expect_world(*w, 1, 2, 1, 2, "torchrun");
}

// ---------------------------------------------------------------- groups

TEST(Groups, DeepSpeedReferenceExample) {
  // reference §4.1: world 4, tp 2, rank 2 -> DP group (0,2), TP group (2,3).
  World w;
  w.rank = 2;
  w.world_size = 4;
  Result<Groups> g = make_groups(w, 2);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->dp_group, (std::vector<int>{0, 2}));
  EXPECT_EQ(g->tp_group, (std::vector<int>{2, 3}));
  EXPECT_EQ(g->tp_rank, 0);
  EXPECT_EQ(g->dp_rank, 1);
  EXPECT_EQ(g->tp_size, 2);
  EXPECT_EQ(g->dp_size, 2);
  // ... and the new_group calls, in order: DP groups then TP groups.
  EXPECT_EQ(*all_dp_groups(4, 2), (std::vector<std::vector<int>>{{0, 2}, {1, 3}}));
  EXPECT_EQ(*all_tp_groups(4, 2), (std::vector<std::vector<int>>{{0, 1}, {2, 3}}));
}

TEST(Groups, ExhaustiveWorldOf8) {
  const int world_size = 8;
  for (int tp : {1, 2, 4, 8}) {
    SCOPED_TRACE("tp " + std::to_string(tp));
    std::vector<Groups> all;
    for (int rank = 0; rank < world_size; ++rank) {
      World w;
      w.rank = rank;
      w.world_size = world_size;
      Result<Groups> g = make_groups(w, tp);
      ASSERT_TRUE(g.ok()) << g.status().message();
      EXPECT_EQ(g->tp_size, tp);
      EXPECT_EQ(g->dp_size, world_size / tp);
      ASSERT_EQ(int(g->tp_group.size()), tp);
      ASSERT_EQ(int(g->dp_group.size()), world_size / tp);
      EXPECT_EQ(g->tp_group[std::size_t(g->tp_rank)], rank);
      EXPECT_EQ(g->dp_group[std::size_t(g->dp_rank)], rank);
      // TP: contiguous; DP: strided by tp.
      for (int i = 0; i < tp; ++i)
        EXPECT_EQ(g->tp_group[std::size_t(i)], (rank / tp) * tp + i);
      for (int j = 0; j < world_size / tp; ++j)
        EXPECT_EQ(g->dp_group[std::size_t(j)], rank % tp + j * tp);
      // A TP group and a DP group meet in exactly this rank.
      std::set<int> tp_set(g->tp_group.begin(), g->tp_group.end());
      int common = 0;
      for (int r : g->dp_group)
        common += tp_set.count(r) ? 1 : 0;
      EXPECT_EQ(common, 1);
      all.push_back(*g);
    }
    // Membership is consistent: every member of my group has my group.
    for (int rank = 0; rank < world_size; ++rank) {
      for (int peer : all[std::size_t(rank)].tp_group)
        EXPECT_EQ(all[std::size_t(peer)].tp_group, all[std::size_t(rank)].tp_group);
      for (int peer : all[std::size_t(rank)].dp_group)
        EXPECT_EQ(all[std::size_t(peer)].dp_group, all[std::size_t(rank)].dp_group);
    }
    // The groups partition the world, and match all_*_groups.
    for (auto [groups, size] : {std::make_pair(*all_tp_groups(world_size, tp), tp),
                                std::make_pair(*all_dp_groups(world_size, tp), world_size / tp)}) {
      std::multiset<int> seen;
      for (const auto &grp : groups) {
        EXPECT_EQ(int(grp.size()), size);
        seen.insert(grp.begin(), grp.end());
        for (int r : grp)
          EXPECT_TRUE(all[std::size_t(r)].tp_group == grp || all[std::size_t(r)].dp_group == grp);
      }
      EXPECT_EQ(seen.size(), std::size_t(world_size));
      for (int r = 0; r < world_size; ++r)
        EXPECT_EQ(seen.count(r), 1u);
    }
  }
}

TEST(Groups, SizeMustDivideTheWorld) {
  World w;
  w.rank = 0;
  w.world_size = 6;
  EXPECT_EQ(make_groups(w, 4).status().message(),
            "tensor-parallel size 4 does not divide the world size 6");
  EXPECT_EQ(make_groups(w, 0).status().message(), "tensor-parallel size 0 must be at least 1");
  EXPECT_EQ(all_tp_groups(6, 4).status().message(),
            "tensor-parallel size 4 does not divide the world size 6");
  w.rank = 6;
  EXPECT_EQ(make_groups(w, 2).status().message(), "rank 6 is outside a world of 6");
}
