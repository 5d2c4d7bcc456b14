/* The rotary embedding (kernels.h): HF's default and Llama-3 frequencies against values worked out by hand,
   the cos/sin table against hand-computed entries, the rotation against a naive rotate_half written the
   way HF's apply_rotary_pos_emb reads (cat(cos, cos), cat(-x2, x1)) on a strided, partially rotary layout,
   and the backward as the transpose (finite differences, and forward-then-backward = identity). */
#include "KernelsTestUtil.h"

#include <gmock/gmock.h>

using namespace atp_kt;
using atp::DType;
using ::testing::HasSubstr;

namespace {

TEST(KernelsRope, DefaultInverseFrequencies) {
  // theta 10000, rotary dim 8: 1 / 10000^(2i/8) = 1, 10^-1, 10^-2, 10^-3
  auto inv = atp::rope_inv_freq({}, 8);
  ASSERT_TRUE(inv.ok()) << inv.status().message();
  EXPECT_TRUE(near_all(*inv, Vec{1.0, 0.1, 0.01, 0.001}, 1e-15, 0));
  // partial_rotary_factor 0.5 of head_dim 16 is rotary dim 8: the same frequencies
  atp::RopeConfig half;
  half.partial_rotary_factor = 0.5;
  EXPECT_EQ(*atp::rope_rotary_dim(half, 16), 8);
  EXPECT_TRUE(near_all(*atp::rope_inv_freq(half, 16), Vec{1.0, 0.1, 0.01, 0.001}, 1e-15, 0));
}

TEST(KernelsRope, Llama3ScalingByHand) {
  // theta 10000, dim 8 -> f = 1, 0.1, 0.01, 0.001; wavelengths 2pi/f = 6.28, 62.8, 628.3, 6283.2.
  // factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 1024:
  //   low_freq_wavelen = 1024 / 1 = 1024, high_freq_wavelen = 1024 / 4 = 256.
  //   f = 1, 0.1: wavelength < 256, unchanged.
  //   f = 0.001: wavelength 6283.2 > 1024, divided by 8: 0.000125.
  //   f = 0.01: 256 <= 628.3 <= 1024: smooth a = (1024 / 628.3185 - 1) / (4 - 1) = (1.6297466 - 1) / 3
  //     = 0.2099155391; f' = (1 - a) * 0.01 / 8 + a * 0.01 = 0.01 * (0.0987605576 + 0.2099155391)
  //     = 0.01 * 0.3086760967 = 0.003086760967.
  atp::RopeConfig cfg;
  cfg.rope_type = "llama3";
  cfg.factor = 8, cfg.low_freq_factor = 1, cfg.high_freq_factor = 4, cfg.original_max_position_embeddings = 1024;
  auto inv = atp::rope_inv_freq(cfg, 8);
  ASSERT_TRUE(inv.ok()) << inv.status().message();
  EXPECT_TRUE(near_all(*inv, Vec{1.0, 0.1, 0.003086760967, 0.000125}, 1e-10, 1e-15));
}

TEST(KernelsRope, TableHoldsCosThenSinPerPosition) {
  for (DType dt : {DType::F64, DType::F32}) {
    auto k = kernels(dt);
    const i64 positions = 6, dim = 8;
    Vec got(positions * dim);
    if (dt == DType::F64) {
      ASSERT_TRUE(k->rope_table(got.data(), {}, dim, positions).ok());
    } else {
      std::vector<float> f(got.size());
      ASSERT_TRUE(k->rope_table(f.data(), {}, dim, positions).ok());
      got = to_double(f);
    }
    const double tol = dt == DType::F64 ? 1e-15 : 1e-7;
    auto at = [&](i64 p, i64 col) { return got[std::size_t(p * dim + col)]; };
    EXPECT_NEAR(at(0, 0), 1.0, tol);                  // cos 0
    EXPECT_NEAR(at(0, 4), 0.0, tol);                  // sin 0
    EXPECT_NEAR(at(3, 1), 0.955336489125606, tol);    // cos(3 * 0.1)
    EXPECT_NEAR(at(3, 5), 0.29552020666133955, tol);  // sin(3 * 0.1)
    EXPECT_NEAR(at(5, 0), 0.28366218546322625, tol);  // cos 5
    EXPECT_NEAR(at(5, 4), -0.9589242746631385, tol);  // sin 5
  }
  // llama3 (the frequencies above): position 7, f = 0.0030867610: cos 0.0216073 = 0.99976657, sin = 0.02160565
  atp::RopeConfig cfg;
  cfg.rope_type = "llama3";
  cfg.factor = 8, cfg.low_freq_factor = 1, cfg.high_freq_factor = 4, cfg.original_max_position_embeddings = 1024;
  Vec t(8 * 8);
  ASSERT_TRUE(kernels(DType::F64)->rope_table(t.data(), cfg, 8, 8).ok());
  EXPECT_NEAR(t[7 * 8 + 2], 0.9997665708, 1e-9);
  EXPECT_NEAR(t[7 * 8 + 6], 0.0216056455, 1e-9);
}

/// HF's apply_rotary_pos_emb on one head vector: x * cat(cos, cos) + cat(-x2, x1) * cat(sin, sin) on the
/// first `rot` elements (the rest passes), cos/sin from theta^(-2i/rot) at position p.
Vec hf_rotate(const Vec &x, i64 rot, i64 p, double theta) {
  const i64 h = rot / 2;
  const auto n = static_cast<std::size_t>(rot);
  Vec c(n), s(n), rh(n);
  for (i64 i = 0; i < rot; ++i) {
    const double f = std::pow(theta, -double(2 * (i % h)) / double(rot));
    c[std::size_t(i)] = std::cos(double(p) * f);
    s[std::size_t(i)] = std::sin(double(p) * f);
    rh[std::size_t(i)] = i < h ? -x[std::size_t(i + h)] : x[std::size_t(i - h)];
  }
  Vec out = x;
  for (i64 i = 0; i < rot; ++i)
    out[std::size_t(i)] = x[std::size_t(i)] * c[std::size_t(i)] + rh[std::size_t(i)] * s[std::size_t(i)];
  return out;
}

TEST(KernelsRope, ForwardMatchesHfRotateHalfOnStridedPartialHeads) {
  // two heads of dim 8 with rotary dim 4 (partial_rotary_factor 0.5), inside rows of 21 elements
  // (a fused buffer: the heads start at column 3, the other columns must stay untouched)
  const i64 B = 2, S = 5, H = 2, D = 8, stride = 21, col0 = 3;
  atp::RopeConfig cfg;
  cfg.theta = 500.0;
  cfg.partial_rotary_factor = 0.5;
  const i64 rot = *atp::rope_rotary_dim(cfg, D);
  ASSERT_EQ(rot, 4);
  for (DType dt : {DType::F64, DType::F32}) {
    auto k = kernels(dt);
    const Vec x = random_vec(B * S * stride, 40);
    Vec want = x;
    for (i64 b = 0; b < B; ++b)
      for (i64 s = 0; s < S; ++s)
        for (i64 h = 0; h < H; ++h) {
          const std::size_t at = std::size_t((b * S + s) * stride + col0 + h * D);
          const Vec head(x.begin() + long(at), x.begin() + long(at + D));
          const Vec r = hf_rotate(head, rot, s, cfg.theta);
          std::copy(r.begin(), r.end(), want.begin() + long(at));
        }
    atp::RopeDims d{B, S, H, D, stride, rot, 7};
    if (dt == DType::F64) {
      Vec table(7 * rot), y = x;
      ASSERT_TRUE(k->rope_table(table.data(), cfg, D, 7).ok());
      ASSERT_TRUE(k->rope_forward(y.data() + col0, d, table.data()).ok());
      EXPECT_TRUE(near_all(y, want, 1e-14, 1e-14));
    } else {
      std::vector<float> table(7 * rot), y = to_float(x);
      ASSERT_TRUE(k->rope_table(table.data(), cfg, D, 7).ok());
      ASSERT_TRUE(k->rope_forward(y.data() + col0, d, table.data()).ok());
      EXPECT_TRUE(near_all(y, want, 1e-6, 1e-6));
    }
  }
}

TEST(KernelsRope, BackwardIsTheTransposeRotation) {
  const i64 B = 2, S = 6, H = 3, D = 8;
  auto k = kernels(DType::F64);
  Vec table(S * D);
  ASSERT_TRUE(k->rope_table(table.data(), {}, D, S).ok());
  const atp::RopeDims d{B, S, H, D, H * D, D, S};
  Vec x = random_vec(B * S * H * D, 41);
  const Vec R = random_vec(x.size(), 42);
  auto loss = [&] {
    Vec y = x;
    EXPECT_TRUE(k->rope_forward(y.data(), d, table.data()).ok());
    return dot(R, y);
  };
  Vec dx = R;
  ASSERT_TRUE(k->rope_backward(dx.data(), d, table.data()).ok());
  EXPECT_TRUE(grad_check(x, dx, loss));
  Vec round = x; // a rotation: backward undoes forward
  ASSERT_TRUE(k->rope_forward(round.data(), d, table.data()).ok());
  ASSERT_TRUE(k->rope_backward(round.data(), d, table.data()).ok());
  EXPECT_TRUE(near_all(round, x, 1e-14, 1e-14));
}

TEST(KernelsRope, BadArguments) {
  auto k = kernels(DType::F32);
  std::vector<float> x(64, 1.0f), table(32, 0.0f);
  EXPECT_EQ(err(k->rope_forward(x.data(), {1, 5, 1, 8, 8, 8, 4}, table.data())),
            "rope_forward: seq 5 exceeds the rotary table's 4 positions");
  EXPECT_EQ(err(k->rope_backward(x.data(), {1, 4, 1, 8, 8, 6, 4}, table.data())), "");
  EXPECT_EQ(err(k->rope_forward(x.data(), {1, 4, 1, 8, 8, 5, 4}, table.data())),
            "rope_forward: rotary_dim 5 must be even and at most head_dim 8");
  EXPECT_EQ(err(k->rope_forward(x.data(), {1, 4, 2, 8, 8, 8, 4}, table.data())),
            "rope_forward: row_stride 8 is less than the row length 16");
  atp::RopeConfig yarn;
  yarn.rope_type = "yarn";
  EXPECT_THAT(err(k->rope_table(table.data(), yarn, 8, 4)), HasSubstr("rope_scaling type 'yarn' is not supported"));
  atp::RopeConfig odd;
  odd.partial_rotary_factor = 0.75; // 6 * 0.75 = 4.5 -> 4: fine; 10 * 0.75 = 7.5 -> 7: odd
  EXPECT_EQ(*atp::rope_rotary_dim(odd, 6), 4);
  EXPECT_THAT(atp::rope_rotary_dim(odd, 10).status().message(), HasSubstr("rotary dim 7"));
  EXPECT_EQ(table, std::vector<float>(32, 0.0f));
}

} // namespace
