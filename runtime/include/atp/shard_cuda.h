/* shard_cuda.h - shard and gather copies on the device, driven by a generated ParamPlan.

   The device twins of shard_copy / gather_copy (atp/shard.h): the same boxes, the same local layout (boxes
   concatenated along concat_dim), the same bytes. `full` and `local` are device pointers (or any pointers the
   device can address) that do not overlap; `full` holds the whole tensor row-major, `local` the rank's
   local_nbytes(p, rank) bytes. Every split is handled: replicated (one box, the whole tensor), column
   (fused sub-parameter boxes such as gate_up [2, -1] or GQA qkv [[q, kv, kv], -1], stacked by rows), row
   (column bands, side by side in each local row) and 1-D tensors ([n, 1] in the 2-D view).

   One kernel launch per parameter, asynchronous on `stream`: each box is one strided 2-D copy, a "run" (a
   box whose rows are contiguous on both sides collapses to one flat row), all runs in the launch's
   arguments. The access unit is the widest of 16, 8, 4, 2, 1 bytes that divides both pointers and every
   offset, width and row pitch of the runs, so bf16 weights of usual sizes move in 16-byte vectors and odd
   shapes or offset pointers still copy correctly, element by element. Launch errors are returned; the copy
   itself is checked by the next synchronising call on the stream, as with cudaMemcpyAsync.

   The second half states how a copy is laid out (device_copy_plan, run_unit): the kernel uses exactly
   these, so a host test can replay a launch unit by unit and compare it with shard_copy on any plan. */
#pragma once

#include "atp/plan.h"
#include "atp/status.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace atp {

/// Copies rank `rank`'s boxes of `full` into `local`, on `stream`.
Status shard_copy_device(const ParamPlan &p, int rank, const void *full, void *local, cudaStream_t stream);

/// Writes rank `rank`'s `local` tensor into its boxes of `full`, on `stream`; bytes of `full` outside the
/// rank's boxes are not touched.
Status gather_copy_device(const ParamPlan &p, int rank, const void *local, void *full, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------------------
// the layout of a copy

/// One box as a strided 2-D copy, in access units: unit i (0 <= i < count) lies in row i / width, and a
/// row starts `src_pitch` units after the previous one in the source, `dst_pitch` in the destination.
/// A run with width == count is one flat row (its pitches are unused).
struct CopyRun {
  std::uint64_t src, dst;             ///< the first unit of the first row
  std::uint64_t src_pitch, dst_pitch; ///< between rows
  std::uint64_t width;                ///< units per row
  std::uint64_t count;                ///< units in all
};

/// What one shard_copy_device (to_local) or gather_copy_device call copies: the access unit in bytes
/// (0 when there is nothing to copy) and rank `rank`'s boxes as runs in that unit, in local order.
struct CopyPlan {
  int unit = 0;
  std::vector<CopyRun> runs;
};
CopyPlan device_copy_plan(const ParamPlan &p, int rank, bool to_local, const void *full, const void *local);

/// The source and destination offsets, in units, of unit i of `run` (the kernel's per-unit arithmetic).
__host__ __device__ inline void run_unit(const CopyRun &run, std::uint64_t i, std::uint64_t &from, std::uint64_t &to) {
  std::uint64_t row = 0;
  if (run.width != run.count) // i / width, in 32 bits when both fit (a 64-bit division costs several times more)
    row = ((i | run.width) >> 32) == 0 ? std::uint32_t(i) / std::uint32_t(run.width) : i / run.width;
  const std::uint64_t col = i - row * run.width;
  from = run.src + row * run.src_pitch + col;
  to = run.dst + row * run.dst_pitch + col;
}

} // namespace atp
