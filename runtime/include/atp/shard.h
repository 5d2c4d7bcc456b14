/* Shard and gather copies on the host, driven by a generated ParamPlan.

   A rank's local tensor is its boxes of the full tensor concatenated along
   the plan's concat_dim (0: rows, for column splits and replicated tensors;
   1: columns, for row splits). shard_copy fills the local tensor from the
   full one; gather_copy writes it back. Every element of the full tensor
   belongs to exactly one box of each split rank, so gathering every rank
   rebuilds the full tensor byte for byte. */
#pragma once

#include "atp/plan.h"

#include <cstddef>

namespace atp {

/// Calls f(full_offset, local_offset, nbytes) for every contiguous run of
/// rank `rank`'s boxes, in local order: a box of whole rows along
/// concat_dim 0 is one run; otherwise each row of a box is one run.
template <class F> void for_each_shard_run(const ParamPlan &p, int rank, F &&f) {
  const std::size_t elem = dtype_size(p.dtype);
  const RankShard &rs = p.ranks[rank];
  const std::size_t full_row = std::size_t(p.cols) * elem;
  const std::size_t local_row = std::size_t(rs.cols) * elem;
  std::size_t local_base = 0; // rows (concat 0) or bytes into a row (concat 1)
  for (int b = 0; b < rs.count; ++b) {
    const Box &box = p.boxes[rs.first + b];
    const std::size_t width = std::size_t(box.cols.end - box.cols.begin) * elem;
    const std::size_t col0 = std::size_t(box.cols.begin) * elem;
    const std::int64_t nrows = box.rows.end - box.rows.begin;
    if (p.concat_dim == 0 && width == full_row) {
      f(std::size_t(box.rows.begin) * full_row, local_base * local_row, std::size_t(nrows) * full_row);
      local_base += std::size_t(nrows);
      continue;
    }
    for (std::int64_t r = 0; r < nrows; ++r) {
      std::size_t full_off = std::size_t(box.rows.begin + r) * full_row + col0;
      std::size_t local_off = p.concat_dim == 0 ? (local_base + std::size_t(r)) * local_row
                                                : std::size_t(r) * local_row + local_base;
      f(full_off, local_off, width);
    }
    local_base += p.concat_dim == 0 ? std::size_t(nrows) : width;
  }
}

/// Bytes of TP rank `rank`'s local tensor of `p`.
std::size_t local_nbytes(const ParamPlan &p, int rank);

/// Copies rank `rank`'s boxes of `full` (the whole tensor, row-major) into
/// `local` (local_nbytes bytes).
void shard_copy(const ParamPlan &p, int rank, const std::byte *full, std::byte *local);

/// Writes rank `rank`'s `local` tensor into its boxes of `full`.
void gather_copy(const ParamPlan &p, int rank, const std::byte *local, std::byte *full);

} // namespace atp
