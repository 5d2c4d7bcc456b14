//===- ZeroLayoutTest.cpp - tests for the ZeRO flat layout and its padding ===//
//
// Each TP rank's flat layout (backward order, 64-element aligned offsets),
// the greedy buckets of at most reduce_bucket_size flat elements, and the
// layout padded for a DP size, against values computed by hand in the
// comments; then the compiler's padding against the runtime's
// zero_padded_layout on the same tables (the engine pads them itself).
//
//===----------------------------------------------------------------------===//

#include "IR/Sharding.h"
#include "Lower/ZeroLayout.h"

#include "atp/zero.h"

#include <gtest/gtest.h>

using namespace autotpc;

static_assert(FlatAlign == atp::kFlatAlign, "the compiler and the runtime must align flat offsets alike");

namespace {

Param param(std::string Name, std::vector<int64_t> Full, PartKind K, int PD) {
  Param P;
  P.Info.Name = std::move(Name);
  P.Info.Shape = Full;
  P.Part.Kind = K;
  if (K != PartKind::Replicate) {
    P.Part.Logical = Full;
    P.Part.PartitionDim = PD;
    P.Part.SubSizes = {Full[size_t(PD)]};
  }
  return P;
}

/// tp 3, in module order: a column [10, 4] (rows 4, 3, 3 -> 16, 12, 12
/// elements), a row [4, 6] (2 columns each -> 8), a replicated [5].
Module smallModule() {
  Module M;
  M.TpSize = 3;
  M.Params = {param("col", {10, 4}, PartKind::Column, 0), param("row", {4, 6}, PartKind::Row, 1),
              param("rep", {5}, PartKind::Replicate, -1)};
  for (Param &P : M.Params)
    computeShards(P, M.TpSize);
  return M;
}

void expectFlat(const ZeroFlatParam &F, int Param, int64_t Offset, int64_t Numel, bool Sharded) {
  EXPECT_EQ(F.Param, Param);
  EXPECT_EQ(F.Offset, Offset);
  EXPECT_EQ(F.Numel, Numel);
  EXPECT_EQ(F.TpSharded, Sharded);
}

void expectBucket(const ZeroBucket &B, int64_t Begin, int64_t End, int First, int Count) {
  EXPECT_EQ(B.Begin, Begin);
  EXPECT_EQ(B.End, End);
  EXPECT_EQ(B.First, First);
  EXPECT_EQ(B.Count, Count);
}

constexpr int64_t DefaultBucket = 500000000;

TEST(ZeroLayoutTest, FlatAlignIsTheRuntimes) { EXPECT_EQ(FlatAlign, 64); }

TEST(ZeroLayoutTest, AlignUp) {
  EXPECT_EQ(alignUp(0, 64), 0);
  EXPECT_EQ(alignUp(1, 64), 64);
  EXPECT_EQ(alignUp(64, 64), 64);
  EXPECT_EQ(alignUp(65, 64), 128);
  EXPECT_EQ(alignUp(INT64_MAX - 3, 64), INT64_MAX); // saturates instead of overflowing
}

TEST(ZeroLayoutTest, BackwardOrderAlignedOffsets) {
  Module M = smallModule();
  // Rank 0, reversed: rep [0, 5); row at alignUp(5) = 64, [64, 72); col at
  // alignUp(72) = 128, [128, 144). Φ = 5 + 8 + 16 = 29.
  ZeroRankLayout L = zeroRankLayout(M, DefaultBucket, 0);
  ASSERT_EQ(L.Params.size(), 3u);
  expectFlat(L.Params[0], 2, 0, 5, false);
  expectFlat(L.Params[1], 1, 64, 8, true);
  expectFlat(L.Params[2], 0, 128, 16, true);
  EXPECT_EQ(L.Numel, 144);
  EXPECT_EQ(L.Phi, 29);
  ASSERT_EQ(L.Buckets.size(), 1u);
  expectBucket(L.Buckets[0], 0, 144, 0, 3);
  // Ranks 1 and 2 hold 12 column elements: [128, 140).
  for (size_t R : {1, 2}) {
    ZeroRankLayout L1 = zeroRankLayout(M, DefaultBucket, R);
    expectFlat(L1.Params[2], 0, 128, 12, true);
    EXPECT_EQ(L1.Numel, 140);
    EXPECT_EQ(L1.Phi, 25);
  }
  // zeroLayout: every rank, with the config's bucket size.
  Config C;
  std::vector<ZeroRankLayout> All = zeroLayout(M, C);
  ASSERT_EQ(All.size(), 3u);
  EXPECT_EQ(All[0].Numel, 144);
  EXPECT_EQ(All[2].Numel, 140);
}

TEST(ZeroLayoutTest, BucketsHoldWholeParamsUpToTheSize) {
  Module M = smallModule();
  // 72: rep + row span [0, 72), exactly 72 -> together; + col would be 144.
  ZeroRankLayout L = zeroRankLayout(M, 72, 0);
  ASSERT_EQ(L.Buckets.size(), 2u);
  expectBucket(L.Buckets[0], 0, 72, 0, 2);
  expectBucket(L.Buckets[1], 128, 144, 2, 1);
  // 71: rep alone ([0, 72) is 72 > 71); row + col span [64, 144) = 80 > 71.
  L = zeroRankLayout(M, 71, 0);
  ASSERT_EQ(L.Buckets.size(), 3u);
  expectBucket(L.Buckets[0], 0, 5, 0, 1);
  expectBucket(L.Buckets[1], 64, 72, 1, 1);
  expectBucket(L.Buckets[2], 128, 144, 2, 1);
  // 144: all three span [0, 144), exactly the size: one bucket.
  L = zeroRankLayout(M, 144, 0);
  ASSERT_EQ(L.Buckets.size(), 1u);
  expectBucket(L.Buckets[0], 0, 144, 0, 3);
  // 143: rep + row [0, 72), then col alone.
  L = zeroRankLayout(M, 143, 0);
  ASSERT_EQ(L.Buckets.size(), 2u);
  expectBucket(L.Buckets[1], 128, 144, 2, 1);
}

TEST(ZeroLayoutTest, ParamLargerThanBucketIsAlone) {
  Module M = smallModule();
  // 4 (and 0): every parameter is larger; each is a bucket of its own.
  for (int64_t Size : {4, 0}) {
    ZeroRankLayout L = zeroRankLayout(M, Size, 0);
    ASSERT_EQ(L.Buckets.size(), 3u);
    expectBucket(L.Buckets[0], 0, 5, 0, 1);
    expectBucket(L.Buckets[1], 64, 72, 1, 1);
    expectBucket(L.Buckets[2], 128, 144, 2, 1);
  }
}

TEST(ZeroLayoutTest, PaddedOneBucket) {
  Module M = smallModule();
  ZeroRankLayout L0 = zeroRankLayout(M, DefaultBucket, 0), L1 = zeroRankLayout(M, DefaultBucket, 1);
  // dp 1: nothing to pad, N = 144, P = 144.
  ZeroPadded P = zeroPadded(L0, 1);
  EXPECT_EQ(P.FlatNumel, 144);
  EXPECT_EQ(P.PartitionNumel, 144);
  // dp 3: 144 = 3 x 48.
  P = zeroPadded(L0, 3);
  EXPECT_EQ(P.FlatNumel, 144);
  EXPECT_EQ(P.PartitionNumel, 48);
  // rank 1, dp 3: ⌈140/3⌉ = 47, padded 141 (the last DP rank's piece holds
  // 140 - 94 = 46 elements and one of padding).
  P = zeroPadded(L1, 3);
  EXPECT_EQ(P.FlatNumel, 141);
  EXPECT_EQ(P.PartitionNumel, 47);
  ASSERT_EQ(P.Buckets.size(), 1u);
  EXPECT_EQ(P.Buckets[0].Begin, 0);
  EXPECT_EQ(P.Buckets[0].Piece, 47);
  EXPECT_EQ(P.Buckets[0].Part, 0);
  // dp 200 > 140: pieces of 1, the bucket padded to 200.
  P = zeroPadded(L1, 200);
  EXPECT_EQ(P.FlatNumel, 200);
  EXPECT_EQ(P.PartitionNumel, 1);
}

TEST(ZeroLayoutTest, PaddedEveryBucketOnItsOwn) {
  // Bucket size 64 on rank 0: [0, 5), [64, 72), [128, 144) (lengths 5, 8,
  // 16). dp 3: pieces 2, 3, 6; padded begins 0, alignUp(0 + 6) = 64,
  // alignUp(64 + 9) = 128; parts 0, 2, 5; N = 128 + 18 = 146; P = 11.
  Module M = smallModule();
  ZeroRankLayout L = zeroRankLayout(M, 64, 0);
  ASSERT_EQ(L.Buckets.size(), 3u);
  ZeroPadded P = zeroPadded(L, 3);
  ASSERT_EQ(P.Buckets.size(), 3u);
  const int64_t Begin[] = {0, 64, 128}, Piece[] = {2, 3, 6}, Part[] = {0, 2, 5};
  for (size_t B = 0; B < 3; ++B) {
    SCOPED_TRACE(B);
    EXPECT_EQ(P.Buckets[B].Begin, Begin[B]);
    EXPECT_EQ(P.Buckets[B].Piece, Piece[B]);
    EXPECT_EQ(P.Buckets[B].Part, Part[B]);
  }
  EXPECT_EQ(P.FlatNumel, 146);
  EXPECT_EQ(P.PartitionNumel, 11);
  // dp 1 keeps the unpadded offsets (each begin is its first param's
  // offset): N = 144; P is the sum of the lengths, 5 + 8 + 16 = 29.
  P = zeroPadded(L, 1);
  EXPECT_EQ(P.FlatNumel, 144);
  EXPECT_EQ(P.PartitionNumel, 29);
  EXPECT_EQ(P.Buckets[2].Begin, 128);
}

TEST(ZeroLayoutTest, PaddingCanMoveLaterBuckets) {
  // Bucket size 5 on rank 0 and dp 7: [0, 5) -> piece 1, padded 7, so the
  // next bucket begins at alignUp(7) = 64 still; [64, 72) (8) -> piece 2,
  // padded 14, ends 78 -> the column bucket at alignUp(78) = 128; 16 ->
  // piece 3, 21: N = 149, P = 1 + 2 + 3 = 6. With dp 70 the first bucket
  // pads to 70, past 64: the second begins at 128 (not 64) and ends 128 +
  // 70 = 198, the third at 256: N = 256 + 70 = 326, P = 3.
  Module M = smallModule();
  ZeroRankLayout L = zeroRankLayout(M, 5, 0);
  ZeroPadded P = zeroPadded(L, 7);
  EXPECT_EQ(P.FlatNumel, 149);
  EXPECT_EQ(P.PartitionNumel, 6);
  P = zeroPadded(L, 70);
  ASSERT_EQ(P.Buckets.size(), 3u);
  EXPECT_EQ(P.Buckets[1].Begin, 128);
  EXPECT_EQ(P.Buckets[2].Begin, 256);
  EXPECT_EQ(P.FlatNumel, 326);
  EXPECT_EQ(P.PartitionNumel, 3);
}

TEST(ZeroLayoutTest, NoParameters) {
  Module M;
  M.TpSize = 2;
  ZeroRankLayout L = zeroRankLayout(M, DefaultBucket, 1);
  EXPECT_EQ(L.Numel, 0);
  EXPECT_TRUE(L.Params.empty());
  EXPECT_TRUE(L.Buckets.empty());
  ZeroPadded P = zeroPadded(L, 4);
  EXPECT_EQ(P.FlatNumel, 0);
  EXPECT_EQ(P.PartitionNumel, 0);
}

TEST(ZeroLayoutTest, ZeroDimParamHasOneElement) {
  Module M;
  M.TpSize = 1;
  M.Params = {param("scalar", {}, PartKind::Replicate, -1), param("v", {3}, PartKind::Replicate, -1)};
  for (Param &P : M.Params)
    computeShards(P, M.TpSize);
  ZeroRankLayout L = zeroRankLayout(M, DefaultBucket, 0);
  expectFlat(L.Params[0], 1, 0, 3, false);
  expectFlat(L.Params[1], 0, 64, 1, false);
  EXPECT_EQ(L.Numel, 65);
}

/// The engine pads the emitted tables with its own code (runtime/src/
/// zero_layout.cpp); it must agree with zeroPadded, which --emit=memory uses.
TEST(ZeroLayoutTest, SameAsRuntimePadding) {
  Module M = smallModule();
  for (int64_t Bucket : {int64_t(0), int64_t(5), int64_t(64), int64_t(72), int64_t(143), DefaultBucket})
    for (size_t R = 0; R < 3; ++R)
      for (int Dp : {1, 2, 3, 5, 7, 64, 70, 1000}) {
        SCOPED_TRACE("bucket " + std::to_string(Bucket) + " rank " + std::to_string(R) + " dp " + std::to_string(Dp));
        ZeroRankLayout L = zeroRankLayout(M, Bucket, R);
        std::vector<atp::FlatParam> Params;
        for (const ZeroFlatParam &F : L.Params)
          Params.push_back({F.Param, F.Offset, F.Numel, F.TpSharded});
        std::vector<atp::GradBucket> Buckets;
        for (const ZeroBucket &B : L.Buckets)
          Buckets.push_back({B.Begin, B.End, B.First, B.Count});
        atp::FlatLayout Flat{L.Numel, int32_t(Params.size()), Params.data(), int32_t(Buckets.size()),
                             Buckets.data()};
        atp::Result<atp::PaddedLayout> Runtime = atp::zero_padded_layout(Flat, Dp);
        ASSERT_TRUE(Runtime.ok());
        ZeroPadded Mine = zeroPadded(L, Dp);
        EXPECT_EQ(Runtime->numel, Mine.FlatNumel);
        EXPECT_EQ(Runtime->partition, Mine.PartitionNumel);
        ASSERT_EQ(Runtime->buckets.size(), Mine.Buckets.size());
        for (size_t B = 0; B < Mine.Buckets.size(); ++B) {
          EXPECT_EQ(Runtime->buckets[B].begin, Mine.Buckets[B].Begin);
          EXPECT_EQ(Runtime->buckets[B].piece, Mine.Buckets[B].Piece);
          EXPECT_EQ(Runtime->buckets[B].part, Mine.Buckets[B].Part);
        }
      }
}

} // namespace
