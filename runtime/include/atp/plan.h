/* The shard plan of one model under one TP size, as generated code states it.

   autotpc emits these tables as constexpr data (generated/<name>/plan.cpp):
   for every parameter its full shape and, for every TP rank, the boxes of
   the full tensor the rank holds, in the order they are laid out in the
   rank's local tensor (concatenated along `concat_dim`). The runtime's
   shard, gather, load and consolidate routines are driven by these tables
   only; they never re-derive a partition. */
#pragma once

#include "atp/dtype.h"

#include <cstdint>

namespace atp {

/// [begin, end) along one dimension.
struct Range {
  std::int64_t begin, end;
};

/// A box of a stored tensor seen as 2-D [rows, cols] (a 1-D tensor of n
/// elements is [n, 1]; an n-D one is [prod(leading dims), last dim]).
struct Box {
  Range rows, cols;
};

enum class Split : std::uint8_t { Replicate, Column, Row };

/// One TP rank's shard: boxes[first .. first + count) of the parameter, and
/// the local tensor's 2-D shape (its stored shape: [rows, cols], or [rows]
/// for a 1-D parameter).
struct RankShard {
  std::int32_t first, count;
  std::int64_t rows, cols;
};

/// One parameter of the plan.
struct ParamPlan {
  const char *name;
  DType dtype;
  std::int32_t ndim;          ///< rank of the stored tensor; only 1-D and 2-D are ever split
  const std::int64_t *shape;  ///< the stored shape, ndim entries
  std::int64_t rows, cols;    ///< the 2-D view of the full tensor
  Split split;
  std::int32_t concat_dim;    ///< local tensor = boxes concatenated along this dim
  const Box *boxes;
  const RankShard *ranks;     ///< tp_size entries
};

/// The whole plan.
struct ModelPlan {
  const char *fingerprint;    ///< hash of the plan; stamped into every shard file
  std::int32_t tp_size;
  std::int32_t num_params;
  const ParamPlan *params;
};

} // namespace atp
