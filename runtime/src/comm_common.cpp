/* comm_common.cpp - what both backends of Comm share: who this process is, the timeout, group checks.

   The checks of a group (non-empty, distinct ranks inside the world, holding this process) and of a call's
   arguments, and the description of a call in messages, are the same on MPI and NCCL. The rank comes from MPI when it is active, else from the
   launcher's environment (World::from_env), so labels and checks also work under torchrun without MPI. */
#include "atp/comm.h"
#include "atp/world.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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

namespace {

template <class T> void divide_as(void *buf, std::size_t count, int n) {
  T *p = static_cast<T *>(buf);
  for (std::size_t i = 0; i < count; ++i)
    p[i] = static_cast<T>(p[i] / static_cast<T>(n));
}

template <class T> T combine(T a, T b, ReduceOp op) {
  switch (op) {
  case ReduceOp::Max:
    return b > a ? b : a;
  case ReduceOp::Min:
    return b < a ? b : a;
  default: // Sum, and Avg's sum
    return static_cast<T>(a + b);
  }
}

template <class T> void reduce_as(void *acc, const void *x, std::size_t count, ReduceOp op) {
  T *a = static_cast<T *>(acc);
  const T *b = static_cast<const T *>(x);
  for (std::size_t i = 0; i < count; ++i)
    a[i] = combine(a[i], b[i], op);
}

/// 16-bit floats: in float, rounded back at every step.
template <float (*Widen)(std::uint16_t), std::uint16_t (*Narrow)(float)>
void reduce_16(void *acc, const void *x, std::size_t count, ReduceOp op) {
  auto *a = static_cast<std::uint16_t *>(acc);
  const auto *b = static_cast<const std::uint16_t *>(x);
  for (std::size_t i = 0; i < count; ++i)
    a[i] = Narrow(combine(Widen(a[i]), Widen(b[i]), op));
}

} // namespace

void divide_for_average(void *buf, std::size_t count, DType dtype, int n) {
  auto *h = static_cast<std::uint16_t *>(buf);
  switch (dtype) {
  case DType::F32:
    return divide_as<float>(buf, count, n);
  case DType::F64:
    return divide_as<double>(buf, count, n);
  case DType::I32:
    return divide_as<std::int32_t>(buf, count, n);
  case DType::U32:
    return divide_as<std::uint32_t>(buf, count, n);
  case DType::I64:
    return divide_as<std::int64_t>(buf, count, n);
  case DType::U64:
    return divide_as<std::uint64_t>(buf, count, n);
  case DType::I8:
    return divide_as<std::int8_t>(buf, count, n);
  case DType::U8:
    return divide_as<std::uint8_t>(buf, count, n);
  case DType::BF16:
    for (std::size_t i = 0; i < count; ++i)
      h[i] = float_to_bf16(bf16_to_float(h[i]) / static_cast<float>(n));
    return;
  case DType::F16:
    for (std::size_t i = 0; i < count; ++i)
      h[i] = float_to_f16(f16_to_float(h[i]) / static_cast<float>(n));
    return;
  default:
    return;
  }
}

void reduce_into(void *acc, const void *x, std::size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
  case DType::F32:
    return reduce_as<float>(acc, x, count, op);
  case DType::F64:
    return reduce_as<double>(acc, x, count, op);
  case DType::I32:
    return reduce_as<std::int32_t>(acc, x, count, op);
  case DType::U32:
    return reduce_as<std::uint32_t>(acc, x, count, op);
  case DType::I64:
    return reduce_as<std::int64_t>(acc, x, count, op);
  case DType::U64:
    return reduce_as<std::uint64_t>(acc, x, count, op);
  case DType::I8:
    return reduce_as<std::int8_t>(acc, x, count, op);
  case DType::U8:
    return reduce_as<std::uint8_t>(acc, x, count, op);
  case DType::BF16:
    return reduce_16<bf16_to_float, float_to_bf16>(acc, x, count, op);
  case DType::F16:
    return reduce_16<f16_to_float, float_to_f16>(acc, x, count, op);
  default:
    return;
  }
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

// ---------------------------------------------------------------------------------------------------------
// host meshes

namespace {

/// Every TP group, then every DP group, then the world, each rank joining only its own.
template <class Make> Result<HostMesh> make_mesh(int world_rank, int world_size, int tp_size, Make make) {
  World w;
  w.rank = world_rank, w.world_size = world_size;
  ATP_ASSIGN_OR_RETURN(const Groups g, make_groups(w, tp_size));
  HostMesh mesh;
  ATP_ASSIGN_OR_RETURN(const auto tps, all_tp_groups(world_size, tp_size));
  for (const auto &group : tps)
    if (group == g.tp_group) {
      ATP_ASSIGN_OR_RETURN(mesh.tp, make(group));
    }
  ATP_ASSIGN_OR_RETURN(const auto dps, all_dp_groups(world_size, tp_size));
  for (const auto &group : dps)
    if (group == g.dp_group) {
      ATP_ASSIGN_OR_RETURN(mesh.dp, make(group));
    }
  std::vector<int> everyone(static_cast<std::size_t>(world_size));
  for (int r = 0; r < world_size; ++r)
    everyone[std::size_t(r)] = r;
  ATP_ASSIGN_OR_RETURN(mesh.world, make(everyone));
  return mesh;
}

} // namespace

Result<HostMesh> make_mpi_mesh(int world_rank, int world_size, int tp_size) {
  return make_mesh(world_rank, world_size, tp_size, [](const std::vector<int> &r) { return make_mpi_comm(r); });
}

Result<HostMesh> make_tcp_mesh(int world_rank, int world_size, int tp_size) {
  return make_mesh(world_rank, world_size, tp_size, [](const std::vector<int> &r) { return make_tcp_comm(r); });
}

bool launch_uses_mpi(const std::string &launcher) { return launcher != "torchrun"; }

Result<std::unique_ptr<Comm>> make_host_comm(const std::vector<int> &ranks) {
  return mpi_active() ? make_mpi_comm(ranks) : make_tcp_comm(ranks);
}

Result<HostMesh> make_host_mesh(int world_rank, int world_size, int tp_size) {
  return mpi_active() ? make_mpi_mesh(world_rank, world_size, tp_size) : make_tcp_mesh(world_rank, world_size, tp_size);
}

} // namespace atp
