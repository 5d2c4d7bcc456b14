/* comm_common.cpp - what both backends of Comm share: who this process is, the timeout, group checks.

   The checks of a group (non-empty, distinct ranks inside the world, holding this process) and of a call's
   arguments, and the description of a call in messages, are the same on MPI and NCCL. The rank comes from MPI when it is active, else from the
   launcher's environment (World::from_env), so labels and checks also work under torchrun without MPI. */
#include "atp/comm.h"
#include "atp/world.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace atp {

namespace comm_detail {

Status global_rank_and_size(int *rank, int *world_size) {
  if (mpi_active()) {
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, world_size);
    return {};
  }
  Result<World> world = World::from_env();
  if (!world.ok())
    return world.status();
  *rank = world->rank;
  *world_size = world->world_size;
  return {};
}

std::string group_string(const std::vector<int> &ranks) {
  std::string s = "[";
  std::size_t n = ranks.size(), shown = n <= 16 ? n : 4;
  for (std::size_t i = 0; i < shown; ++i)
    s += (i ? "," : "") + std::to_string(ranks[i]);
  if (shown < n)
    s += ",...," + std::to_string(ranks.back()) + "] (" + std::to_string(n) + " ranks)";
  else
    s += "]";
  return s;
}

Status check_group(const char *call, const std::vector<int> &ranks, int global_rank, int world_size) {
  std::string where = std::string(call) + ": group " + group_string(ranks);
  if (ranks.empty())
    return error(std::string(call) + ": the group is empty");
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() < 0 || sorted.back() >= world_size)
    return error(where + " has rank " + std::to_string(sorted.front() < 0 ? sorted.front() : sorted.back()) +
                 ", outside the world of " + std::to_string(world_size) + " ranks");
  auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    return error(where + " lists rank " + std::to_string(*dup) + " twice");
  if (!std::binary_search(sorted.begin(), sorted.end(), global_rank))
    return error(where + " does not hold this process (global rank " + std::to_string(global_rank) +
                 "); only a group's members create its communicator");
  return {};
}

bool overlaps(const void *a, std::size_t an, const void *b, std::size_t bn) {
  auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return an && bn && pa < pb + bn && pb < pa + an;
}

} // namespace comm_detail

double comm_timeout_s() {
  const char *v = std::getenv("ATP_COMM_TIMEOUT_S");
  if (!v || !*v)
    return 300;
  char *end = nullptr;
  double t = std::strtod(v, &end);
  if (*end != '\0' || !std::isfinite(t) || t < 0) {
    static bool warned = false;
    if (!warned)
      std::fprintf(stderr, "atp: warning: ATP_COMM_TIMEOUT_S='%s' is not a number of seconds >= 0; using 300\n", v);
    warned = true;
    return 300;
  }
  return t;
}

std::string process_label() {
  int rank = -1, size = 0;
  std::string r =
      comm_detail::global_rank_and_size(&rank, &size).ok() ? std::to_string(rank) + "/" + std::to_string(size) : "?";
  return "rank " + r + " (host " + host_name() + ")";
}

Status Comm::check_args(const char *call, const void *send, const void *recv, std::size_t count, DType dtype) const {
  if (!comm_supports(dtype))
    return error(std::string(call) + ": dtype " + dtype_name(dtype) + " is not supported by comms");
  if (count > 0 && (!send || !recv))
    return error(std::string(call) + ": null buffer for " + std::to_string(count) + " elements");
  return {};
}

std::string Comm::describe_call(const char *call, std::size_t count, DType dtype, const char *op,
                                const std::string &where) const {
  std::string s = call;
  if (count)
    s += std::string("(") + std::to_string(count) + " x " + dtype_name(dtype) + (op ? std::string(", ") + op : "") +
         ")";
  return s + " on group " + comm_detail::group_string(ranks()) + " (group rank " + std::to_string(rank()) + "/" +
         std::to_string(size()) + where + ")";
}

} // namespace atp
