/* Shard and gather copies on the host (see atp/shard.h).

   Each box is copied row by row with memcpy: along concat_dim 0 a box's
   rows are whole local rows; along concat_dim 1 a box is a column band of
   every local row. */
#include "atp/shard.h"

#include <cstring>

namespace atp {

// ---- copies ----------------------------------------------------------------

std::size_t local_nbytes(const ParamPlan &p, int rank) {
  return std::size_t(p.ranks[rank].rows) * std::size_t(p.ranks[rank].cols) * dtype_size(p.dtype);
}

void shard_copy(const ParamPlan &p, int rank, const std::byte *full, std::byte *local) {
  for_each_shard_run(p, rank, [&](std::size_t full_off, std::size_t local_off, std::size_t n) {
    std::memcpy(local + local_off, full + full_off, n);
  });
}

void gather_copy(const ParamPlan &p, int rank, const std::byte *local, std::byte *full) {
  for_each_shard_run(p, rank, [&](std::size_t full_off, std::size_t local_off, std::size_t n) {
    std::memcpy(full + full_off, local + local_off, n);
  });
}

} // namespace atp
