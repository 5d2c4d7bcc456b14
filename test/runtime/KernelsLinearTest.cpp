/* The CPU kernels' GEMM and linear layer (kernels.h): products against naive loops in double for every
   transpose, stride, alpha and beta; the linear backward against float64 central finite differences; the
   += semantics of weight gradients and of Write::Accumulate; and bad dimensions rejected before any write. */
#include "KernelsTestUtil.h"

#include <gmock/gmock.h>

#include <type_traits>
#include <utility>

using namespace atp_kt;
using atp::DType;
using atp::Write;
using ::testing::AnyOf;
using ::testing::HasSubstr;

namespace {

/// y[t][o] = bias[o] + sum_i x[t][i] w[o][i], in double.
Vec naive_linear(const Vec &x, const Vec &w, const Vec *bias, i64 rows, i64 in, i64 out) {
  Vec y(std::size_t(rows * out));
  for (i64 t = 0; t < rows; ++t)
    for (i64 o = 0; o < out; ++o) {
      double s = bias ? (*bias)[std::size_t(o)] : 0.0;
      for (i64 i = 0; i < in; ++i)
        s += x[std::size_t(t * in + i)] * w[std::size_t(o * in + i)];
      y[std::size_t(t * out + o)] = s;
    }
  return y;
}

void check_gemm_against_naive(i64 m, i64 n, i64 k) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      atp::GemmArgs g;
      g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k;
      g.lda = (ta ? m : k) + 2; // padded rows: the stride is honoured
      g.ldb = (tb ? k : n) + 1;
      g.ldc = n + 3;
      g.alpha = 0.5, g.beta = 2.0;
      const Vec a = random_vec(std::size_t((ta ? k : m) * g.lda), 1), b = random_vec(std::size_t((tb ? n : k) * g.ldb), 2);
      const Vec c0 = random_vec(std::size_t(m * g.ldc), 3);
      Vec want = c0;
      for (i64 i = 0; i < m; ++i)
        for (i64 j = 0; j < n; ++j) {
          double s = 0.0;
          for (i64 l = 0; l < k; ++l)
            s += (ta ? a[std::size_t(l * g.lda + i)] : a[std::size_t(i * g.lda + l)]) *
                 (tb ? b[std::size_t(j * g.ldb + l)] : b[std::size_t(l * g.ldb + j)]);
          want[std::size_t(i * g.ldc + j)] = 0.5 * s + 2.0 * c0[std::size_t(i * g.ldc + j)];
        }
      auto k64 = kernels(DType::F64);
      Vec c = c0;
      ASSERT_TRUE(k64->gemm(g, a.data(), b.data(), c.data()).ok());
      EXPECT_TRUE(near_all(c, want, 1e-13, 1e-13)) << "ta " << ta << " tb " << tb;
      auto k32 = kernels(DType::F32);
      auto af = to_float(a), bf = to_float(b), cf = to_float(c0);
      ASSERT_TRUE(k32->gemm(g, af.data(), bf.data(), cf.data()).ok());
      EXPECT_TRUE(near_all(cf, want, 1e-5, 1e-5 * double(k))) << "ta " << ta << " tb " << tb;
    }
}

TEST(KernelsLinear, GemmMatchesNaiveForEveryTransposeWithStridesAlphaBeta) {
  SCOPED_TRACE("5 x 7 x 3");
  check_gemm_against_naive(5, 7, 3);
}

TEST(KernelsLinear, GemmsSplitIntoRowOrColumnBlocksMatchNaive) {
  // above kernels_cpu_gemm.cpp's split size: 130 rows -> row blocks 64, 64, 2; 130 columns -> column blocks
  for (int threads : {1, 3}) {
    ASSERT_TRUE(atp::make_cpu_kernels(DType::F64, threads).ok());
    SCOPED_TRACE("130 x 70 x 300");
    check_gemm_against_naive(130, 70, 300);
    SCOPED_TRACE("70 x 130 x 300");
    check_gemm_against_naive(70, 130, 300);
  }
}

TEST(KernelsLinear, GemmBetaZeroIgnoresNaNInC) {
  atp::GemmArgs g;
  g.m = 2, g.n = 2, g.k = 1, g.lda = 1, g.ldb = 2, g.ldc = 2;
  const Vec a = {1, 2}, b = {3, 4};
  Vec c(4, std::nan(""));
  ASSERT_TRUE(kernels(DType::F64)->gemm(g, a.data(), b.data(), c.data()).ok());
  EXPECT_EQ(c, (Vec{3, 4, 6, 8}));
}

TEST(KernelsLinear, ForwardMatchesNaiveWithAndWithoutBias) {
  const i64 rows = 6, in = 5, out = 4;
  const Vec x = random_vec(rows * in, 10), w = random_vec(out * in, 11), bias = random_vec(out, 12);
  for (bool with_bias : {false, true}) {
    const Vec want = naive_linear(x, w, with_bias ? &bias : nullptr, rows, in, out);
    Vec y(want.size(), 99.0);
    ASSERT_TRUE(kernels(DType::F64)->linear_forward(y.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr,
                                                    rows, in, out).ok());
    EXPECT_TRUE(near_all(y, want, 1e-13, 1e-13));
    auto xf = to_float(x), wf = to_float(w), bf = to_float(bias);
    std::vector<float> yf(want.size(), 99.0f);
    ASSERT_TRUE(kernels(DType::F32)->linear_forward(yf.data(), xf.data(), wf.data(), with_bias ? bf.data() : nullptr,
                                                    rows, in, out).ok());
    EXPECT_TRUE(near_all(yf, want, 1e-5, 1e-6));
  }
}

TEST(KernelsLinear, BackwardMatchesFiniteDifferences) {
  const i64 rows = 6, in = 5, out = 4;
  Vec x = random_vec(rows * in, 20), w = random_vec(out * in, 21), bias = random_vec(out, 22);
  const Vec R = random_vec(rows * out, 23); // L = <R, y>, so dy = R
  auto k = kernels(DType::F64);
  auto loss = [&] {
    Vec y(std::size_t(rows * out));
    EXPECT_TRUE(k->linear_forward(y.data(), x.data(), w.data(), bias.data(), rows, in, out).ok());
    return dot(R, y);
  };
  Vec dx(x.size(), 7.0), dw(w.size(), 0.0), db(bias.size(), 0.0); // dx overwritten: its 7s must vanish
  ASSERT_TRUE(k->linear_backward(dx.data(), Write::Overwrite, dw.data(), db.data(), Write::Accumulate, R.data(),
                                 x.data(), w.data(), rows, in, out)
                  .ok());
  EXPECT_TRUE(grad_check(x, dx, loss));
  EXPECT_TRUE(grad_check(w, dw, loss));
  EXPECT_TRUE(grad_check(bias, db, loss));
}

TEST(KernelsLinear, WeightGradientsAccumulateAndDxAccumulatesOnRequest) {
  const i64 rows = 3, in = 4, out = 2;
  const Vec x = random_vec(rows * in, 30), w = random_vec(out * in, 31), dy = random_vec(rows * out, 32);
  auto k = kernels(DType::F64);
  Vec dx1(x.size()), dw1(w.size(), 0.0), db1(out, 0.0);
  ASSERT_TRUE(k->linear_backward(dx1.data(), Write::Overwrite, dw1.data(), db1.data(), Write::Accumulate, dy.data(),
                                 x.data(), w.data(), rows, in, out)
                  .ok());
  // by hand: dx = dy w, dw = dy^T x, db = column sums of dy
  for (i64 t = 0; t < rows; ++t)
    for (i64 i = 0; i < in; ++i) {
      double s = 0;
      for (i64 o = 0; o < out; ++o)
        s += dy[std::size_t(t * out + o)] * w[std::size_t(o * in + i)];
      EXPECT_NEAR(dx1[std::size_t(t * in + i)], s, 1e-14);
    }
  const Vec dx0 = random_vec(x.size(), 33), dw0 = random_vec(w.size(), 34), db0 = random_vec(out, 35);
  Vec dx = dx0, dw = dw0, db = db0;
  ASSERT_TRUE(k->linear_backward(dx.data(), Write::Accumulate, dw.data(), db.data(), Write::Accumulate, dy.data(),
                                 x.data(), w.data(), rows, in, out)
                  .ok());
  ASSERT_TRUE(k->linear_backward(nullptr, Write::Overwrite, dw.data(), db.data(), Write::Accumulate, dy.data(),
                                 x.data(), w.data(), rows, in, out)
                  .ok());
  for (std::size_t i = 0; i < dx.size(); ++i)
    EXPECT_NEAR(dx[i], dx0[i] + dx1[i], 1e-14);
  for (std::size_t i = 0; i < dw.size(); ++i) // two backward calls: twice the gradient on top of dw0
    EXPECT_NEAR(dw[i], dw0[i] + 2 * dw1[i], 1e-13);
  for (std::size_t i = 0; i < db.size(); ++i)
    EXPECT_NEAR(db[i], db0[i] + 2 * db1[i], 1e-13);
  // dw null: only dx; the frozen weight's gradient buffer is not needed
  Vec dx2(x.size(), 0.0);
  ASSERT_TRUE(k->linear_backward(dx2.data(), Write::Overwrite, nullptr, nullptr, Write::Accumulate, dy.data(), nullptr,
                                 w.data(), rows, in, out)
                  .ok());
  EXPECT_TRUE(near_all(dx2, dx1, 0, 0));
}

// dw_mode Overwrite: dw and db get the values of accumulating into zeros, whatever they held (NaN here), in
// fp32 and fp64, with a product big enough to be cut into blocks (kernels_cpu_gemm.cpp).
TEST(KernelsLinear, WeightGradientsAreWrittenOnRequest) {
  const i64 rows = 40, in = 96, out = 300;
  const Vec x = random_vec(rows * in, 40), w = random_vec(out * in, 41), dy = random_vec(rows * out, 42);
  auto check = [&](auto zero) {
    using T = decltype(zero);
    auto k = kernels(std::is_same_v<T, float> ? DType::F32 : DType::F64);
    const std::vector<T> xt(x.begin(), x.end()), wt(w.begin(), w.end()), dyt(dy.begin(), dy.end());
    auto run = [&](Write mode, T fill) {
      std::vector<T> dw(w.size(), fill), db(static_cast<std::size_t>(out), fill);
      EXPECT_TRUE(k->linear_backward(nullptr, Write::Overwrite, dw.data(), db.data(), mode, dyt.data(), xt.data(),
                                     wt.data(), rows, in, out)
                      .ok());
      return std::make_pair(dw, db);
    };
    const auto added = run(Write::Accumulate, T(0)), written = run(Write::Overwrite, T(std::nan("")));
    EXPECT_EQ(written.first, added.first);
    EXPECT_EQ(written.second, added.second);
  };
  check(0.0f);
  check(0.0);
}

TEST(KernelsLinear, BadArgumentsAreRejectedBeforeWriting) {
  auto k = kernels(DType::F32);
  std::vector<float> x(12, 1.0f), w(12, 1.0f), y(12, -5.0f);
  EXPECT_EQ(err(k->linear_forward(y.data(), x.data(), w.data(), nullptr, 0, 4, 3)),
            "linear_forward: rows 0 must be positive");
  EXPECT_EQ(err(k->linear_forward(y.data(), x.data(), w.data(), nullptr, 3, -4, 3)),
            "linear_forward: in -4 must be positive");
  EXPECT_THAT(err(k->linear_forward(y.data(), nullptr, w.data(), nullptr, 3, 4, 3)), HasSubstr("is null"));
  EXPECT_THAT(err(k->linear_forward(y.data(), x.data(), w.data(), nullptr, 3, std::int64_t(1) << 61, 3)),
              HasSubstr("rows x in 3 x 2305843009213693952 overflows"));
  EXPECT_THAT(err(k->linear_backward(y.data(), Write::Overwrite, nullptr, nullptr, Write::Accumulate, x.data(),
                                     x.data(), nullptr, 3, 4, 3)),
              HasSubstr("dx requested but the weight w is null"));
  atp::GemmArgs g;
  g.m = 3, g.n = 4, g.k = 4, g.lda = 3, g.ldb = 4, g.ldc = 4;
  EXPECT_EQ(err(k->gemm(g, x.data(), w.data(), y.data())), "gemm: lda 3 is less than the row length 4");
  g.lda = 4, g.trans_b = true; // B stored [n, k] = [4, 4]: fine; C's stride too small next
  g.ldc = 2;
  EXPECT_EQ(err(k->gemm(g, x.data(), w.data(), y.data())), "gemm: ldc 2 is less than the row length 4");
  g.ldc = 4, g.k = std::int64_t(1) << 33, g.lda = g.k, g.ldb = g.k;
  EXPECT_THAT(err(k->gemm(g, x.data(), w.data(), y.data())), HasSubstr("exceeds the BLAS index limit"));
  EXPECT_EQ(y, std::vector<float>(12, -5.0f));
  EXPECT_THAT(atp::make_cpu_kernels(DType::BF16).status().message(), HasSubstr("dtype BF16 is not supported"));
  // CUDA: a stub ("not built") without AUTOTPC_ENABLE_CUDA; with it, F32 and BF16 work where a GPU is (a
  // machine without one gets an error naming the call), and other dtypes are refused.
  for (DType dtype : {DType::F32, DType::BF16}) {
    auto cuda = atp::make_cuda_kernels(dtype);
    if (!cuda.ok()) {
      EXPECT_THAT(cuda.status().message(), HasSubstr("make_cuda_kernels"));
    }
  }
  EXPECT_THAT(atp::make_cuda_kernels(DType::F16).status().message(),
              AnyOf(HasSubstr("not built"), HasSubstr("F16")));
}

} // namespace
