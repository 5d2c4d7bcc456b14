// resolve_batch: DeepSpeed's completion of the three batch keys for a DP size (runtime/config.py,
// _configure_train_batch_size and _batch_assertion), case by case, with the values worked out by hand.
#include "atp/trainer.h"

#include <gtest/gtest.h>

namespace {

atp::BatchSizes ok(std::int64_t tb, std::int64_t mb, std::int64_t gas, int dp) {
  auto r = atp::resolve_batch({tb, mb, gas}, dp);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : atp::BatchSizes{};
}

void expect(const atp::BatchSizes &b, std::int64_t mb, std::int64_t gas, std::int64_t tb) {
  EXPECT_EQ(b.micro_batch, mb);
  EXPECT_EQ(b.grad_accum, gas);
  EXPECT_EQ(b.train_batch, tb);
}

TEST(ResolveBatch, TwoKeysGiveTheThird) {
  expect(ok(32, 2, 0, 4), 2, 4, 32);  // GAS = 32 / (2 x 4)
  expect(ok(32, 0, 2, 4), 4, 2, 32);  // MB = 32 / (2 x 4)
  expect(ok(0, 2, 3, 4), 2, 3, 24);   // TB = 2 x 3 x 4
}

TEST(ResolveBatch, OneKeyMeansNoAccumulation) {
  expect(ok(16, 0, 0, 4), 4, 1, 16);
  expect(ok(0, 8, 0, 2), 8, 1, 16);
}

TEST(ResolveBatch, AllThreeMustAgree) {
  expect(ok(16, 2, 4, 2), 2, 4, 16);
  auto bad = atp::resolve_batch({16, 2, 4}, 4);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("train_batch_size (16) must equal train_micro_batch_size_per_gpu (2) x "
                                        "gradient_accumulation_steps (4) x the DP size (4"),
            std::string::npos)
      << bad.status().message();
}

TEST(ResolveBatch, IndivisibleAndMissingAreErrors) {
  EXPECT_FALSE(atp::resolve_batch({10, 4, 0}, 1).ok()); // GAS = 10 / 4 is not whole
  EXPECT_FALSE(atp::resolve_batch({2, 0, 0}, 4).ok());  // MB = 2 / 4 = 0
  auto none = atp::resolve_batch({0, 0, 3}, 2);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("neither train_batch_size nor train_micro_batch_size_per_gpu"),
            std::string::npos);
  EXPECT_FALSE(atp::resolve_batch({8, 2, 0}, 0).ok());
}

} // namespace
