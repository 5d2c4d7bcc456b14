//===- ShardingTest.cpp - tests for per-rank split sizes and shard boxes -===//
//
// splitSizes against the near-even examples of reference §1.8 that do not
// depend on KV heads, computeShards against boxes worked out by hand, and a
// property test: over many shapes and TP sizes, the ranks' boxes tile the
// full tensor exactly once and each rank's boxes hold as many elements as
// its local shape.
//
//===----------------------------------------------------------------------===//

#include "IR/Sharding.h"

#include <gtest/gtest.h>

using namespace autotpc;

namespace {

using Shape = std::vector<int64_t>;
using Ranges = std::vector<std::pair<int64_t, int64_t>>;

Param param(Shape Full, PartKind K, Shape Logical, int PD, Shape Sub) {
  Param P;
  P.Info.Name = "p";
  P.Info.Shape = std::move(Full);
  P.Part.Kind = K;
  P.Part.Logical = std::move(Logical);
  P.Part.PartitionDim = PD;
  P.Part.SubSizes = std::move(Sub);
  return P;
}

std::vector<Ranges> boxes(const Shard &S) {
  std::vector<Ranges> Out;
  for (const Box &B : S.Boxes)
    Out.push_back(B.Ranges);
  return Out;
}

TEST(ShardingTest, SplitSizesEven) {
  EXPECT_EQ(splitSizes(8, 2), (Shape{4, 4}));
  EXPECT_EQ(splitSizes(4096, 4), (Shape{1024, 1024, 1024, 1024}));
  EXPECT_EQ(splitSizes(7, 1), (Shape{7}));
}

TEST(ShardingTest, SplitSizesNearEvenReferenceExamples) {
  // Reference §1.8: (10, 3, "lm_head") -> [4, 3, 3]; (101, 2) -> [51, 50];
  // (3, 4, "x") -> [1, 1, 1, 0] (an empty rank is allowed).
  EXPECT_EQ(splitSizes(10, 3), (Shape{4, 3, 3}));
  EXPECT_EQ(splitSizes(101, 2), (Shape{51, 50}));
  EXPECT_EQ(splitSizes(3, 4), (Shape{1, 1, 1, 0}));
  // kv=32: mlp.up_proj (14336, 3) -> [4779, 4779, 4778] uses rule 2/3 (no KV rule for "mlp").
  EXPECT_EQ(splitSizes(14336, 3), (Shape{4779, 4779, 4778}));
  EXPECT_EQ(splitSizes(0, 2), (Shape{0, 0}));
}

TEST(ShardingTest, PlainColumnSplitsRows) {
  Param P = param({8, 4}, PartKind::Column, {8, 4}, 0, {8});
  computeShards(P, 2);
  ASSERT_EQ(P.Shards.size(), 2u);
  EXPECT_EQ(P.Shards[0].Shape, (Shape{4, 4}));
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 4}, {0, 4}}}));
  EXPECT_EQ(P.Shards[1].Shape, (Shape{4, 4}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{4, 8}, {0, 4}}}));
  EXPECT_EQ(P.Part.RankSizes, (std::vector<Shape>{{4}, {4}}));
}

TEST(ShardingTest, PlainRowSplitsColumns) {
  Param P = param({4, 8}, PartKind::Row, {4, 8}, 1, {8});
  computeShards(P, 4);
  ASSERT_EQ(P.Shards.size(), 4u);
  for (int64_t R = 0; R < 4; ++R) {
    EXPECT_EQ(P.Shards[size_t(R)].Shape, (Shape{4, 2})) << R;
    EXPECT_EQ(boxes(P.Shards[size_t(R)]), (std::vector<Ranges>{{{0, 4}, {2 * R, 2 * R + 2}}})) << R;
  }
}

TEST(ShardingTest, UnevenColumnFollowsNearEvenRule) {
  // 10 rows over 3 ranks: 4, 3, 3.
  Param P = param({10, 2}, PartKind::Column, {10, 2}, 0, {10});
  computeShards(P, 3);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 4}, {0, 2}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{4, 7}, {0, 2}}}));
  EXPECT_EQ(boxes(P.Shards[2]), (std::vector<Ranges>{{{7, 10}, {0, 2}}}));
  EXPECT_EQ(P.Shards[0].Shape, (Shape{4, 2}));
  EXPECT_EQ(P.Shards[2].Shape, (Shape{3, 2}));
}

TEST(ShardingTest, GqaQkvSplitsEachSubParameter) {
  // shape [[8,4,4],-1] on a [16, 3] weight at tp 2. Sub-parameters occupy rows
  // q [0,8), k [8,12), v [12,16); each is halved on its own (§1.10), so rank 1
  // holds q [4,8), k [10,12), v [14,16), concatenated in that order.
  Param P = param({16, 3}, PartKind::Column, {16, 3}, 0, {8, 4, 4});
  computeShards(P, 2);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 4}, {0, 3}}, {{8, 10}, {0, 3}}, {{12, 14}, {0, 3}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{4, 8}, {0, 3}}, {{10, 12}, {0, 3}}, {{14, 16}, {0, 3}}}));
  EXPECT_EQ(P.Shards[1].Shape, (Shape{8, 3}));
  EXPECT_EQ(P.Part.RankSizes, (std::vector<Shape>{{4, 2, 2}, {4, 2, 2}}));
}

TEST(ShardingTest, ThreeDimViewSplitsEachExpert) {
  // (E=2, -1, in=5) view of a [12, 5] weight, partition_dim 1: each expert
  // owns 6 rows; rank 0 gets rows 0-2 of each expert, rank 1 rows 3-5.
  Param P = param({12, 5}, PartKind::Column, {2, 6, 5}, 1, {6});
  computeShards(P, 2);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 3}, {0, 5}}, {{6, 9}, {0, 5}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{3, 6}, {0, 5}}, {{9, 12}, {0, 5}}}));
  EXPECT_EQ(P.Shards[0].Shape, (Shape{6, 5}));
  EXPECT_EQ(P.Shards[1].Shape, (Shape{6, 5}));
}

TEST(ShardingTest, ThreeDimViewSplitOnTheLeadingDim) {
  // (4, 2, in=3) view of an [8, 3] weight, partition_dim 0 at tp 2: rank r gets
  // logical rows [2r, 2r+2) of dim 0, each 2 stored rows: stored [4r, 4r+4).
  Param P = param({8, 3}, PartKind::Column, {4, 2, 3}, 0, {4});
  computeShards(P, 2);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 4}, {0, 3}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{4, 8}, {0, 3}}}));
  EXPECT_EQ(P.Shards[1].Shape, (Shape{4, 3}));
}

TEST(ShardingTest, ColumnBiasWithSubSizes) {
  // The bias of the GQA qkv above: [16] with sub-sizes 8, 4, 4 (§1.9).
  Param P = param({16}, PartKind::Column, {16}, 0, {8, 4, 4});
  computeShards(P, 2);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 4}}, {{8, 10}}, {{12, 14}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{4, 8}}, {{10, 12}}, {{14, 16}}}));
  EXPECT_EQ(P.Shards[0].Shape, (Shape{8}));
}

TEST(ShardingTest, RowWithSubSizesSplitsInputColumns) {
  // Row spec [-1, [8,4,4]] on [8, 16] at tp 2: columns q [0,8) k [8,12) v [12,16).
  Param P = param({8, 16}, PartKind::Row, {8, 16}, 1, {8, 4, 4});
  computeShards(P, 2);
  EXPECT_EQ(boxes(P.Shards[0]), (std::vector<Ranges>{{{0, 8}, {0, 4}}, {{0, 8}, {8, 10}}, {{0, 8}, {12, 14}}}));
  EXPECT_EQ(boxes(P.Shards[1]), (std::vector<Ranges>{{{0, 8}, {4, 8}}, {{0, 8}, {10, 12}}, {{0, 8}, {14, 16}}}));
  EXPECT_EQ(P.Shards[1].Shape, (Shape{8, 8}));
}

TEST(ShardingTest, ReplicatedParameterIsWholeOnEveryRank) {
  Param P = param({7, 3}, PartKind::Replicate, {}, -1, {});
  computeShards(P, 4);
  ASSERT_EQ(P.Shards.size(), 4u);
  for (const Shard &S : P.Shards) {
    EXPECT_EQ(S.Shape, (Shape{7, 3}));
    EXPECT_EQ(boxes(S), (std::vector<Ranges>{{{0, 7}, {0, 3}}}));
  }
  EXPECT_TRUE(P.Part.RankSizes.empty());
}

TEST(ShardingTest, EmptyRankHasNoBoxes) {
  // 3 rows over 4 ranks: [1, 1, 1, 0].
  Param P = param({3, 2}, PartKind::Column, {3, 2}, 0, {3});
  computeShards(P, 4);
  EXPECT_TRUE(P.Shards[3].Boxes.empty());
  EXPECT_EQ(P.Shards[3].Shape, (Shape{0, 2}));
}

// --- property: the boxes of all ranks tile the tensor exactly once ----------

int64_t numel(const Shape &S) {
  int64_t N = 1;
  for (int64_t D : S)
    N *= D;
  return N;
}

void checkTiling(const Param &Orig, int64_t Tp) {
  Param P = Orig;
  computeShards(P, Tp);
  const Shape &Full = P.Info.Shape;
  ASSERT_EQ(P.Shards.size(), size_t(Tp));
  std::vector<int> Count(size_t(numel(Full)), 0);
  const int64_t Cols = Full.size() == 2 ? Full[1] : 1;
  for (int64_t R = 0; R < Tp; ++R) {
    const Shard &S = P.Shards[size_t(R)];
    int64_t Held = 0;
    for (const Box &B : S.Boxes) {
      ASSERT_EQ(B.Ranges.size(), Full.size());
      for (size_t D = 0; D < Full.size(); ++D) {
        ASSERT_LE(0, B.Ranges[D].first);
        ASSERT_LT(B.Ranges[D].first, B.Ranges[D].second) << "empty box on rank " << R;
        ASSERT_LE(B.Ranges[D].second, Full[D]);
      }
      int64_t R0 = B.Ranges[0].first, R1 = B.Ranges[0].second;
      int64_t C0 = Full.size() == 2 ? B.Ranges[1].first : 0, C1 = Full.size() == 2 ? B.Ranges[1].second : 1;
      for (int64_t I = R0; I < R1; ++I)
        for (int64_t J = C0; J < C1; ++J)
          ++Count[size_t(I * Cols + J)];
      Held += (R1 - R0) * (C1 - C0);
    }
    EXPECT_EQ(Held, numel(S.Shape)) << "rank " << R << " of " << Tp;
    if (P.Part.Kind == PartKind::Replicate) {
      EXPECT_EQ(S.Shape, Full);
    }
  }
  const int Want = P.Part.Kind == PartKind::Replicate ? int(Tp) : 1;
  for (size_t I = 0; I < Count.size(); ++I)
    ASSERT_EQ(Count[I], Want) << "element " << I << " at tp " << Tp;
}

TEST(ShardingTest, BoxesTileTheTensorExactlyOnce) {
  const std::vector<Param> Cases = {
      param({8, 4}, PartKind::Column, {8, 4}, 0, {8}),
      param({13, 5}, PartKind::Column, {13, 5}, 0, {13}),
      param({4, 8}, PartKind::Row, {4, 8}, 1, {8}),
      param({3, 11}, PartKind::Row, {3, 11}, 1, {11}),
      param({16, 3}, PartKind::Column, {16, 3}, 0, {8, 4, 4}),
      param({11, 2}, PartKind::Column, {11, 2}, 0, {5, 3, 3}),
      param({24, 4}, PartKind::Column, {2, 12, 4}, 1, {12}),
      param({15, 4}, PartKind::Column, {3, 5, 4}, 1, {5}),
      param({15, 4}, PartKind::Column, {3, 5, 4}, 1, {2, 3}),
      param({12, 6}, PartKind::Column, {2, 3, 2, 6}, 1, {3}),
      param({12, 6}, PartKind::Column, {4, 3, 6}, 0, {4}),
      param({5, 10}, PartKind::Row, {5, 10}, 1, {6, 2, 2}),
      param({12}, PartKind::Column, {12}, 0, {6, 3, 3}),
      param({15}, PartKind::Column, {3, 5}, 1, {5}),
      param({10}, PartKind::Column, {10}, 0, {10}),
      param({7, 3}, PartKind::Replicate, {}, -1, {}),
      param({9}, PartKind::Replicate, {}, -1, {}),
  };
  for (size_t C = 0; C < Cases.size(); ++C)
    for (int64_t Tp : {1, 2, 3, 4, 5, 8}) {
      SCOPED_TRACE("case " + std::to_string(C) + " tp " + std::to_string(Tp));
      checkTiling(Cases[C], Tp);
    }
}

} // namespace
