/* backend.cpp - one rank's kernels, ops and tensor collectives (backend.h). */
#include "atp/backend.h"

#include "atp/comm_staged.h"

#include <cstdlib>
#include <vector>

namespace atp {

Result<DeviceKind> parse_device_kind(const std::string &text) {
  if (text == "auto")
    return DeviceKind::Auto;
  if (text == "cpu")
    return DeviceKind::Cpu;
  if (text == "cuda")
    return DeviceKind::Cuda;
  return error("--device " + text + ": expected auto, cpu or cuda");
}

namespace {

/// True when another rank of `group` (global ranks) runs on the same GPU as this one.
bool shares_gpu(const std::vector<std::string> &uuids, const std::vector<int> &group, int me) {
  for (int r : group)
    if (r != me && uuids[std::size_t(r)] == uuids[std::size_t(me)])
      return true;
  return false;
}

Result<Backend> make_cuda_backend(DType dtype, const World &world, const Groups &g, Comm &host_world) {
  Backend b;
  b.kind = DeviceKind::Cuda;
  ATP_ASSIGN_OR_RETURN(b.device, CudaDevice::open(world.local_rank));
  ATP_ASSIGN_OR_RETURN(b.kernels, make_cuda_kernels(dtype, b.device->stream()));
  ATP_ASSIGN_OR_RETURN(b.ops, make_cuda_ops(b.device->stream()));
  ATP_ASSIGN_OR_RETURN(b.engine_ops, make_cuda_ops(b.device->engine_stream()));
  ATP_ASSIGN_OR_RETURN(b.tp_ops, make_cuda_ops(b.device->tp_stream()));
  // Every rank's GPU, to see whether NCCL can serve the groups (it refuses two ranks on one GPU).
  std::vector<char> all(std::size_t(host_world.size()) * 16);
  ATP_TRY(host_world.all_gather(b.device->uuid().data(), all.data(), 16, DType::U8));
  std::vector<std::string> uuids;
  for (int r = 0; r < host_world.size(); ++r)
    uuids.emplace_back(all.data() + std::size_t(r) * 16, 16);
  const bool tp_shared = shares_gpu(uuids, g.tp_group, world.rank);
  const bool dp_shared = shares_gpu(uuids, g.dp_group, world.rank);
  // Every rank takes the same path for each group kind (NCCL and MPI creation must not mix).
  std::int32_t shared = tp_shared || dp_shared;
  ATP_TRY(host_world.all_reduce(&shared, &shared, 1, DType::I32, ReduceOp::Max));
  if (shared) {
    ATP_ASSIGN_OR_RETURN(auto tp, make_host_comm(g.tp_group));
    ATP_ASSIGN_OR_RETURN(auto dp, make_host_comm(g.dp_group));
    b.tp = make_staged_comm(std::move(tp), *b.tp_ops);
    b.dp = make_staged_comm(std::move(dp), *b.engine_ops);
  } else {
    // The TP comm (TP stream) and the DP comm (engine's stream) may both have work in flight. NCCL's
    // kernels block until their peers arrive, so two communicators on one GPU can deadlock if the GPUs run
    // them in different orders; this makes NCCL order them on the device as the host launched them (the same
    // program order on every rank). A user's own setting wins.
    setenv("NCCL_LAUNCH_ORDER_IMPLICIT", "1", /*overwrite=*/0);
    NcclCommOptions o;
    o.stream = b.device->tp_stream();
    o.device = b.device->index();
    o.global_rank = world.rank;
    ATP_ASSIGN_OR_RETURN(b.tp, make_nccl_comm(g.tp_group, o));
    o.stream = b.device->engine_stream();
    ATP_ASSIGN_OR_RETURN(b.dp, make_nccl_comm(g.dp_group, o));
  }
  b.description = std::string(dtype_name(dtype)) + " CUDA, " + b.device->name() + " (device " +
                  std::to_string(b.device->index()) + "), " +
                  (shared ? "ranks share a GPU: collectives through MPI (slow, for tests)" : "NCCL");
  return b;
}

} // namespace

Result<Backend> make_backend(DeviceKind kind, DType dtype, const World &world, const Groups &groups,
                             Comm &host_world, int cpu_threads) {
  if (kind == DeviceKind::Auto) {
    // cuda only when every rank has a GPU and this runtime has the CUDA kernels.
    std::int32_t gpus = cuda_device_count();
    ATP_TRY(host_world.all_reduce(&gpus, &gpus, 1, DType::I32, ReduceOp::Min));
    kind = gpus > 0 && nccl_available() ? DeviceKind::Cuda : DeviceKind::Cpu;
  }
  if (kind == DeviceKind::Cuda)
    return make_cuda_backend(dtype, world, groups, host_world);
  Backend b;
  b.kind = DeviceKind::Cpu;
  ATP_ASSIGN_OR_RETURN(b.kernels, make_cpu_kernels(dtype, cpu_threads));
  b.ops = make_cpu_ops();
  b.description = std::string(dtype_name(dtype)) + " CPU, " + std::to_string(cpu_threads) + " BLAS thread" +
                  (cpu_threads == 1 ? "" : "s") + " per rank";
  return b;
}

} // namespace atp
