//===- ZeroLayoutTest.cpp - tests for the ZeRO flat layout and its padding ===//
//
// The shared rule of atp/zero_padding.h, each TP rank's flat layout
// (backward order, 64-element aligned offsets), the greedy buckets of at
// most reduce_bucket_size flat elements, and the layout padded for a DP
// size, against values computed by hand in the comments; the compiler's
// layouts against atp/zero_plan.h's zero_layout_well_formed (which every
// zero.cpp static_asserts), and broken tables it must refuse; then the
// compiler's padding against the runtime's zero_padded_layout on the same
// tables (the engine pads them itself).
//
//===----------------------------------------------------------------------===//

#include "IR/Sharding.h"
#include "Lower/ZeroLayout.h"

#include "atp/zero.h"

#include <gtest/gtest.h>

using namespace autotpc;

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

TEST(ZeroLayoutTest, FlatAlignIs64) {
  EXPECT_EQ(FlatAlign, 64);
  EXPECT_EQ(atp::kFlatAlign, 64);
}

TEST(ZeroPaddingTest, SaturatingArithmetic) {
  EXPECT_EQ(atp::saturating_add(2, 3), 5);
  EXPECT_EQ(atp::saturating_add(-7, 3), -4);
  EXPECT_EQ(atp::saturating_add(INT64_MAX - 1, 1), INT64_MAX);
  EXPECT_EQ(atp::saturating_add(INT64_MAX - 1, 2), INT64_MAX);
  EXPECT_EQ(atp::saturating_add(INT64_MIN, -1), INT64_MAX); // either way, as compiler/Support/Saturating.h
  EXPECT_EQ(atp::saturating_mul(6, 7), 42);
  EXPECT_EQ(atp::saturating_mul(-6, 7), -42);
  EXPECT_EQ(atp::saturating_mul(0, INT64_MAX), 0);
  EXPECT_EQ(atp::saturating_mul(int64_t(1) << 31, int64_t(1) << 31), int64_t(1) << 62);
  EXPECT_EQ(atp::saturating_mul(int64_t(1) << 32, int64_t(1) << 31), INT64_MAX);
  EXPECT_EQ(atp::saturating_mul(-(int64_t(1) << 32), -(int64_t(1) << 31)), INT64_MAX);
  EXPECT_EQ(atp::saturating_mul(-1, INT64_MIN), INT64_MAX);
  EXPECT_EQ(atp::saturating_mul(-2, int64_t(1) << 62), INT64_MIN); // -2^63 fits
  EXPECT_EQ(atp::saturating_mul(-4, int64_t(1) << 62), INT64_MAX);
}

TEST(ZeroPaddingTest, AlignUpAndPieces) {
  EXPECT_EQ(atp::align_up(0, 64), 0);
  EXPECT_EQ(atp::align_up(1, 64), 64);
  EXPECT_EQ(atp::align_up(64, 64), 64);
  EXPECT_EQ(atp::align_up(65, 64), 128);
  EXPECT_EQ(atp::align_up(10, 3), 12);
  EXPECT_EQ(atp::align_up(INT64_MAX - 3, 64), INT64_MAX); // saturates instead of overflowing
  EXPECT_EQ(atp::flat_offset_after(72), 128);
  EXPECT_EQ(atp::flat_offset_after(128), 128);
  // ceil(len / dp)
  EXPECT_EQ(atp::dp_piece(0, 3), 0);
  EXPECT_EQ(atp::dp_piece(140, 3), 47);
  EXPECT_EQ(atp::dp_piece(141, 3), 47);
  EXPECT_EQ(atp::dp_piece(142, 3), 48);
  EXPECT_EQ(atp::dp_piece(5, 200), 1);
  EXPECT_EQ(atp::dp_piece(INT64_MAX, 1), INT64_MAX);
}

TEST(ZeroPaddingTest, BucketPadder) {
  // dp 3, buckets of 5, 8 and 130 elements: pieces 2, 3, 44; begins 0,
  // align_up(0 + 6) = 64, align_up(64 + 9) = 128; parts 0, 2, 5; N = 128 +
  // 3 * 44 = 260; P = 2 + 3 + 44 = 49.
  atp::BucketPadder Padder(3);
  EXPECT_EQ(Padder.numel(), 0);
  EXPECT_EQ(Padder.partition(), 0);
  const int64_t Len[] = {5, 8, 130}, Begin[] = {0, 64, 128}, Piece[] = {2, 3, 44}, Part[] = {0, 2, 5};
  for (size_t B = 0; B < 3; ++B) {
    SCOPED_TRACE(B);
    const atp::PaddedBucket P = Padder.add(Len[B]);
    EXPECT_EQ(P.begin, Begin[B]);
    EXPECT_EQ(P.piece, Piece[B]);
    EXPECT_EQ(P.part, Part[B]);
  }
  EXPECT_EQ(Padder.numel(), 260);
  EXPECT_EQ(Padder.partition(), 49);
  // A bucket of 2^63 - 2 elements (a hostile config): its piece is
  // (2^63 - 2) / 3 = 3074457345618258602 exactly, but the padded end 320 +
  // 3 * piece does not fit: N saturates at INT64_MAX, and so does the next
  // begin.
  const atp::PaddedBucket Huge = Padder.add(INT64_MAX - 1);
  EXPECT_EQ(Huge.begin, 320); // align_up(260)
  EXPECT_EQ(Huge.piece, 3074457345618258602);
  EXPECT_EQ(Padder.numel(), INT64_MAX);
  EXPECT_EQ(Padder.partition(), 49 + 3074457345618258602);
  EXPECT_EQ(Padder.add(1).begin, INT64_MAX);
  EXPECT_EQ(Padder.numel(), INT64_MAX);
}

/// The rule is usable at compile time, as zero_plan.h's checks use it.
static_assert([] {
  atp::BucketPadder P(2);
  P.add(5);  // piece 3, [0, 6)
  P.add(64); // piece 32, at 64: [64, 128)
  return P.numel() == 128 && P.partition() == 35;
}(), "BucketPadder is constexpr");

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

/// A TP rank's layout as zero.cpp states it: atp/zero_plan.h's tables.
struct Tables {
  std::vector<atp::FlatParam> Params;
  std::vector<atp::GradBucket> Buckets;
  int64_t Numel = 0;

  explicit Tables(const ZeroRankLayout &L) : Numel(L.Numel) {
    for (const ZeroFlatParam &F : L.Params)
      Params.push_back({F.Param, F.Offset, F.Numel, F.TpSharded});
    for (const ZeroBucket &B : L.Buckets)
      Buckets.push_back({B.Begin, B.End, B.First, B.Count});
  }
  bool wellFormed(int64_t BucketSize) const {
    return atp::zero_layout_well_formed(Params.data(), int32_t(Params.size()), Buckets.data(),
                                        int32_t(Buckets.size()), Numel, BucketSize);
  }
  atp::FlatLayout flat() const {
    return {Numel, int32_t(Params.size()), Params.data(), int32_t(Buckets.size()), Buckets.data()};
  }
};

const int64_t BucketSizes[] = {0, 5, 64, 71, 72, 143, 144, DefaultBucket};

/// What zero.cpp static_asserts holds of every layout the compiler makes.
TEST(ZeroLayoutTest, WellFormedAsZeroPlanRequires) {
  Module M = smallModule();
  for (int64_t Bucket : BucketSizes)
    for (size_t R = 0; R < 3; ++R) {
      SCOPED_TRACE("bucket " + std::to_string(Bucket) + " rank " + std::to_string(R));
      EXPECT_TRUE(Tables(zeroRankLayout(M, Bucket, R)).wellFormed(Bucket));
    }
}

/// Rank 0 of smallModule with buckets of 72, written by hand as zero.cpp
/// states it (BucketsHoldWholeParamsUpToTheSize derives the same): the
/// template deduces the array sizes, and the check runs at compile time.
constexpr atp::FlatParam HandParams[] = {{2, 0, 5, false}, {1, 64, 8, true}, {0, 128, 16, true}};
constexpr atp::GradBucket HandBuckets[] = {{0, 72, 0, 2}, {128, 144, 2, 1}};
static_assert(atp::zero_layout_well_formed(HandParams, HandBuckets, 144, 72), "the hand-written tables hold");
static_assert(!atp::zero_layout_well_formed(HandParams, HandBuckets, 144, 71), "[0, 72) is over 71");
static_assert(!atp::zero_layout_well_formed(HandParams, HandBuckets, 140, 72), "the last end is 144");

/// Each way a hand edit can break the tables is refused.
TEST(ZeroLayoutTest, WellFormedRefusesBrokenTables) {
  const Tables Good(zeroRankLayout(smallModule(), 72, 0));
  ASSERT_TRUE(Good.wellFormed(72));
  ASSERT_EQ(Good.Params.size(), 3u);
  ASSERT_EQ(Good.Buckets.size(), 2u);
  struct Break {
    const char *What;
    void (*Edit)(Tables &);
  };
  const Break Breaks[] = {
      {"an offset off the alignment", [](Tables &T) { T.Params[1].offset = 65; }},
      {"a gap of a whole alignment", [](Tables &T) {
         T.Params[2].offset = 192; // flat_offset_after(72) is 128
         T.Buckets[1] = {192, 208, 2, 1};
         T.Numel = 208;
       }},
      {"an overlap", [](Tables &T) { T.Params[1].offset = 0; }},
      {"not in backward order", [](Tables &T) { std::swap(T.Params[0].param, T.Params[1].param); }},
      {"a negative size", [](Tables &T) { T.Params[0].numel = -1; }},
      {"a wrong flat size", [](Tables &T) { T.Numel = 145; }},
      {"a bucket not at its first parameter", [](Tables &T) { T.Buckets[1].begin = 129; }},
      {"a bucket short of its last parameter's end", [](Tables &T) { T.Buckets[0].end = 70; }},
      {"an empty bucket", [](Tables &T) { T.Buckets[1].count = 0; }},
      {"a bucket past the last parameter", [](Tables &T) { T.Buckets[1].count = 2; }},
      {"a bucket not after the previous one", [](Tables &T) { T.Buckets[1].first = 1; }},
      {"a parameter in no bucket", [](Tables &T) { T.Buckets.pop_back(); }},
  };
  for (const Break &B : Breaks) {
    SCOPED_TRACE(B.What);
    Tables T = Good;
    B.Edit(T);
    EXPECT_FALSE(T.wellFormed(72));
  }
}

/// The engine pads the emitted tables with its own code (runtime/src/
/// zero_layout.cpp); it must agree with zeroPadded, which --emit=memory uses.
TEST(ZeroLayoutTest, SameAsRuntimePadding) {
  Module M = smallModule();
  for (int64_t Bucket : BucketSizes)
    for (size_t R = 0; R < 3; ++R)
      for (int Dp : {1, 2, 3, 5, 7, 64, 70, 1000}) {
        SCOPED_TRACE("bucket " + std::to_string(Bucket) + " rank " + std::to_string(R) + " dp " + std::to_string(Dp));
        ZeroRankLayout L = zeroRankLayout(M, Bucket, R);
        const Tables T(L);
        atp::Result<atp::PaddedLayout> Runtime = atp::zero_padded_layout(T.flat(), Dp);
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
