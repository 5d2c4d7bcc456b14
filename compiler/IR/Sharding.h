//===- Sharding.h - each TP rank's shard of a partitioned parameter -----===//
#ifndef AUTOTPC_IR_SHARDING_H
#define AUTOTPC_IR_SHARDING_H

#include "IR/Module.h"

namespace autotpc {

/// Splits Total over Tp ranks: equal parts when Tp divides it, otherwise the
/// near-even rule of DeepSpeed HEAD's get_shard_size_list (the first
/// Total % Tp ranks get one more). The verifier rejects uneven splits today;
/// the IR can already hold them.
std::vector<int64_t> splitSizes(int64_t Total, int64_t Tp);

/// Fills P.Part.RankSizes and P.Shards for Tp ranks. Each sub-parameter is
/// split on its own and a rank's shard concatenates its piece of each, in
/// sub-parameter order (DeepSpeed's _partition_logical_tensor).
void computeShards(Param &P, int64_t Tp);

} // namespace autotpc

#endif // AUTOTPC_IR_SHARDING_H
