/* shard_cuda_check.h - one parameter's device shard and gather copies against the host ones.

   check_shard_param is the whole check of shard_cuda_test (generated plans) and shard_cuda_edge_test
   (hand-made plans): the full tensor is filled on the device with values from (seed, tag, element index);
   for each TP rank, shard_copy_device's local tensor, copied back, must equal byte for byte shard_copy of
   the same full tensor on the host (the local buffer starts as the bitwise NOT of that answer, so a byte the
   kernel forgets cannot match by luck, and a guard after it must stay untouched); then gather_copy_device of
   every rank's device shard into a full buffer poisoned with 0x00, and again with 0xFF, must equal the
   original on the device (every byte written, with the right value), with the guard after it untouched.
   Pointers can be offset from their allocation to force narrower access units. */
#pragma once

#include "atp/plan.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace atp::gpucheck {

/// Device and pinned host buffers for parameters of up to `capacity` bytes (plus offsets and guards).
struct ShardCheckBuffers {
  explicit ShardCheckBuffers(std::size_t capacity); // exits through fail() when out of memory
  ~ShardCheckBuffers();
  ShardCheckBuffers(const ShardCheckBuffers &) = delete;
  ShardCheckBuffers &operator=(const ShardCheckBuffers &) = delete;

  std::size_t capacity = 0;
  std::byte *full = nullptr, *gathered = nullptr, *local = nullptr; // device
  std::byte *host_full = nullptr, *host_local = nullptr;            // pinned
  std::vector<std::byte> expected;
};

struct ShardCheckOptions {
  std::size_t full_offset = 0, local_offset = 0; ///< bytes added to the full / local device pointers (< 16)
  std::size_t host_check_bytes = ~std::size_t(0); ///< above it, only the first and last rank are checked on
                                                  ///< the host (the device gather still covers every rank)
};

/// What the checks covered and how they went.
struct ShardCheckStats {
  std::map<std::string, int> splits; ///< parameters by split kind
  std::map<int, int> units;          ///< shard copies by access unit (bytes)
  int params = 0, failures = 0;
};

/// "column", "column (fused)", "row", "row (fused)" or "replicated".
std::string split_kind(const ParamPlan &p);

/// Checks parameter `p` of a plan of `tp` ranks; prints a FAIL line for each failure, adds to `stats`.
void check_shard_param(const ParamPlan &p, std::uint64_t tag, int tp, const ShardCheckOptions &options,
                       ShardCheckBuffers &buffers, ShardCheckStats &stats, cudaStream_t stream);

/// Prints "<test>: parameters by split: ...; shard copies by access unit: ..." and the PASS/FAIL line.
void print_summary(const char *test, const char *what, const ShardCheckStats &stats);

} // namespace atp::gpucheck
