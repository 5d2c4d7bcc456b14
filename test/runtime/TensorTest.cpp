/* DType names and sizes, overflow-checked sizes, and HostTensor. */
#include "atp/dtype.h"
#include "atp/tensor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <limits>

using namespace atp;

TEST(DType, NamesAndSizes) {
  const std::pair<const char *, std::size_t> expected[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8},  {"U64", 8},     {"F64", 8},
  };
  ASSERT_EQ(all_dtypes().size(), std::size(expected));
  for (std::size_t i = 0; i < all_dtypes().size(); ++i) {
    DType d = all_dtypes()[i];
    EXPECT_STREQ(dtype_name(d), expected[i].first);
    EXPECT_EQ(dtype_size(d), expected[i].second);
    EXPECT_EQ(dtype_from_name(expected[i].first), d);
  }
  EXPECT_FALSE(dtype_from_name("bf16"));
  EXPECT_FALSE(dtype_from_name("F128"));
  EXPECT_FALSE(dtype_from_name(""));
}

TEST(DType, CheckedSizes) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({2, 0, 4}), 0);
  EXPECT_FALSE(shape_numel({2, -1}));
  EXPECT_FALSE(shape_numel({0, -1}));
  const std::int64_t big = std::int64_t(1) << 32;
  EXPECT_FALSE(shape_numel({big, big}));
  EXPECT_EQ(shape_numel({big, big, 0}), 0);
  EXPECT_EQ(tensor_nbytes(DType::BF16, {3, 5}), 30u);
  EXPECT_EQ(tensor_nbytes(DType::F64, {std::int64_t(1) << 59}), std::uint64_t(1) << 62);
  EXPECT_FALSE(tensor_nbytes(DType::F64, {std::int64_t(1) << 60}));
  EXPECT_EQ(shape_string({}), "[]");
  EXPECT_EQ(shape_string({4096, 11008}), "[4096, 11008]");
}

TEST(HostTensor, ZerosAlignedAndDeepCopied) {
  Result<HostTensor> t = HostTensor::zeros(DType::F32, {3, 5});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype(), DType::F32);
  EXPECT_EQ(t->shape(), (std::vector<std::int64_t>{3, 5}));
  EXPECT_EQ(t->numel(), 15);
  EXPECT_EQ(t->nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t->data()) % HostTensor::kAlignment, 0u);
  for (std::size_t i = 0; i < t->nbytes(); ++i)
    EXPECT_EQ(t->data()[i], std::byte{0});
  t->data_as<float>()[7] = 2.5f;
  HostTensor copy = *t;
  t->data_as<float>()[7] = -1.0f;
  EXPECT_EQ(copy.data_as<float>()[7], 2.5f);
  EXPECT_NE(copy.data(), t->data());

  HostTensor empty;
  EXPECT_EQ(empty.nbytes(), 0u);
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_NE(empty.data(), nullptr);
  Result<HostTensor> scalar = HostTensor::zeros(DType::I64, {});
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(scalar->nbytes(), 8u);
}

TEST(HostTensor, BadShapesAreErrors) {
  EXPECT_EQ(HostTensor::zeros(DType::F32, {2, -3}).status().message(),
            "tensor of shape [2, -3] and dtype F32 has a negative dimension or too many bytes");
  const std::int64_t big = std::int64_t(1) << 40;
  EXPECT_FALSE(HostTensor::zeros(DType::F32, {big, big}).ok());
}
