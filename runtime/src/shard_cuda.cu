/* shard_cuda.cu - shard and gather copies on the device (see atp/shard_cuda.h).

   device_copy_plan turns a rank's boxes into runs (strided 2-D copies) and picks the access unit; all
   runs of a parameter travel by value in one launch of copy_runs_kernel, a grid-stride copy specialised on
   the access type (16-byte uint4 down to single bytes). Each thread loads kUnroll units before storing
   them, so that enough bytes are in flight to keep HBM busy. The walk over boxes is for_each_shard_run's
   (atp/shard.h), one run per box instead of one memcpy per row. */
#include "atp/shard_cuda.h"

#include "atp/check_cuda.h"

#include <atomic>
#include <string>

namespace atp {

namespace {

constexpr int kMaxRuns = 32;  // runs per launch; a parameter with more boxes (no real plan has) takes more
constexpr int kThreads = 256; // per block
constexpr int kUnroll = 4;    // units in flight per thread
constexpr int kMaxDevices = 64;

/// A launch's runs, passed by value (kernel parameter space, 1.5 KiB).
struct Runs {
  int n = 0;
  CopyRun run[kMaxRuns];
};

// ---------------------------------------------------------------------------------------------------------
// kernels

template <class V>
__global__ void __launch_bounds__(kThreads)
    copy_runs_kernel(const Runs runs, const V *__restrict__ src, V *__restrict__ dst) {
  const std::uint64_t stride = std::uint64_t(gridDim.x) * blockDim.x;
  const std::uint64_t first = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int r = 0; r < runs.n; ++r) {
    const CopyRun &run = runs.run[r];
    for (std::uint64_t i0 = first; i0 < run.count; i0 += kUnroll * stride) {
      V v[kUnroll];
      std::uint64_t to[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        std::uint64_t from = 0;
        to[u] = 0;
        if (i0 + u * stride < run.count) {
          run_unit(run, i0 + u * stride, from, to[u]);
          v[u] = src[from];
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (i0 + u * stride < run.count)
          dst[to[u]] = v[u];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// launchers

/// How many blocks of copy_runs_kernel<V> the current device holds at once: asked once per device (a
/// kernel's occupancy does not change), so that a launch costs little more host time than a memcpy.
template <class V> Status resident_blocks(std::uint64_t &blocks) {
  static std::atomic<std::uint64_t> known[kMaxDevices]; // 0: not asked yet
  int device = 0, sms = 0, per_sm = 0;
  ATP_CUDA_TRY(cudaGetDevice(&device));
  if (device < kMaxDevices && (blocks = known[device].load(std::memory_order_relaxed)) != 0)
    return Status();
  ATP_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  ATP_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, copy_runs_kernel<V>, kThreads, 0));
  blocks = std::uint64_t(sms > 0 ? sms : 1) * std::uint64_t(per_sm > 0 ? per_sm : 1);
  if (device < kMaxDevices)
    known[device].store(blocks, std::memory_order_relaxed);
  return Status();
}

template <class V> Status copy_runs(const Runs &runs, const void *src, void *dst, cudaStream_t stream) {
  std::uint64_t most = 0, resident = 0;
  for (int r = 0; r < runs.n; ++r)
    most = runs.run[r].count > most ? runs.run[r].count : most;
  ATP_TRY(resident_blocks<V>(resident));
  // Enough blocks for the largest run, at most one resident wave (the kernel strides over the grid).
  const std::uint64_t per_block = std::uint64_t(kThreads) * kUnroll;
  const std::uint64_t needed = (most + per_block - 1) / per_block;
  const unsigned blocks = unsigned(needed < resident ? needed : resident);
  copy_runs_kernel<V><<<blocks, kThreads, 0, stream>>>(runs, static_cast<const V *>(src), static_cast<V *>(dst));
  ATP_CUDA_TRY(cudaGetLastError());
  return Status();
}

/// copy_runs with an access unit of `unit` bytes.
Status copy_runs_as(int unit, const Runs &runs, const void *src, void *dst, cudaStream_t stream) {
  switch (unit) {
  case 16:
    return copy_runs<uint4>(runs, src, dst, stream);
  case 8:
    return copy_runs<uint2>(runs, src, dst, stream);
  case 4:
    return copy_runs<std::uint32_t>(runs, src, dst, stream);
  case 2:
    return copy_runs<std::uint16_t>(runs, src, dst, stream);
  default:
    return copy_runs<std::uint8_t>(runs, src, dst, stream);
  }
}

/// A shard (to_local: src is the full tensor, dst the local one) or gather copy (the other way round).
Status copy_device(const char *what, const ParamPlan &p, int rank, bool to_local, const void *src, void *dst,
                   cudaStream_t stream) {
  auto where = [&] {
    return std::string(what) + ": " + quote(p.name ? p.name : "") + " TP rank " + std::to_string(rank);
  };
  if (rank < 0)
    return error(where() + ": negative TP rank");
  const CopyPlan plan = device_copy_plan(p, rank, to_local, to_local ? src : dst, to_local ? dst : src);
  if (plan.runs.empty())
    return Status();
  if (!src || !dst)
    return error(where() + ": null pointer");
  for (std::size_t r0 = 0; r0 < plan.runs.size(); r0 += kMaxRuns) {
    Runs batch;
    batch.n = int(plan.runs.size() - r0 < std::size_t(kMaxRuns) ? plan.runs.size() - r0 : kMaxRuns);
    for (int r = 0; r < batch.n; ++r)
      batch.run[r] = plan.runs[r0 + std::size_t(r)];
    Status s = copy_runs_as(plan.unit, batch, src, dst, stream);
    if (!s.ok())
      return s.with_context(where());
  }
  return Status();
}

} // namespace

CopyPlan device_copy_plan(const ParamPlan &p, int rank, bool to_local, const void *full, const void *local) {
  CopyPlan plan;
  if (rank < 0)
    return plan;
  const std::uint64_t elem = dtype_size(p.dtype);
  const RankShard &rs = p.ranks[rank];
  const std::uint64_t full_row = std::uint64_t(p.cols) * elem, local_row = std::uint64_t(rs.cols) * elem;
  // Every byte offset, pitch and width used, OR-ed: its lowest set bit bounds the access unit.
  std::uint64_t bits = reinterpret_cast<std::uintptr_t>(full) | reinterpret_cast<std::uintptr_t>(local);
  std::uint64_t local_base = 0; // rows (concat_dim 0) or bytes into a local row (concat_dim 1)
  for (int b = 0; b < rs.count; ++b) {
    const Box &box = p.boxes[rs.first + b];
    const std::uint64_t width = std::uint64_t(box.cols.end - box.cols.begin) * elem;
    const std::uint64_t rows = std::uint64_t(box.rows.end - box.rows.begin);
    const std::uint64_t full_off = std::uint64_t(box.rows.begin) * full_row + std::uint64_t(box.cols.begin) * elem;
    const std::uint64_t local_off = p.concat_dim == 0 ? local_base * local_row : local_base;
    local_base += p.concat_dim == 0 ? rows : width;
    if (width == 0 || rows == 0)
      continue;
    CopyRun run;
    run.src = to_local ? full_off : local_off;
    run.dst = to_local ? local_off : full_off;
    run.src_pitch = to_local ? full_row : local_row;
    run.dst_pitch = to_local ? local_row : full_row;
    run.count = rows * width;
    run.width = rows == 1 || (width == full_row && width == local_row) ? run.count : width;
    if (run.width != run.count)
      bits |= run.src_pitch | run.dst_pitch;
    bits |= run.src | run.dst | run.width;
    plan.runs.push_back(run);
  }
  if (plan.runs.empty())
    return plan;
  const std::uint64_t low = bits & (~bits + 1); // lowest set bit; 0 when bits is 0
  plan.unit = low == 0 || low >= 16 ? 16 : int(low);
  for (CopyRun &run : plan.runs) {
    run.src /= std::uint64_t(plan.unit), run.dst /= std::uint64_t(plan.unit);
    run.src_pitch /= std::uint64_t(plan.unit), run.dst_pitch /= std::uint64_t(plan.unit);
    run.width /= std::uint64_t(plan.unit), run.count /= std::uint64_t(plan.unit);
  }
  return plan;
}

Status shard_copy_device(const ParamPlan &p, int rank, const void *full, void *local, cudaStream_t stream) {
  return copy_device("shard_copy_device", p, rank, true, full, local, stream);
}

Status gather_copy_device(const ParamPlan &p, int rank, const void *local, void *full, cudaStream_t stream) {
  return copy_device("gather_copy_device", p, rank, false, local, full, stream);
}

} // namespace atp
