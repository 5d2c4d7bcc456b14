//===- ZeroLayout.cpp - each TP rank's ZeRO flat layout and buckets ------===//
//
// Backward order (the reverse of the parameter order), 64-element aligned
// offsets, greedy buckets of at most reduce_bucket_size flat elements, and
// the per-bucket padding to a multiple of the DP size. The alignment and
// padding are atp/zero_padding.h's, the runtime engine's own rule. Element
// counts saturate at INT64_MAX so that hostile configs cannot overflow them.
//
//===----------------------------------------------------------------------===//
#include "Lower/ZeroLayout.h"
#include "Support/Saturating.h"

using namespace autotpc;

ZeroRankLayout autotpc::zeroRankLayout(const Module &M, int64_t ReduceBucketSize, size_t TpRank) {
  ZeroRankLayout L;
  L.Params.reserve(M.Params.size());
  int64_t End = 0; // end of the previous parameter
  for (size_t I = M.Params.size(); I-- > 0;) {
    const Param &P = M.Params[I];
    ZeroFlatParam F;
    F.Param = int(I);
    F.Offset = atp::flat_offset_after(End);
    F.Numel = 1;
    for (int64_t D : P.Shards[TpRank].Shape) // a 0-D parameter has one element
      F.Numel = saturatingMul(F.Numel, D);
    F.TpSharded = P.Part.Kind != PartKind::Replicate;
    End = saturatingAdd(F.Offset, F.Numel);
    L.Phi = saturatingAdd(L.Phi, F.Numel);
    L.Params.push_back(F);
  }
  L.Numel = End;
  for (size_t K = 0; K < L.Params.size(); ++K) {
    const ZeroFlatParam &F = L.Params[K];
    const int64_t FEnd = saturatingAdd(F.Offset, F.Numel);
    if (!L.Buckets.empty()) {
      ZeroBucket &B = L.Buckets.back();
      if (FEnd - B.Begin <= ReduceBucketSize) {
        B.End = FEnd;
        ++B.Count;
        continue;
      }
    }
    L.Buckets.push_back({F.Offset, FEnd, int(K), 1});
  }
  return L;
}

std::vector<ZeroRankLayout> autotpc::zeroLayout(const Module &M, const Config &C) {
  std::vector<ZeroRankLayout> Layouts;
  for (int64_t R = 0; R < M.TpSize; ++R)
    Layouts.push_back(zeroRankLayout(M, C.Zero.ReduceBucketSize, size_t(R)));
  return Layouts;
}

ZeroPadded autotpc::zeroPadded(const ZeroRankLayout &L, int64_t Dp) {
  assert(Dp >= 1 && "the DP size is at least 1");
  ZeroPadded Out;
  atp::BucketPadder Padder(Dp);
  for (const ZeroBucket &B : L.Buckets) {
    const atp::PaddedBucket P = Padder.add(B.End - B.Begin);
    Out.Buckets.push_back({P.begin, P.piece, P.part});
  }
  Out.FlatNumel = Padder.numel();
  Out.PartitionNumel = Padder.partition();
  return Out;
}
