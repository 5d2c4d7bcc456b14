//===- ZeroLayout.h - each TP rank's ZeRO flat layout and buckets --------===//
//
// The planning pass behind zero.cpp, --emit=zero and --emit=memory: for
// every TP rank, where each local parameter lives in the flat buffers that
// ZeRO reduces and partitions, the gradient buckets over them, and (given a
// DP size) the padded layout the runtime engine allocates. The tables are
// runtime/include/atp/zero_plan.h's; the alignment and padding rule is
// runtime/include/atp/zero_padding.h, a dependency-free header that this
// pass and runtime/src/zero_layout.cpp both include (nothing is linked).
//
//===----------------------------------------------------------------------===//
#ifndef AUTOTPC_LOWER_ZEROLAYOUT_H
#define AUTOTPC_LOWER_ZEROLAYOUT_H

#include "IR/Module.h"

#include "atp/zero_padding.h"

namespace autotpc {

/// Every flat offset and padded bucket begin is a multiple of this many
/// elements: the shared rule's atp::kFlatAlign. zero.cpp static_asserts the
/// value it was laid out with against the runtime it is compiled with.
inline constexpr int64_t FlatAlign = atp::kFlatAlign;

/// One parameter in a TP rank's flat buffers (atp::FlatParam).
struct ZeroFlatParam {
  int Param = 0;        ///< index into Module::Params
  int64_t Offset = 0;   ///< first flat element, a multiple of FlatAlign
  int64_t Numel = 0;    ///< elements of this TP rank's local shard
  bool TpSharded = false; ///< split over TP (column or row); replicated ones are not
};

/// A gradient bucket (atp::GradBucket): flat elements [Begin, End), holding
/// the flat parameters [First, First + Count).
struct ZeroBucket {
  int64_t Begin = 0, End = 0;
  int First = 0, Count = 0;
};

/// One TP rank's flat layout (atp::FlatLayout).
struct ZeroRankLayout {
  int64_t Numel = 0;   ///< end of the last parameter, alignment gaps included; 0 if none
  int64_t Phi = 0;     ///< Σ Numel of the parameters (no gaps): the unpadded element count
  std::vector<ZeroFlatParam> Params; ///< in flat (backward) order: the reverse of Module::Params
  std::vector<ZeroBucket> Buckets;   ///< in flat order
};

/// The flat layout of TP rank TpRank:
///  - parameters in backward order, the reverse of the module's order, each
///    at the next multiple of FlatAlign after the previous one ends;
///  - buckets greedily in flat order: a bucket takes whole consecutive
///    parameters while its span (last end - first offset, gaps included)
///    stays <= ReduceBucketSize; a parameter alone larger than that is a
///    bucket by itself.
ZeroRankLayout zeroRankLayout(const Module &M, int64_t ReduceBucketSize, size_t TpRank);

/// zeroRankLayout for every TP rank, with C's zero_optimization.reduce_bucket_size.
std::vector<ZeroRankLayout> zeroLayout(const Module &M, const Config &C);

/// One bucket of the padded layout (atp::PaddedBucket).
struct ZeroPaddedBucket {
  int64_t Begin = 0; ///< in the padded flat buffer, a multiple of FlatAlign
  int64_t Piece = 0; ///< each DP rank's piece: ceil(len / dp)
  int64_t Part = 0;  ///< where the piece starts in a DP rank's partition
};

/// A TP rank's layout padded for DP size Dp (atp::PaddedLayout).
struct ZeroPadded {
  int64_t FlatNumel = 0;      ///< N: the padded flat buffer
  int64_t PartitionNumel = 0; ///< P: one DP rank's partition
  std::vector<ZeroPaddedBucket> Buckets;
};

/// The padded layout for Dp >= 1 by atp::BucketPadder (zero_padding.h), the
/// rule of the runtime's zero_padded_layout: bucket b has len_b = end_b -
/// begin_b and piece s_b = ceil(len_b / Dp), and occupies s_b * Dp elements
/// from pb_b, where pb_0 = 0 and pb_{b+1} = align_up(pb_b + s_b * Dp,
/// FlatAlign). N = pb_last + s_last * Dp (0 without parameters); P = Σ s_b.
ZeroPadded zeroPadded(const ZeroRankLayout &L, int64_t Dp);

} // namespace autotpc

#endif // AUTOTPC_LOWER_ZEROLAYOUT_H
