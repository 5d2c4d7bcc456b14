//===- ZeroLayout.cpp - each TP rank's ZeRO flat layout and buckets ------===//
//
// Backward order (the reverse of the parameter order), 64-element aligned
// offsets, greedy buckets of at most reduce_bucket_size flat elements, and
// the per-bucket padding to a multiple of the DP size. Element counts
// saturate at INT64_MAX so that hostile configs cannot overflow them.
//
//===----------------------------------------------------------------------===//
#include "Lower/ZeroLayout.h"
#include "Support/Saturating.h"

using namespace autotpc;

int64_t autotpc::alignUp(int64_t X, int64_t A) {
  const int64_t Up = saturatingAdd(X, A - 1);
  return Up == INT64_MAX ? INT64_MAX : Up / A * A;
}

ZeroRankLayout autotpc::zeroRankLayout(const Module &M, int64_t ReduceBucketSize, size_t TpRank) {
  ZeroRankLayout L;
  L.Params.reserve(M.Params.size());
  int64_t End = 0; // end of the previous parameter
  for (size_t I = M.Params.size(); I-- > 0;) {
    const Param &P = M.Params[I];
    ZeroFlatParam F;
    F.Param = int(I);
    F.Offset = alignUp(End, FlatAlign);
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
  int64_t Next = 0; // where the previous padded bucket ends
  for (const ZeroBucket &B : L.Buckets) {
    ZeroPaddedBucket P;
    P.Begin = alignUp(Next, FlatAlign);
    const int64_t Len = B.End - B.Begin;
    P.Piece = Len / Dp + (Len % Dp != 0);
    P.Part = Out.PartitionNumel;
    Out.PartitionNumel = saturatingAdd(Out.PartitionNumel, P.Piece);
    Next = saturatingAdd(P.Begin, saturatingMul(P.Piece, Dp));
    Out.Buckets.push_back(P);
  }
  Out.FlatNumel = Next;
  return Out;
}
