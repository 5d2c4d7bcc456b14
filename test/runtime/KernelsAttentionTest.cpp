/* Causal grouped-query attention (kernels.h): the forward and the saved logsumexp against a naive softmax
   in double for GQA ratios 1, 2 and 4, head_dim 8 and 16, seq 1 to 16, batch 2, a sliding window; the
   backward (dq, dk, dv, written over NaN) against float64 central finite differences; q/k/v and their
   gradients as column blocks of one fused qkv buffer (phi3); bad head ratios and strides rejected. */
#include "KernelsTestUtil.h"

#include <gmock/gmock.h>

#include <cstring>
#include <limits>

using namespace atp_kt;
using atp::DType;
using ::testing::HasSubstr;

namespace {

struct Case {
  i64 B, S, Hq, Hkv, D, window;
};

std::string name(const Case &c) {
  return "B" + std::to_string(c.B) + " S" + std::to_string(c.S) + " Hq" + std::to_string(c.Hq) + " Hkv" +
         std::to_string(c.Hkv) + " D" + std::to_string(c.D) + " window" + std::to_string(c.window);
}

atp::AttentionDims dense_dims(const Case &c) {
  atp::AttentionDims d;
  d.batch = c.B, d.seq = c.S, d.q_heads = c.Hq, d.kv_heads = c.Hkv, d.head_dim = c.D;
  d.q_stride = c.Hq * c.D, d.k_stride = d.v_stride = c.Hkv * c.D;
  d.scale = 1.0 / std::sqrt(double(c.D));
  d.sliding_window = c.window;
  return d;
}

/// Naive attention in double: out [B*S, Hq*D] and lse [B, Hq, S], from dense q, k, v.
void naive_attention(const Case &c, const Vec &q, const Vec &k, const Vec &v, Vec &out, Vec &lse) {
  const i64 rep = c.Hq / c.Hkv;
  const double scale = 1.0 / std::sqrt(double(c.D));
  out.assign(std::size_t(c.B * c.S * c.Hq * c.D), 0.0);
  lse.assign(std::size_t(c.B * c.Hq * c.S), 0.0);
  for (i64 b = 0; b < c.B; ++b)
    for (i64 h = 0; h < c.Hq; ++h)
      for (i64 i = 0; i < c.S; ++i) {
        Vec score(std::size_t(c.S), -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (i64 j = 0; j <= i; ++j) {
          if (c.window > 0 && i - j >= c.window)
            continue;
          double s = 0;
          for (i64 e = 0; e < c.D; ++e)
            s += q[std::size_t(((b * c.S + i) * c.Hq + h) * c.D + e)] *
                 k[std::size_t(((b * c.S + j) * c.Hkv + h / rep) * c.D + e)];
          score[std::size_t(j)] = s * scale;
          mx = std::max(mx, s * scale);
        }
        double z = 0;
        for (i64 j = 0; j < c.S; ++j)
          z += std::exp(score[std::size_t(j)] - mx); // exp(-inf) = 0 for masked keys
        lse[std::size_t((b * c.Hq + h) * c.S + i)] = mx + std::log(z);
        for (i64 j = 0; j < c.S; ++j) {
          const double p = std::exp(score[std::size_t(j)] - mx) / z;
          for (i64 e = 0; e < c.D; ++e)
            out[std::size_t(((b * c.S + i) * c.Hq + h) * c.D + e)] +=
                p * v[std::size_t(((b * c.S + j) * c.Hkv + h / rep) * c.D + e)];
        }
      }
}

const Case kCases[] = {
    {2, 16, 2, 2, 8, 0}, {2, 16, 4, 2, 8, 0}, {2, 16, 4, 1, 16, 0}, {2, 7, 4, 2, 16, 0},
    {2, 1, 2, 1, 8, 0},  {2, 12, 4, 4, 16, 0}, {2, 16, 4, 2, 8, 5},
};

TEST(KernelsAttention, ForwardAndLogsumexpMatchNaiveSoftmax) {
  for (const Case &c : kCases) {
    SCOPED_TRACE(name(c));
    const Vec q = random_vec(c.B * c.S * c.Hq * c.D, 1, -2, 2), k = random_vec(c.B * c.S * c.Hkv * c.D, 2, -2, 2);
    const Vec v = random_vec(c.B * c.S * c.Hkv * c.D, 3);
    Vec want, want_lse;
    naive_attention(c, q, k, v, want, want_lse);
    const auto d = dense_dims(c);
    Vec out(want.size(), 5.0), lse(want_lse.size(), 5.0);
    ASSERT_TRUE(kernels(DType::F64)->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), d).ok());
    EXPECT_TRUE(near_all(out, want, 1e-12, 1e-12));
    EXPECT_TRUE(near_all(lse, want_lse, 1e-12, 1e-12));
    auto qf = to_float(q), kf = to_float(k), vf = to_float(v);
    std::vector<float> of(want.size()), lf(want_lse.size());
    ASSERT_TRUE(kernels(DType::F32)->attention_forward(of.data(), lf.data(), qf.data(), kf.data(), vf.data(), d).ok());
    EXPECT_TRUE(near_all(of, want, 1e-5, 1e-5));
    EXPECT_TRUE(near_all(lf, want_lse, 1e-5, 1e-5));
  }
}

TEST(KernelsAttention, BackwardMatchesFiniteDifferences) {
  auto kk = kernels(DType::F64);
  for (const Case &c : kCases) {
    SCOPED_TRACE(name(c));
    const auto d = dense_dims(c);
    Vec q = random_vec(c.B * c.S * c.Hq * c.D, 4, -2, 2), k = random_vec(c.B * c.S * c.Hkv * c.D, 5, -2, 2);
    Vec v = random_vec(c.B * c.S * c.Hkv * c.D, 6);
    const Vec R = random_vec(q.size(), 7);
    Vec out(q.size()), lse(std::size_t(c.B * c.Hq * c.S));
    auto loss = [&] {
      EXPECT_TRUE(kk->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), d).ok());
      return dot(R, out);
    };
    loss();
    const Vec out0 = out, lse0 = lse;
    const double nan = std::nan("");
    Vec dq(q.size(), nan), dk(k.size(), nan), dv(v.size(), nan); // written, not accumulated
    ASSERT_TRUE(kk->attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(),
                                       out0.data(), lse0.data(), d).ok());
    if (c.S == 1) {
      // One key: its probability is 1 whatever q and k are, so no gradient reaches them (dp - D cancels, exactly
      // or to rounding, depending on the CPU's libm); v's gradient is dout itself.
      for (const Vec *g : {&dq, &dk})
        for (double x : *g)
          EXPECT_LE(std::fabs(x), 1e-12);
    } else {
      EXPECT_TRUE(grad_check(q, dq, loss));
      EXPECT_TRUE(grad_check(k, dk, loss));
    }
    EXPECT_TRUE(grad_check(v, dv, loss));
  }
}

TEST(KernelsAttention, FusedQkvColumnsGiveTheDenseResults) {
  // phi3: one [T, (Hq + 2 Hkv) D] qkv output; q, k, v are column blocks, and dq, dk, dv land in one dqkv
  const Case c{2, 9, 4, 2, 8, 0};
  const i64 T = c.B * c.S, qw = c.Hq * c.D, kw = c.Hkv * c.D, W = qw + 2 * kw;
  const Vec qkv = random_vec(T * W, 8);
  Vec q(std::size_t(T * qw)), k(std::size_t(T * kw)), v(std::size_t(T * kw));
  for (i64 t = 0; t < T; ++t)
    for (i64 j = 0; j < W; ++j) {
      const double x = qkv[std::size_t(t * W + j)];
      if (j < qw)
        q[std::size_t(t * qw + j)] = x;
      else if (j < qw + kw)
        k[std::size_t(t * kw + j - qw)] = x;
      else
        v[std::size_t(t * kw + j - qw - kw)] = x;
    }
  auto kk = kernels(DType::F64);
  const auto dd = dense_dims(c);
  Vec out(std::size_t(T * qw)), lse(std::size_t(c.B * c.Hq * c.S)), dq(q.size()), dk(k.size()), dv(v.size());
  const Vec dout = random_vec(out.size(), 9);
  ASSERT_TRUE(kk->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), dd).ok());
  ASSERT_TRUE(kk->attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                     out.data(), lse.data(), dd).ok());
  atp::AttentionDims fd = dd;
  fd.q_stride = fd.k_stride = fd.v_stride = W;
  Vec out2(out.size()), lse2(lse.size()), dqkv(std::size_t(T * W), 7.0);
  ASSERT_TRUE(kk->attention_forward(out2.data(), lse2.data(), qkv.data(), qkv.data() + qw, qkv.data() + qw + kw, fd)
                  .ok());
  EXPECT_TRUE(near_all(out2, out, 0, 0));
  EXPECT_TRUE(near_all(lse2, lse, 0, 0));
  ASSERT_TRUE(kk->attention_backward(dqkv.data(), dqkv.data() + qw, dqkv.data() + qw + kw, dout.data(), qkv.data(),
                                     qkv.data() + qw, qkv.data() + qw + kw, out2.data(), lse2.data(), fd).ok());
  for (i64 t = 0; t < T; ++t)
    for (i64 j = 0; j < W; ++j) {
      const double want = j < qw ? dq[std::size_t(t * qw + j)]
                          : j < qw + kw ? dk[std::size_t(t * kw + j - qw)]
                                        : dv[std::size_t(t * kw + j - qw - kw)];
      ASSERT_EQ(dqkv[std::size_t(t * W + j)], want) << "row " << t << " column " << j;
    }
}

TEST(KernelsAttention, SameInputsGiveTheSameBytes) {
  const Case c{2, 16, 4, 2, 16, 0};
  const auto d = dense_dims(c);
  const auto q = to_float(random_vec(c.B * c.S * c.Hq * c.D, 10)), k = to_float(random_vec(c.B * c.S * c.Hkv * c.D, 11));
  const auto v = to_float(random_vec(k.size(), 12)), dout = to_float(random_vec(q.size(), 13));
  std::vector<float> first;
  for (int threads : {2, 2, 1, 3}) { // twice, then other thread counts: the same bytes every time
    auto made = atp::make_cpu_kernels(DType::F32, threads);
    ASSERT_TRUE(made.ok());
    auto &kk = *made;
    std::vector<float> out(q.size()), lse(std::size_t(c.B * c.Hq * c.S)), dq(q.size()), dk(k.size()), dv(v.size());
    ASSERT_TRUE(kk->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), d).ok());
    ASSERT_TRUE(kk->attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                       out.data(), lse.data(), d).ok());
    std::vector<float> all = out;
    for (const auto *part : {&lse, &dq, &dk, &dv})
      all.insert(all.end(), part->begin(), part->end());
    if (first.empty())
      first = all;
    else
      EXPECT_EQ(std::memcmp(all.data(), first.data(), all.size() * sizeof(float)), 0) << threads << " threads";
  }
}

TEST(KernelsAttention, BadArguments) {
  auto kk = kernels(DType::F32);
  std::vector<float> buf(4096, 1.0f), out(4096, 2.0f);
  atp::AttentionDims d = dense_dims({1, 4, 6, 4, 8, 0});
  EXPECT_EQ(err(kk->attention_forward(out.data(), out.data(), buf.data(), buf.data(), buf.data(), d)),
            "attention_forward: q_heads 6 is not a multiple of kv_heads 4");
  d = dense_dims({1, 4, 4, 2, 8, 0});
  d.k_stride = 15;
  EXPECT_EQ(err(kk->attention_forward(out.data(), out.data(), buf.data(), buf.data(), buf.data(), d)),
            "attention_forward: k_stride 15 is less than the row length 16");
  d = dense_dims({1, 4, 4, 2, 8, 0});
  d.scale = 0;
  EXPECT_THAT(err(kk->attention_backward(out.data(), out.data(), out.data(), buf.data(), buf.data(), buf.data(),
                                         buf.data(), buf.data(), buf.data(), d)),
              HasSubstr("attention_backward: scale"));
  d = dense_dims({1, 0, 4, 2, 8, 0});
  EXPECT_EQ(err(kk->attention_forward(out.data(), out.data(), buf.data(), buf.data(), buf.data(), d)),
            "attention_forward: seq 0 must be positive");
  d = dense_dims({1, 4, 4, 2, 8, -1});
  EXPECT_THAT(err(kk->attention_forward(out.data(), out.data(), buf.data(), buf.data(), buf.data(), d)),
              HasSubstr("sliding_window -1"));
  EXPECT_EQ(out, std::vector<float>(4096, 2.0f));
}

} // namespace
