//===- Sharding.cpp - each TP rank's shard of a partitioned parameter ---===//
//
// A partition is defined on the logical view; the shard is reported in the
// stored tensor's own coordinates. A weight's logical view [d0, .., dk-1, in]
// is stored as [d0*..*dk-1, in], a bias's [d0, .., dk-1] as [d0*..*dk-1], so
// a piece [a, b) of logical dim pd is, in stored rows, the ranges
// [(o*D + a)*inner, (o*D + b)*inner) for every o < outer.
//
//===----------------------------------------------------------------------===//
#include "IR/Sharding.h"

using namespace autotpc;

std::vector<int64_t> autotpc::splitSizes(int64_t Total, int64_t Tp) {
  std::vector<int64_t> Sizes(size_t(Tp), Total / Tp);
  for (int64_t R = 0; R < Total % Tp; ++R)
    ++Sizes[size_t(R)];
  return Sizes;
}

static int64_t product(const std::vector<int64_t> &V, size_t Begin, size_t End) {
  int64_t P = 1;
  for (size_t I = Begin; I < End; ++I)
    P *= V[I];
  return P;
}

void autotpc::computeShards(Param &P, int64_t Tp) {
  Partition &Part = P.Part;
  const std::vector<int64_t> &Full = P.Info.Shape;
  P.Shards.assign(size_t(Tp), Shard());
  Part.RankSizes.clear();
  if (Part.Kind == PartKind::Replicate || Part.PartitionDim < 0) {
    Box All;
    for (int64_t D : Full)
      All.Ranges.push_back({0, D});
    for (Shard &S : P.Shards) {
      S.Shape = Full;
      S.Boxes = {All};
    }
    return;
  }
  const std::vector<int64_t> &L = Part.Logical;
  const size_t PD = size_t(Part.PartitionDim);
  const bool IsWeight = Full.size() == 2;
  // Stored dims: a weight keeps the logical input dim as its dim 1.
  const size_t Lead = IsWeight ? L.size() - 1 : L.size();
  const bool SplitsInput = IsWeight && PD == L.size() - 1;
  const int64_t Outer = SplitsInput ? 1 : product(L, 0, PD);
  const int64_t Inner = SplitsInput ? 1 : product(L, PD + 1, Lead);
  const int64_t D = L[PD];

  std::vector<std::vector<int64_t>> PerSub; // [sub][rank]
  for (int64_t S : Part.SubSizes)
    PerSub.push_back(splitSizes(S, Tp));
  Part.RankSizes.assign(size_t(Tp), std::vector<int64_t>(Part.SubSizes.size()));

  // Start[r][i]: where rank r's piece of sub-parameter i begins along dim PD.
  std::vector<std::vector<int64_t>> Start(size_t(Tp), std::vector<int64_t>(Part.SubSizes.size()));
  int64_t SubOffset = 0;
  for (size_t I = 0; I < Part.SubSizes.size(); ++I) {
    int64_t At = SubOffset;
    for (int64_t R = 0; R < Tp; ++R) {
      Part.RankSizes[size_t(R)][I] = PerSub[I][size_t(R)];
      Start[size_t(R)][I] = At;
      At += PerSub[I][size_t(R)];
    }
    SubOffset += Part.SubSizes[I];
  }
  // Boxes in the local tensor's memory order: outer index, then sub-parameter.
  for (int64_t R = 0; R < Tp; ++R) {
    Shard &S = P.Shards[size_t(R)];
    for (int64_t O = 0; O < Outer; ++O) {
      for (size_t I = 0; I < Part.SubSizes.size(); ++I) {
        int64_t A = Start[size_t(R)][I], Len = Part.RankSizes[size_t(R)][I];
        if (Len == 0)
          continue;
        Box B;
        if (SplitsInput) {
          B.Ranges = {{0, Full[0]}, {A, A + Len}};
        } else {
          B.Ranges = {{(O * D + A) * Inner, (O * D + A + Len) * Inner}};
          if (IsWeight)
            B.Ranges.push_back({0, Full[1]});
        }
        // Merge with the previous box when contiguous in the full tensor.
        if (!S.Boxes.empty() && !SplitsInput && S.Boxes.back().Ranges[0].second == B.Ranges[0].first)
          S.Boxes.back().Ranges[0].second = B.Ranges[0].second;
        else
          S.Boxes.push_back(std::move(B));
      }
    }
  }
  for (int64_t R = 0; R < Tp; ++R) {
    int64_t Local = 0;
    for (int64_t Len : Part.RankSizes[size_t(R)])
      Local += Len;
    Shard &S = P.Shards[size_t(R)];
    if (SplitsInput)
      S.Shape = {Full[0], Local};
    else if (IsWeight)
      S.Shape = {Outer * Local * Inner, Full[1]};
    else
      S.Shape = {Outer * Local * Inner};
  }
}
