/* Cross-entropy, SwiGLU and the elementwise kernels (kernels.h): the loss against log-sum-exp worked out by
   hand and against a naive softmax, HF's ignore_index rule, the explicit denominator and grad_scale of the
   fused dlogits, bad targets rejected with the logits untouched; SwiGLU against naive silu(g) * u for two
   buffers and phi3's fused [gate | up] rows, its backward by finite differences and in place; add/scale;
   and a GEMM-sized linear that gives the same bytes twice and for 1, 2, 3 or 8 threads. */
#include "KernelsTestUtil.h"

#include <gmock/gmock.h>

#include <cstring>

using namespace atp_kt;
using atp::DType;
using atp::Write;
using ::testing::HasSubstr;

namespace {

TEST(KernelsCrossEntropy, HandComputedLossGradientAndIgnoreIndex) {
  // row 0: logits 1, 2, 3, target 2: lse = 3 + log(1 + e^-1 + e^-2) = 3.4076059644; loss 0.4076059644,
  //        softmax = 0.0900305732, 0.2447284711, 0.6652409558
  // row 1: logits 0, 0, 0, target 1: loss log 3 = 1.0986122887, softmax 1/3 each
  // row 2: ignored (-100): no loss, zero gradient
  Vec logits = {1, 2, 3, 0, 0, 0, 5, -5, 7};
  const std::vector<std::int32_t> targets = {2, 1, -100};
  atp::CrossEntropyArgs a;
  a.rows = 3, a.vocab = 3, a.denominator = 4, a.grad_scale = 2.0; // factor 2 / 4 = 0.5
  auto r = kernels(DType::F64)->cross_entropy(logits.data(), targets.data(), a);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NEAR(r->loss_sum, 0.40760596444438013 + 1.0986122886681098, 1e-14);
  EXPECT_EQ(r->count, 2);
  const Vec want = {0.5 * 0.09003057317038048, 0.5 * 0.2447284710547977, 0.5 * (0.665240955774822 - 1),
                    0.5 / 3, 0.5 * (1.0 / 3 - 1), 0.5 / 3,
                    0, 0, 0};
  EXPECT_TRUE(near_all(logits, want, 1e-14, 1e-15));

  std::vector<float> lf = {1, 2, 3, 0, 0, 0, 5, -5, 7};
  a.write_grad = false; // evaluation: loss only, logits kept, no denominator needed
  a.denominator = 0;
  auto rf = kernels(DType::F32)->cross_entropy(lf.data(), targets.data(), a);
  ASSERT_TRUE(rf.ok()) << rf.status().message();
  EXPECT_NEAR(rf->loss_sum, 0.40760596444438013 + 1.0986122886681098, 1e-6);
  EXPECT_EQ(lf, (std::vector<float>{1, 2, 3, 0, 0, 0, 5, -5, 7}));
}

TEST(KernelsCrossEntropy, MatchesNaiveAndFiniteDifferences) {
  const i64 rows = 6, vocab = 11;
  Vec logits = random_vec(rows * vocab, 1, -4, 4);
  const std::vector<std::int32_t> targets = {3, 0, -100, 10, 7, 3};
  double want = 0;
  for (i64 t = 0; t < rows; ++t) {
    if (targets[std::size_t(t)] < 0)
      continue;
    double z = 0;
    for (i64 j = 0; j < vocab; ++j)
      z += std::exp(logits[std::size_t(t * vocab + j)]);
    want += std::log(z) - logits[std::size_t(t * vocab + targets[std::size_t(t)])];
  }
  atp::CrossEntropyArgs a;
  a.rows = rows, a.vocab = vocab, a.denominator = 7, a.grad_scale = 1.5;
  auto k = kernels(DType::F64);
  auto loss = [&] { // L = grad_scale * sum / denominator
    Vec copy = logits;
    atp::CrossEntropyArgs e = a;
    e.write_grad = false;
    return a.grad_scale * k->cross_entropy(copy.data(), targets.data(), e)->loss_sum / double(a.denominator);
  };
  Vec grad = logits;
  auto r = k->cross_entropy(grad.data(), targets.data(), a);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->loss_sum, want, 1e-12);
  EXPECT_EQ(r->count, 5);
  EXPECT_TRUE(grad_check(logits, grad, loss));
  auto lf = to_float(logits);
  auto rf = kernels(DType::F32)->cross_entropy(lf.data(), targets.data(), a);
  ASSERT_TRUE(rf.ok());
  EXPECT_NEAR(rf->loss_sum, want, 1e-5 * want);
  EXPECT_TRUE(near_all(lf, grad, 1e-5, 1e-7));
}

TEST(KernelsCrossEntropy, BadTargetsLeaveLogitsUntouched) {
  auto k = kernels(DType::F32);
  std::vector<float> logits(8, 0.25f);
  atp::CrossEntropyArgs a;
  a.rows = 2, a.vocab = 4, a.denominator = 1;
  const std::vector<std::int32_t> high = {1, 4}, negative = {-1, 0};
  EXPECT_EQ(k->cross_entropy(logits.data(), high.data(), a).status().message(),
            "cross_entropy: target 4 at row 1 is outside the vocabulary [0, 4) and is not the ignore_index -100");
  EXPECT_THAT(k->cross_entropy(logits.data(), negative.data(), a).status().message(), HasSubstr("target -1 at row 0"));
  a.denominator = 0;
  const std::vector<std::int32_t> ok = {1, 2};
  EXPECT_EQ(k->cross_entropy(logits.data(), ok.data(), a).status().message(),
            "cross_entropy: denominator 0 must be positive");
  a.denominator = 1, a.ignore_index = -1; // another ignore_index is honoured
  auto r = k->cross_entropy(logits.data(), negative.data(), a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 1);
  EXPECT_NEAR(r->loss_sum, std::log(4.0), 1e-6);
  EXPECT_EQ(std::vector<float>(logits.begin(), logits.begin() + 4), std::vector<float>(4, 0.0f));
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

TEST(KernelsSwiGlu, ForwardTwoBuffersAndFusedGateUp) {
  const i64 rows = 5, ffn = 6;
  const Vec gate = random_vec(rows * ffn, 20, -6, 6), up = random_vec(rows * ffn, 21);
  Vec want(gate.size()), fused(std::size_t(rows * 2 * ffn));
  for (i64 t = 0; t < rows; ++t)
    for (i64 j = 0; j < ffn; ++j) {
      const std::size_t i = std::size_t(t * ffn + j);
      want[i] = silu(gate[i]) * up[i];
      fused[std::size_t(t * 2 * ffn + j)] = gate[i];        // Phi3MLP: gate_up.chunk(2): gate first
      fused[std::size_t(t * 2 * ffn + ffn + j)] = up[i];
    }
  auto k = kernels(DType::F64);
  Vec out(want.size());
  ASSERT_TRUE(k->swiglu_forward(out.data(), gate.data(), up.data(), rows, ffn, ffn).ok());
  EXPECT_TRUE(near_all(out, want, 1e-14, 1e-15));
  Vec out2(want.size());
  ASSERT_TRUE(k->swiglu_forward(out2.data(), fused.data(), fused.data() + ffn, rows, ffn, 2 * ffn).ok());
  EXPECT_TRUE(near_all(out2, out, 0, 0));
  auto gf = to_float(gate), uf = to_float(up);
  std::vector<float> of(want.size());
  ASSERT_TRUE(kernels(DType::F32)->swiglu_forward(of.data(), gf.data(), uf.data(), rows, ffn, ffn).ok());
  EXPECT_TRUE(near_all(of, want, 1e-6, 1e-6));
  EXPECT_EQ(err(k->swiglu_forward(out.data(), fused.data(), fused.data() + ffn, rows, ffn, ffn - 1)),
            "swiglu_forward: in_stride 5 is less than the row length 6");
}

TEST(KernelsSwiGlu, BackwardFiniteDifferencesAndInPlaceFused) {
  const i64 rows = 4, ffn = 5;
  Vec gate = random_vec(rows * ffn, 22, -6, 6), up = random_vec(rows * ffn, 23);
  const Vec R = random_vec(rows * ffn, 24);
  auto k = kernels(DType::F64);
  auto loss = [&] {
    Vec out(R.size());
    EXPECT_TRUE(k->swiglu_forward(out.data(), gate.data(), up.data(), rows, ffn, ffn).ok());
    return dot(R, out);
  };
  Vec dg(gate.size(), 9.0), du(up.size(), 9.0);
  ASSERT_TRUE(k->swiglu_backward(dg.data(), du.data(), R.data(), gate.data(), up.data(), rows, ffn, ffn).ok());
  EXPECT_TRUE(grad_check(gate, dg, loss));
  EXPECT_TRUE(grad_check(up, du, loss));
  // fused [gate | up] rows, gradients written over the activations themselves
  Vec fused(std::size_t(rows * 2 * ffn));
  for (i64 t = 0; t < rows; ++t)
    for (i64 j = 0; j < ffn; ++j) {
      fused[std::size_t(t * 2 * ffn + j)] = gate[std::size_t(t * ffn + j)];
      fused[std::size_t(t * 2 * ffn + ffn + j)] = up[std::size_t(t * ffn + j)];
    }
  ASSERT_TRUE(k->swiglu_backward(fused.data(), fused.data() + ffn, R.data(), fused.data(), fused.data() + ffn, rows,
                                 ffn, 2 * ffn).ok());
  for (i64 t = 0; t < rows; ++t)
    for (i64 j = 0; j < ffn; ++j) {
      EXPECT_EQ(fused[std::size_t(t * 2 * ffn + j)], dg[std::size_t(t * ffn + j)]);
      EXPECT_EQ(fused[std::size_t(t * 2 * ffn + ffn + j)], du[std::size_t(t * ffn + j)]);
    }
}

TEST(KernelsElementwise, AddWithAliasingAndScale) {
  auto k = kernels(DType::F32);
  std::vector<float> a = {1, 2, 3}, b = {10, 20, 30}, out(3);
  ASSERT_TRUE(k->add(out.data(), a.data(), b.data(), 3).ok());
  EXPECT_EQ(out, (std::vector<float>{11, 22, 33}));
  ASSERT_TRUE(k->add(a.data(), a.data(), b.data(), 3).ok()); // residual += in place
  EXPECT_EQ(a, (std::vector<float>{11, 22, 33}));
  ASSERT_TRUE(k->scale(b.data(), 0.5, 3).ok());
  EXPECT_EQ(b, (std::vector<float>{5, 10, 15}));
  EXPECT_EQ(err(k->add(out.data(), a.data(), nullptr, 3)), "add: pointer argument 2 is null");
  EXPECT_EQ(err(k->scale(b.data(), 2.0, -1)), "scale: n -1 must be positive");
  EXPECT_EQ(b, (std::vector<float>{5, 10, 15}));
}

TEST(KernelsDeterminism, LinearGivesTheSameBytesTwiceAndForAnyThreadCount) {
  // big enough to be split over threads (OpenBLAS's own threading gave different bits for 1, 2, 3, 4 and 8
  // threads on this product; kernels_cpu_gemm.cpp's fixed blocks must not)
  const i64 rows = 192, in = 256, out = 160;
  const auto x = to_float(random_vec(rows * in, 30)), w = to_float(random_vec(out * in, 31));
  const auto dy = to_float(random_vec(rows * out, 32)), bias = to_float(random_vec(out, 33));
  std::vector<std::vector<float>> results;
  for (int threads : {2, 2, 1, 3, 8}) {
    auto k = atp::make_cpu_kernels(DType::F32, threads);
    ASSERT_TRUE(k.ok());
    std::vector<float> y(std::size_t(rows * out)), dx(x.size()), dw(w.size(), 0.0f), db(std::size_t(out), 0.0f);
    ASSERT_TRUE((*k)->linear_forward(y.data(), x.data(), w.data(), bias.data(), rows, in, out).ok());
    ASSERT_TRUE((*k)->linear_backward(dx.data(), Write::Overwrite, dw.data(), db.data(), Write::Accumulate, dy.data(),
                                      x.data(), w.data(), rows, in, out)
                    .ok());
    for (const auto *part : {&dx, &dw, &db})
      y.insert(y.end(), part->begin(), part->end());
    results.push_back(y);
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (std::size_t r = 1; r < results.size(); ++r)
    EXPECT_EQ(std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(float)), 0) << "run " << r;
  EXPECT_THAT(atp::make_cpu_kernels(DType::F32, -1).status().message(), HasSubstr("blas_threads -1"));
}

} // namespace
