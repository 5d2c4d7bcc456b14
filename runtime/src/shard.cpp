/* Shard and gather copies on the host (see atp/shard.h).

   Each box is copied row by row with memcpy: along concat_dim 0 a box's
   rows are whole local rows; along concat_dim 1 a box is a column band of
   every local row. */
#include "atp/shard.h"

#include <cstring>

namespace atp {

namespace {

// ---- box walking -----------------------------------------------------------

/// Calls f(full_offset, local_offset, bytes) for every contiguous run of a
/// rank's boxes, in local order.
template <class F> void for_each_run(const ParamPlan &p, int rank, F &&f) {
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
      // Whole rows: one contiguous run.
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

} // namespace

// ---- copies ----------------------------------------------------------------

std::size_t local_nbytes(const ParamPlan &p, int rank) {
  return std::size_t(p.ranks[rank].rows) * std::size_t(p.ranks[rank].cols) * dtype_size(p.dtype);
}

void shard_copy(const ParamPlan &p, int rank, const std::byte *full, std::byte *local) {
  for_each_run(p, rank, [&](std::size_t full_off, std::size_t local_off, std::size_t n) {
    std::memcpy(local + local_off, full + full_off, n);
  });
}

void gather_copy(const ParamPlan &p, int rank, const std::byte *local, std::byte *full) {
  for_each_run(p, rank, [&](std::size_t full_off, std::size_t local_off, std::size_t n) {
    std::memcpy(full + full_off, local + local_off, n);
  });
}

} // namespace atp
