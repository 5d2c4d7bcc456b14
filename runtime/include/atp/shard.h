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

/// Bytes of TP rank `rank`'s local tensor of `p`.
std::size_t local_nbytes(const ParamPlan &p, int rank);

/// Copies rank `rank`'s boxes of `full` (the whole tensor, row-major) into
/// `local` (local_nbytes bytes).
void shard_copy(const ParamPlan &p, int rank, const std::byte *full, std::byte *local);

/// Writes rank `rank`'s `local` tensor into its boxes of `full`.
void gather_copy(const ParamPlan &p, int rank, const std::byte *local, std::byte *full);

} // namespace atp
