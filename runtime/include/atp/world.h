/* World and Groups: who this process is, and its TP and DP groups.

   World::from_env reads the rank layout that the launcher put in the
   environment, trying launchers in a fixed order of precedence (the first
   one whose variables are present wins; partial or inconsistent settings
   are errors, never guesses):

     torchrun  RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE (or LOCAL_SIZE, as
               the DeepSpeed launcher writes it)
     OpenMPI   OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}
     Slurm     SLURM_PROCID SLURM_NTASKS (or SLURM_NPROCS) SLURM_LOCALID and
               SLURM_NTASKS_PER_NODE, else this node's count in
               SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE ("4(x2),3")
               at SLURM_NODEID
     PMI       PMI_RANK PMI_SIZE MPI_LOCALRANKID MPI_LOCALNRANKS (MPICH and
               Intel MPI's hydra)
     single    rank 0 of 1

   MASTER_ADDR and MASTER_PORT are read whatever the launcher (empty and 0
   when unset). The local rank and size are required unless the world has
   one process: guessing them would put two ranks on one GPU.

   make_groups splits the world as DeepSpeed's AutoTP does (reference
   deepspeed-autotp.md §4.1): a (dp, tp) row-major mesh, so TP groups are
   contiguous ranks {k·tp, ..., k·tp+tp-1} and DP groups are strided
   {r, r+tp, r+2·tp, ...}. */
#pragma once

#include "atp/status.h"

#include <map>
#include <string>
#include <vector>

namespace atp {

struct World {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr; ///< "" when MASTER_ADDR is unset
  int master_port = 0;     ///< 0 when MASTER_PORT is unset
  /// Which launcher's variables were used: "torchrun", "openmpi", "slurm",
  /// "pmi" or "single".
  std::string launcher = "single";

  /// Reads the process environment (see the top of this file).
  static Result<World> from_env();
  /// The same from a given set of variables (for tests).
  static Result<World> from_env(const std::map<std::string, std::string> &env);
};

/// This host's name (gethostname), "unknown" if that fails.
std::string host_name();

/// This rank's place in the (dp, tp) mesh.
struct Groups {
  int tp_size = 1, dp_size = 1;
  int tp_rank = 0, dp_rank = 0;
  std::vector<int> tp_group; ///< global ranks, ascending; tp_group[tp_rank] == rank
  std::vector<int> dp_group; ///< global ranks, ascending; dp_group[dp_rank] == rank
};

/// This rank's groups; fails unless 1 <= tp_size and tp_size divides the
/// world size.
Result<Groups> make_groups(const World &world, int tp_size);

/// Every TP group (index k: ranks k·tp ... k·tp+tp-1), or every DP group
/// (index r: ranks r, r+tp, ...), of a world; for creating communicators
/// collectively. Same conditions as make_groups.
Result<std::vector<std::vector<int>>> all_tp_groups(int world_size, int tp_size);
Result<std::vector<std::vector<int>>> all_dp_groups(int world_size, int tp_size);

} // namespace atp
