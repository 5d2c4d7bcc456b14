//===- ZeroUnitTest.cpp - the ZeRO engine's parts, against hand computation -===//
//
// Learning-rate schedules, the loss scaler, the padded layout and the CPU
// AdamW/cast ops. Every expected value is worked out in the comment next to
// it from DeepSpeed's formulas (runtime/include/atp/lr_schedule.h and
// loss_scaler.h restate them), not read back from the code.
//
//===----------------------------------------------------------------------===//
#include "atp/comm.h"
#include "atp/loss_scaler.h"
#include "atp/lr_schedule.h"
#include "atp/ops.h"
#include "atp/zero.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace atp;

namespace {

SchedulerConfig warmup(LrSchedule type, bool log, std::int64_t w, std::int64_t total = 0) {
  SchedulerConfig s;
  s.type = type;
  s.warmup_min_lr = 0.0;
  s.warmup_max_lr = 0.01;
  s.warmup_num_steps = w;
  s.warmup_log = log;
  s.total_num_steps = total;
  return s;
}

TEST(LrSchedule, ConstantIsTheOptimizerLr) {
  EXPECT_EQ(lr_at_step(SchedulerConfig{}, 0.25, 0), 0.25);
  EXPECT_EQ(lr_at_step(SchedulerConfig{}, 0.25, 1000), 0.25);
}

TEST(LrSchedule, WarmupLrLog) {
  SchedulerConfig s = warmup(LrSchedule::WarmupLR, true, 10);
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 0), 0.0);                            // the init value: warmup_min_lr
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 1), 0.0);                            // i = 0: log(1) = 0
  EXPECT_NEAR(lr_at_step(s, 1.0, 2), 0.01 * 0.30102999566398120, 1e-15);   // i = 1: log 2 / log 10
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 11), 0.01);                          // i = 10 = W: the max
}

TEST(LrSchedule, WarmupLrLinearAndMinimumOfTwoSteps) {
  SchedulerConfig s = warmup(LrSchedule::WarmupLR, false, 4);
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 3), 0.005); // i = 2: 2/4 of 0.01
  s.warmup_num_steps = 1;                         // DeepSpeed raises W to 2
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 2), 0.005); // i = 1: 1/2
}

TEST(LrSchedule, WarmupDecayLr) {
  SchedulerConfig s = warmup(LrSchedule::WarmupDecayLR, true, 10, 20);
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 16), 0.005); // i = 15: (20 - 15) / (20 - 10) = 0.5
  EXPECT_DOUBLE_EQ(lr_at_step(s, 1.0, 25), 0.0);   // i = 24: max(0, -0.4)
}

TEST(LrSchedule, WarmupCosineLr) {
  SchedulerConfig s = warmup(LrSchedule::WarmupCosineLR, true, 10, 20);
  s.warmup_min_ratio = 0.0;
  s.cos_min_ratio = 1e-4;
  EXPECT_DOUBLE_EQ(lr_at_step(s, 0.1, 0), 0.0);                            // the init value is 0
  EXPECT_NEAR(lr_at_step(s, 0.1, 5), 0.1 * 0.69897000433601886, 1e-15);    // i = 4: log 5 / log 10
  // i = 11: (1 + cos(0.2 pi)) / 2 = 0.9045084971874737; 1e-4 + 0.9999 * that = 0.904518046337755
  EXPECT_NEAR(lr_at_step(s, 0.1, 12), 0.0904518046337755, 1e-15);
}

TEST(LossScaler, HysteresisThenHalvingThenGrowth) {
  LossScaleConfig c;
  c.initial_scale_power = 4; // 16
  c.hysteresis = 2;
  c.window = 3;
  LossScaler s(c);
  EXPECT_EQ(s.scale(), 16.0);
  s.update(true);  // iter 0: one unit of hysteresis used, scale kept
  EXPECT_EQ(s.scale(), 16.0);
  s.update(true);  // iter 1: hysteresis spent: halve; last overflow = 1
  EXPECT_EQ(s.scale(), 8.0);
  s.update(false); // iter 2: (2 - 1) % 3 != 0
  s.update(false); // iter 3: (3 - 1) % 3 != 0
  EXPECT_EQ(s.scale(), 8.0);
  s.update(false); // iter 4: (4 - 1) % 3 == 0: double, hysteresis restored
  EXPECT_EQ(s.scale(), 16.0);
  s.update(true);  // iter 5: hysteresis 2 again, so kept
  EXPECT_EQ(s.scale(), 16.0);
}

TEST(LossScaler, NeverBelowMinimumAndStaticNeverMoves) {
  LossScaleConfig c;
  c.initial_scale_power = 1; // 2
  c.hysteresis = 1;
  c.min_scale = 1;
  LossScaler s(c);
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.scale(), 1.0);
  c.static_scale = 128;
  LossScaler fixed(c);
  fixed.update(true);
  EXPECT_EQ(fixed.scale(), 128.0);
  EXPECT_FALSE(fixed.dynamic());
}

// A layout of three parameters in two buckets: k0 [0, 100), k1 [128, 138) in bucket 0 = [0, 138);
// k2 [192, 197) in bucket 1 = [192, 197).
const FlatParam kParams[] = {{2, 0, 100, true}, {1, 128, 10, false}, {0, 192, 5, true}};
const GradBucket kBuckets[] = {{0, 138, 0, 2}, {192, 197, 2, 1}};
const FlatLayout kLayout{197, 3, kParams, 2, kBuckets};

TEST(ZeroPaddedLayout, UnevenTailsForThreeRanks) {
  PaddedLayout p = *zero_padded_layout(kLayout, 3);
  // bucket 0: ceil(138 / 3) = 46 -> padded 138 at 0; bucket 1 at alignUp(138, 64) = 192: ceil(5 / 3) = 2 -> 6
  ASSERT_EQ(p.buckets.size(), 2u);
  EXPECT_EQ(p.buckets[0].begin, 0);
  EXPECT_EQ(p.buckets[0].piece, 46);
  EXPECT_EQ(p.buckets[1].begin, 192);
  EXPECT_EQ(p.buckets[1].piece, 2);
  EXPECT_EQ(p.buckets[1].part, 46);
  EXPECT_EQ(p.numel, 198);    // 192 + 3 * 2
  EXPECT_EQ(p.partition, 48); // 46 + 2
  EXPECT_EQ(p.offsets, (std::vector<std::int64_t>{0, 128, 192}));
}

TEST(ZeroPaddedLayout, FourRanksShiftTheSecondBucket) {
  PaddedLayout p = *zero_padded_layout(kLayout, 4);
  // bucket 0: ceil(138 / 4) = 35 -> 140; bucket 1 at alignUp(140, 64) = 192: 2 -> 8
  EXPECT_EQ(p.numel, 200);
  EXPECT_EQ(p.partition, 37);
  PaddedLayout one = *zero_padded_layout(kLayout, 1);
  EXPECT_EQ(one.numel, 197);
  EXPECT_EQ(one.partition, 197 - 54); // 138 + 5: the gap [138, 192) is nobody's
  EXPECT_FALSE(zero_padded_layout(kLayout, 0).ok());
}

AdamWStep first_step(bool adam_w_mode) {
  // lr 0.1, betas 0.9 / 0.999, eps 1e-8, weight decay 0.01, step 1: bias corrections 0.1 and 0.001
  return AdamWStep{0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.1f, 0.001f, adam_w_mode, 1.0f};
}

TEST(CpuOps, AdamWDecoupledByHand) {
  // g = 0.5: m = 0.05, v = 0.00025; m/bc1 = 0.5, sqrt(v/bc2) = 0.5; update = 0.5 / (0.5 + 1e-8) + 0.01 * 1
  // = 1.00999998; p = 1 - 0.1 * 1.00999998 = 0.899000002
  auto ops = make_cpu_ops();
  float p = 1, g = 0.5f, m = 0, v = 0;
  std::uint16_t out = 0;
  ASSERT_TRUE(ops->adamw(&p, &g, DType::F32, &m, &v, 1, first_step(true), &out, DType::BF16).ok());
  EXPECT_NEAR(p, 0.899000002, 1e-6);
  EXPECT_NEAR(m, 0.05, 1e-7);     // 1 - 0.9f and 1 - 0.999f are float: relative errors up to 1.3e-5
  EXPECT_NEAR(v, 0.00025, 1e-8);
  EXPECT_EQ(out, float_to_bf16(p));
}

TEST(CpuOps, AdamWL2ByHand) {
  // g = 0.5 + 0.01 * 1 = 0.51: m/bc1 = 0.51 = sqrt(v/bc2); update = 0.51 / (0.51 + 1e-8); p = 1 - 0.1 * that = 0.9
  auto ops = make_cpu_ops();
  float p = 1, g = 0.5f, m = 0, v = 0;
  ASSERT_TRUE(ops->adamw(&p, &g, DType::F32, &m, &v, 1, first_step(false), nullptr, DType::F32).ok());
  EXPECT_NEAR(p, 0.9, 1e-6);
}

TEST(CpuOps, GradScaleMultipliesFirst) {
  // grad_scale 0.25 on g = 2 is the g = 0.5 case above
  auto ops = make_cpu_ops();
  AdamWStep s = first_step(true);
  s.grad_scale = 0.25f;
  float p = 1, g = 2, m = 0, v = 0;
  ASSERT_TRUE(ops->adamw(&p, &g, DType::F32, &m, &v, 1, s, nullptr, DType::F32).ok());
  EXPECT_NEAR(p, 0.899000002, 1e-6);
}

TEST(CpuOps, CastRoundsToNearestEvenAndAccumulates) {
  auto ops = make_cpu_ops();
  // 1 + 2^-8 lies halfway between the bf16 values 1 and 1 + 2^-7: ties to even -> 1 (0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6... ties to the even mantissa 1 + 2^-6 (0x3F82)
  const float in[2] = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8)};
  std::uint16_t out[2];
  ASSERT_TRUE(ops->cast(out, DType::BF16, in, DType::F32, 2).ok());
  EXPECT_EQ(out[0], 0x3F80);
  EXPECT_EQ(out[1], 0x3F82);
  float acc[2] = {1, 2};
  ASSERT_TRUE(ops->accumulate(acc, out, DType::BF16, 2).ok());
  EXPECT_EQ(acc[0], 2.0f);
  EXPECT_EQ(acc[1], 2.0f + 1.0f + std::ldexp(1.0f, -6));
  EXPECT_FALSE(ops->cast(out, DType::I32, in, DType::F32, 2).ok());
}

TEST(CpuOps, GradStatsSumsNormSpansAndChecksEverySpan) {
  auto ops = make_cpu_ops();
  const float x[6] = {1, 2, 3, 4, 5, 6};
  const GradSpan spans[3] = {{0, 2, true}, {2, 4, false}, {4, 6, true}}; // 1 + 4 + 25 + 36
  GradStats r = *ops->grad_stats(x, DType::F32, spans, 3);
  EXPECT_EQ(r.sum_squares, 66.0);
  EXPECT_FALSE(r.nonfinite);
  // The same values in bf16 (all exact there): the same sum.
  std::uint16_t h[6];
  ASSERT_TRUE(ops->cast(h, DType::BF16, x, DType::F32, 6).ok());
  r = *ops->grad_stats(h, DType::BF16, spans, 3);
  EXPECT_EQ(r.sum_squares, 66.0);
  float y[3] = {0, std::numeric_limits<float>::quiet_NaN(), 0};
  const GradSpan outside_norm[2] = {{0, 1, true}, {1, 3, false}}; // the check reads spans outside the norm too
  EXPECT_TRUE(ops->grad_stats(y, DType::F32, outside_norm, 2)->nonfinite);
  y[1] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(ops->grad_stats(y, DType::F32, outside_norm, 2)->nonfinite);
  EXPECT_FALSE(ops->grad_stats(y, DType::F32, outside_norm, 1)->nonfinite);
  EXPECT_FALSE(ops->grad_stats(x, DType::I32, spans, 3).ok());
}

TEST(CpuOps, AdamWReadsSixteenBitGradientsExactly) {
  auto ops = make_cpu_ops();
  const float g32[3] = {0.75f, -3.5f, 1.0f / 1024}; // exact in bf16 and f16
  std::uint16_t g16[3];
  for (DType d : {DType::BF16, DType::F16}) {
    ASSERT_TRUE(ops->cast(g16, d, g32, DType::F32, 3).ok());
    float p[3] = {1, 2, 3}, m[3] = {0.1f, 0, 0}, v[3] = {0.01f, 0, 0};
    float q[3] = {1, 2, 3}, mq[3] = {0.1f, 0, 0}, vq[3] = {0.01f, 0, 0};
    const AdamWStep s = first_step(true);
    ASSERT_TRUE(ops->adamw(p, g32, DType::F32, m, v, 3, s, nullptr, DType::F32).ok());
    ASSERT_TRUE(ops->adamw(q, g16, d, mq, vq, 3, s, nullptr, DType::F32).ok());
    EXPECT_EQ(std::memcmp(p, q, sizeof p), 0);
    EXPECT_EQ(std::memcmp(m, mq, sizeof m), 0);
    EXPECT_EQ(std::memcmp(v, vq, sizeof v), 0);
  }
  float x = 0;
  EXPECT_FALSE(ops->adamw(&x, &x, DType::I32, &x, &x, 1, first_step(true), nullptr, DType::F32).ok());
}

} // namespace
