/* World::from_env and the DeepSpeed-style TP/DP groups.

   Each launcher is described by the variables it sets; the first launcher
   with its rank or size variable present is read, strictly: every number
   must be a plain non-negative decimal, and rank < size, local rank < local
   size <= size must hold. Messages name the launcher and the variables with
   their values. */
#include "atp/world.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <initializer_list>
#include <optional>

namespace atp {

namespace {

using Env = std::map<std::string, std::string>;

const std::string *lookup(const Env &env, const char *name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

/// The first of `names` that is set, or nullptr.
const char *first_set(const Env &env, std::initializer_list<const char *> names) {
  for (const char *n : names)
    if (lookup(env, n))
      return n;
  return nullptr;
}

std::string setting(const char *name, const std::string &value) {
  return std::string(name) + "=" + quote(value);
}

/// A non-negative decimal int, as launchers write them.
Result<int> parse_count(const Env &env, const char *name) {
  const std::string &v = *lookup(env, name);
  if (v.empty())
    return error(std::string(name) + " is set but empty");
  std::size_t i = v[0] == '-' ? 1 : 0;
  bool digits = i < v.size();
  for (std::size_t k = i; k < v.size(); ++k)
    digits &= v[k] >= '0' && v[k] <= '9';
  if (!digits)
    return error(setting(name, v) + " is not a number");
  if (i == 1)
    return error(setting(name, v) + " is negative");
  long long x = 0;
  for (char c : v) {
    x = x * 10 + (c - '0');
    if (x > INT_MAX)
      return error(setting(name, v) + " is too large");
  }
  return int(x);
}

/// Which variables a launcher sets. local_size may be empty (Slurm
/// computes it).
struct Launcher {
  const char *name;
  std::initializer_list<const char *> rank, size, local_rank, local_size;
  /// Whether the size variable alone selects this launcher. Not for Slurm:
  /// salloc and sbatch set SLURM_NTASKS for a shell that is no task.
  bool size_selects = true;
};

/// The number of tasks on node `node` from a Slurm tasks-per-node list
/// such as "4(x2),3": 4 tasks on each of nodes 0 and 1, 3 on node 2.
Result<int> slurm_tasks_on_node(const char *var, const std::string &list, int node) {
  auto bad = [&] {
    return error(setting(var, list) +
                 " is not a Slurm tasks-per-node list such as '4(x2),3'");
  };
  std::size_t pos = 0;
  int first_node = 0;
  while (pos < list.size()) {
    std::size_t end = list.find(',', pos);
    if (end == std::string::npos)
      end = list.size();
    std::string item = list.substr(pos, end - pos);
    long long count = 0, repeat = 1;
    std::size_t i = 0;
    auto number = [&](long long &out) {
      std::size_t start = i;
      out = 0;
      while (i < item.size() && item[i] >= '0' && item[i] <= '9' && out <= INT_MAX)
        out = out * 10 + (item[i++] - '0');
      return i > start && out <= INT_MAX;
    };
    if (!number(count))
      return bad();
    if (i < item.size()) {
      if (item.compare(i, 2, "(x") != 0)
        return bad();
      i += 2;
      if (!number(repeat) || i + 1 != item.size() || item[i] != ')')
        return bad();
    }
    if (node < first_node + repeat)
      return int(count);
    first_node += int(repeat);
    pos = end + 1;
  }
  return error(setting(var, list) + " lists " + std::to_string(first_node) +
               " nodes, but SLURM_NODEID is " + std::to_string(node));
}

Result<int> slurm_local_size(const Env &env) {
  if (lookup(env, "SLURM_NTASKS_PER_NODE"))
    return parse_count(env, "SLURM_NTASKS_PER_NODE");
  const char *list = first_set(env, {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"});
  if (!list)
    return error("neither SLURM_NTASKS_PER_NODE nor SLURM_STEP_TASKS_PER_NODE "
                 "nor SLURM_TASKS_PER_NODE is set");
  if (!lookup(env, "SLURM_NODEID"))
    return error(std::string(list) + " is set but SLURM_NODEID is not");
  ATP_ASSIGN_OR_RETURN(int node, parse_count(env, "SLURM_NODEID"));
  return slurm_tasks_on_node(list, *lookup(env, list), node);
}

Result<World> read_launcher(const Env &env, const Launcher &l) {
  const char *rank_var = first_set(env, l.rank);
  const char *size_var = first_set(env, l.size);
  if (!rank_var)
    return error(std::string(size_var) + " is set but " + *l.rank.begin() + " is not");
  if (!size_var)
    return error(std::string(rank_var) + " is set but " + *l.size.begin() + " is not");
  World w;
  w.launcher = l.name;
  ATP_ASSIGN_OR_RETURN(w.rank, parse_count(env, rank_var));
  ATP_ASSIGN_OR_RETURN(w.world_size, parse_count(env, size_var));
  if (w.world_size < 1)
    return error(setting(size_var, *lookup(env, size_var)) + " must be at least 1");
  if (w.rank >= w.world_size)
    return error(setting(rank_var, *lookup(env, rank_var)) + " is not less than " +
                 setting(size_var, *lookup(env, size_var)));

  const char *local_rank_var = first_set(env, l.local_rank);
  const char *local_size_var = l.local_size.size() ? first_set(env, l.local_size) : nullptr;
  if (!local_rank_var) {
    if (w.world_size == 1) {
      w.local_rank = 0;
      w.local_world_size = 1;
      return w;
    }
    return error(std::string(rank_var) + " and " + size_var + " are set but " +
                 *l.local_rank.begin() +
                 " is not, so the rank's GPU on its node is unknown");
  }
  ATP_ASSIGN_OR_RETURN(w.local_rank, parse_count(env, local_rank_var));
  std::string local_size_name;
  if (l.local_size.size() == 0) {
    ATP_ASSIGN_OR_RETURN(w.local_world_size, slurm_local_size(env));
    local_size_name = "the Slurm tasks on this node (" + std::to_string(w.local_world_size) + ")";
  } else if (local_size_var) {
    ATP_ASSIGN_OR_RETURN(w.local_world_size, parse_count(env, local_size_var));
    local_size_name = setting(local_size_var, *lookup(env, local_size_var));
  } else if (w.world_size == 1) {
    w.local_world_size = 1;
    local_size_name = "1";
  } else {
    return error(std::string(local_rank_var) + " is set but " + *l.local_size.begin() +
                 " is not");
  }
  if (w.local_world_size < 1)
    return error(local_size_name + " must be at least 1");
  if (w.local_rank >= w.local_world_size)
    return error(setting(local_rank_var, *lookup(env, local_rank_var)) +
                 " is not less than " + local_size_name);
  if (w.local_world_size > w.world_size)
    return error(local_size_name + " is more than " +
                 setting(size_var, *lookup(env, size_var)));
  return w;
}

const char *const kNames[] = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "LOCAL_SIZE",
    "MASTER_ADDR", "MASTER_PORT",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_LOCALID",
    "SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
    "SLURM_NODEID",
    "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
};

} // namespace

Result<World> World::from_env(const Env &env) {
  static const Launcher launchers[] = {
      {"torchrun", {"RANK"}, {"WORLD_SIZE"}, {"LOCAL_RANK"}, {"LOCAL_WORLD_SIZE", "LOCAL_SIZE"}},
      {"openmpi", {"OMPI_COMM_WORLD_RANK"}, {"OMPI_COMM_WORLD_SIZE"},
       {"OMPI_COMM_WORLD_LOCAL_RANK"}, {"OMPI_COMM_WORLD_LOCAL_SIZE"}},
      {"slurm", {"SLURM_PROCID"}, {"SLURM_NTASKS", "SLURM_NPROCS"}, {"SLURM_LOCALID"}, {}, false},
      {"pmi", {"PMI_RANK"}, {"PMI_SIZE"}, {"MPI_LOCALRANKID"}, {"MPI_LOCALNRANKS"}},
  };
  World w;
  bool found = false;
  for (const Launcher &l : launchers) {
    if (!first_set(env, l.rank) && !(l.size_selects && first_set(env, l.size)))
      continue;
    Result<World> r = read_launcher(env, l);
    if (!r.ok())
      return r.status().with_context(std::string(l.name) + " environment");
    w = std::move(r).value();
    found = true;
    break;
  }
  if (!found)
    w = World();

  if (const std::string *addr = lookup(env, "MASTER_ADDR"))
    w.master_addr = *addr;
  if (const std::string *port = lookup(env, "MASTER_PORT")) {
    Result<int> p = parse_count(env, "MASTER_PORT");
    if (!p.ok())
      return p.status();
    if (*p < 1 || *p > 65535)
      return error(setting("MASTER_PORT", *port) + " is not a TCP port (1-65535)");
    w.master_port = *p;
  }
  return w;
}

Result<World> World::from_env() {
  Env env;
  for (const char *name : kNames)
    if (const char *v = std::getenv(name))
      env[name] = v;
  return from_env(env);
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "unknown";
  return buf;
}

// ---------------------------------------------------------------- groups

namespace {
Status check_split(int world_size, int tp_size) {
  if (world_size < 1)
    return error("world size " + std::to_string(world_size) + " must be at least 1");
  if (tp_size < 1)
    return error("tensor-parallel size " + std::to_string(tp_size) +
                 " must be at least 1");
  if (world_size % tp_size != 0)
    return error("tensor-parallel size " + std::to_string(tp_size) +
                 " does not divide the world size " + std::to_string(world_size));
  return Status();
}

std::vector<int> tp_group(int k, int tp) {
  std::vector<int> g;
  for (int i = 0; i < tp; ++i)
    g.push_back(k * tp + i);
  return g;
}

std::vector<int> dp_group(int r, int tp, int world_size) {
  std::vector<int> g;
  for (int rank = r; rank < world_size; rank += tp)
    g.push_back(rank);
  return g;
}
} // namespace

Result<Groups> make_groups(const World &world, int tp_size) {
  ATP_TRY(check_split(world.world_size, tp_size));
  if (world.rank < 0 || world.rank >= world.world_size)
    return error("rank " + std::to_string(world.rank) + " is outside a world of " +
                 std::to_string(world.world_size));
  Groups g;
  g.tp_size = tp_size;
  g.dp_size = world.world_size / tp_size;
  g.tp_rank = world.rank % tp_size;
  g.dp_rank = world.rank / tp_size;
  g.tp_group = tp_group(g.dp_rank, tp_size);
  g.dp_group = dp_group(g.tp_rank, tp_size, world.world_size);
  return g;
}

Result<std::vector<std::vector<int>>> all_tp_groups(int world_size, int tp_size) {
  ATP_TRY(check_split(world_size, tp_size));
  std::vector<std::vector<int>> groups;
  for (int k = 0; k < world_size / tp_size; ++k)
    groups.push_back(tp_group(k, tp_size));
  return groups;
}

Result<std::vector<std::vector<int>>> all_dp_groups(int world_size, int tp_size) {
  ATP_TRY(check_split(world_size, tp_size));
  std::vector<std::vector<int>> groups;
  for (int r = 0; r < tp_size; ++r)
    groups.push_back(dp_group(r, tp_size, world_size));
  return groups;
}

} // namespace atp
