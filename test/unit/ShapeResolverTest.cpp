//===- ShapeResolverTest.cpp - tests for `shape` / `partition_dim` ------===//
//
// The "Resolved examples" table of reference §1.10 (DeepSpeed's
// _infer_subparam_logical_shapes run locally), row by row, and the
// layer-construction errors of §3.2 with DeepSpeed's message text (autotpc
// drops the trailing period, STYLE B4). Specs are built in the test.
//
//===----------------------------------------------------------------------===//

#include "IR/ShapeResolver.h"

#include <gtest/gtest.h>

using namespace autotpc;

namespace {

using Shape = std::vector<int64_t>;

ShapeEntry dim(int64_t V) {
  ShapeEntry E;
  E.Value = V;
  return E;
}

ShapeEntry sizes(std::vector<int64_t> S) {
  ShapeEntry E;
  E.IsList = true;
  E.Sizes = std::move(S);
  return E;
}

LayerSpec spec(PartitionType T, std::vector<ShapeEntry> Entries, std::optional<int64_t> PD) {
  LayerSpec S;
  S.Type = T;
  S.Shape = std::move(Entries);
  S.PartitionDim = PD;
  return S;
}

std::optional<ResolvedShape> resolve(const LayerSpec &S, int64_t Out, int64_t In, std::string &Err) {
  return resolveShape(S, Out, In, "layers.0.w", Err);
}

// Row 1: (6144, 4096), [[4096,1024,1024],-1], pd 0 -> (6144,4096) / (6144,) / (4096,1024,1024) / 0.
TEST(ShapeResolverTest, ReferenceRowGqaSubSizes) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Column, {sizes({4096, 1024, 1024}), dim(-1)}, 0), 6144, 4096, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->Logical, (Shape{6144, 4096}));
  EXPECT_EQ(R->OutputShape, (Shape{6144}));
  EXPECT_EQ(R->SubSizes, (Shape{4096, 1024, 1024}));
  EXPECT_EQ(R->PartitionDim, 0);
  EXPECT_EQ(R->BiasPartitionDim, std::optional<int>(0));
  EXPECT_FALSE(R->FromCount);
}

// Row 2: (32, 16), [2,-1], pd 0 -> (32,16) / (32,) / (16,16) / 0. Two unknowns
// and len(shape) == ndim: the count dim takes `out`, -1 takes `in`.
TEST(ShapeResolverTest, ReferenceRowEqualCount) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Column, {dim(2), dim(-1)}, 0), 32, 16, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->Logical, (Shape{32, 16}));
  EXPECT_EQ(R->OutputShape, (Shape{32}));
  EXPECT_EQ(R->SubSizes, (Shape{16, 16}));
  EXPECT_EQ(R->BiasPartitionDim, std::optional<int>(0));
  EXPECT_TRUE(R->FromCount);
}

// Row 3: (64, 16), [8,-1,16], pd 1 -> (8,8,16) / (8,8) / none / 1. "none": no
// sub-parameters, i.e. a single one spanning the whole partition dim (8).
TEST(ShapeResolverTest, ReferenceRowThreeDimView) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Column, {dim(8), dim(-1), dim(16)}, 1), 64, 16, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->Logical, (Shape{8, 8, 16}));
  EXPECT_EQ(R->OutputShape, (Shape{8, 8}));
  EXPECT_EQ(R->SubSizes, (Shape{8}));
  EXPECT_EQ(R->PartitionDim, 1);
  EXPECT_EQ(R->BiasPartitionDim, std::optional<int>(1));
}

// Row 4: (8, 16) row, [-1,[8,4,4]], pd 1 -> (8,16) / (8,) / (8,4,4) / none:
// pd 1 is not < len(output shape) 1, so a bias is replicated.
TEST(ShapeResolverTest, ReferenceRowRowSubSizesBiasReplicated) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Row, {dim(-1), sizes({8, 4, 4})}, 1), 8, 16, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->Logical, (Shape{8, 16}));
  EXPECT_EQ(R->OutputShape, (Shape{8}));
  EXPECT_EQ(R->SubSizes, (Shape{8, 4, 4}));
  EXPECT_EQ(R->PartitionDim, 1);
  EXPECT_FALSE(R->BiasPartitionDim.has_value());
  // Same with the partition dim left to the row default (1, reference §1.4).
  auto D = resolve(spec(PartitionType::Row, {dim(-1), sizes({8, 4, 4})}, std::nullopt), 8, 16, Err);
  ASSERT_TRUE(D) << Err;
  EXPECT_EQ(D->PartitionDim, 1);
  EXPECT_EQ(D->SubSizes, (Shape{8, 4, 4}));
}

// Row 5: (30, 16), [4,-1], pd 0 -> error: not divisible by sub-param count 4.
TEST(ShapeResolverTest, ReferenceRowCountDoesNotDivide) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {dim(4), dim(-1)}, 0), 30, 16, Err));
  EXPECT_EQ(Err, "partition_dim size 30 not divisible by sub-param count 4");
}

// Row 6: (24, 16), [3,-1,8], pd 0 -> error: multiple inferred dims, ambiguous.
TEST(ShapeResolverTest, ReferenceRowAmbiguous) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {dim(3), dim(-1), dim(8)}, 0), 24, 16, Err));
  EXPECT_EQ(Err, "shape has multiple inferred dims and is ambiguous for weight");
}

// §3.2 `cannot infer shape for weight with numel {n}`: 10*16 = 160 is not a
// multiple of the known product 3.
TEST(ShapeResolverTest, CannotInfer) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {dim(-1), dim(3)}, 0), 10, 16, Err));
  EXPECT_EQ(Err, "cannot infer shape for weight with numel 160");
}

// §3.2 `shape last dim {x} must match weight input dim {in}`: [-1,4,8] on
// (16,16) infers 256/32 = 8 rows, products agree, but the last dim is 8.
TEST(ShapeResolverTest, LastDimMustBeTheInputDim) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {dim(-1), dim(4), dim(8)}, 0), 16, 16, Err));
  EXPECT_EQ(Err, "shape last dim 8 must match weight input dim 16");
  // [-1, 16] on (8, 32): -1 is inferred as 256 / 16 = 16, then 16 != 32.
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {dim(-1), dim(16)}, 0), 8, 32, Err));
  EXPECT_EQ(Err, "shape last dim 16 must match weight input dim 32");
}

// §3.2 `shape product {p} != weight numel {n}`: 4*4*8 = 128 != 16*16.
TEST(ShapeResolverTest, ProductMustBeNumel) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {sizes({2, 2}), dim(4), dim(8)}, 0), 16, 16, Err));
  EXPECT_EQ(Err, "shape product 128 != weight numel 256");
}

// §3.2 `output shape product {p} != weight output dim {out}`. With in >= 1 the
// numel and last-dim checks already imply prod(leading) == out (prod == out*in
// and last == in), so only a zero-width weight reaches it: (4, 0) viewed as
// [[1,2],-1] has leading product 3 while numel 0 lets -1 be 0 = in.
TEST(ShapeResolverTest, OutputProductMustBeOutDim) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {sizes({1, 2}), dim(-1)}, 0), 4, 0, Err));
  EXPECT_EQ(Err, "output shape product 3 != weight output dim 4");
}

// Sub-sizes that do not add up to the weight: [[4096,1024,512],-1] on
// (6144, 4096) sums to 5632 = 2^9 * 11, and numel 3 * 2^23 has no factor 11.
TEST(ShapeResolverTest, WrongSubSizesAreRejected) {
  std::string Err;
  EXPECT_FALSE(resolve(spec(PartitionType::Column, {sizes({4096, 1024, 512}), dim(-1)}, 0), 6144, 4096, Err));
  EXPECT_EQ(Err, "cannot infer shape for weight with numel 25165824");
}

// chatglm/phi3 style (3,-1) on an MHA qkv [3*H, H]: equal thirds.
TEST(ShapeResolverTest, EqualThirds) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Column, {dim(3), dim(-1)}, 0), 3 * 3072, 3072, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->SubSizes, (Shape{3072, 3072, 3072}));
  EXPECT_EQ(R->Logical, (Shape{9216, 3072}));
}

// A MoE-style (E, -1, in) view with partition_dim 1 (reference §1.10 last bullet).
TEST(ShapeResolverTest, ExpertView) {
  std::string Err;
  auto R = resolve(spec(PartitionType::Column, {dim(4), dim(-1), dim(32)}, 1), 4 * 48, 32, Err);
  ASSERT_TRUE(R) << Err;
  EXPECT_EQ(R->Logical, (Shape{4, 48, 32}));
  EXPECT_EQ(R->SubSizes, (Shape{48}));
  EXPECT_EQ(R->PartitionDim, 1);
}

TEST(ShapeResolverTest, PlainColumnAndRow) {
  ResolvedShape C = plainShape(PartitionType::Column, 8, 4);
  EXPECT_EQ(C.Logical, (Shape{8, 4}));
  EXPECT_EQ(C.PartitionDim, 0);
  EXPECT_EQ(C.SubSizes, (Shape{8}));
  EXPECT_EQ(C.OutputShape, (Shape{8}));
  EXPECT_EQ(C.BiasPartitionDim, std::optional<int>(0)); // a column bias splits with the rows (§1.9)
  EXPECT_FALSE(C.FromCount);

  ResolvedShape R = plainShape(PartitionType::Row, 8, 4);
  EXPECT_EQ(R.Logical, (Shape{8, 4}));
  EXPECT_EQ(R.PartitionDim, 1);
  EXPECT_EQ(R.SubSizes, (Shape{4}));
  EXPECT_EQ(R.OutputShape, (Shape{8}));
  EXPECT_FALSE(R.BiasPartitionDim.has_value()); // a row bias is replicated (§1.9)
}

} // namespace
