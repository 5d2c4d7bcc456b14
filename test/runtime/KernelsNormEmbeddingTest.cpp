/* The CPU kernels' RMSNorm and embedding (kernels.h): forward against naive double loops, RMSNorm's
   backward against float64 finite differences, the accumulate semantics, a vocab-parallel table slice
   (ids outside it read zeros and send no gradient), repeated ids summing, and bad ids or ranges rejected
   before anything is written. */
#include "KernelsTestUtil.h"

#include <gmock/gmock.h>

using namespace atp_kt;
using atp::DType;
using atp::Write;
using ::testing::HasSubstr;

namespace {

TEST(KernelsRmsNorm, ForwardMatchesNaiveAndSavesRstd) {
  const i64 rows = 5, hidden = 12;
  const double eps = 1e-5;
  const Vec x = random_vec(rows * hidden, 1, -2, 2), w = random_vec(hidden, 2, 0.5, 1.5);
  Vec want(x.size()), want_rstd(rows);
  for (i64 t = 0; t < rows; ++t) {
    double ms = 0;
    for (i64 j = 0; j < hidden; ++j)
      ms += x[std::size_t(t * hidden + j)] * x[std::size_t(t * hidden + j)] / double(hidden);
    want_rstd[std::size_t(t)] = 1.0 / std::sqrt(ms + eps);
    for (i64 j = 0; j < hidden; ++j)
      want[std::size_t(t * hidden + j)] = w[std::size_t(j)] * x[std::size_t(t * hidden + j)] * want_rstd[std::size_t(t)];
  }
  auto k = kernels(DType::F64);
  Vec y(x.size()), rstd(rows);
  ASSERT_TRUE(k->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, hidden, eps).ok());
  EXPECT_TRUE(near_all(y, want, 1e-14, 1e-14));
  EXPECT_TRUE(near_all(rstd, want_rstd, 1e-14, 0));
  Vec inplace = x; // y may be x
  ASSERT_TRUE(k->rmsnorm_forward(inplace.data(), rstd.data(), inplace.data(), w.data(), rows, hidden, eps).ok());
  EXPECT_TRUE(near_all(inplace, y, 0, 0));
  auto xf = to_float(x), wf = to_float(w);
  std::vector<float> yf(x.size()), rf(rows);
  ASSERT_TRUE(kernels(DType::F32)->rmsnorm_forward(yf.data(), rf.data(), xf.data(), wf.data(), rows, hidden, eps).ok());
  EXPECT_TRUE(near_all(yf, want, 1e-6, 1e-6));
  EXPECT_EQ(kernels(DType::F32)->stat_dtype(), DType::F32);
  EXPECT_EQ(k->stat_dtype(), DType::F64);
}

TEST(KernelsRmsNorm, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const i64 rows = 4, hidden = 16;
  const double eps = 1e-6;
  Vec x = random_vec(rows * hidden, 3, -2, 2), w = random_vec(hidden, 4, 0.5, 1.5);
  const Vec R = random_vec(rows * hidden, 5);
  auto k = kernels(DType::F64);
  Vec rstd(rows);
  auto loss = [&] {
    Vec y(x.size());
    EXPECT_TRUE(k->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, hidden, eps).ok());
    return dot(R, y);
  };
  loss(); // rstd of the unperturbed x
  const Vec saved_rstd = rstd;
  Vec dx(x.size(), 3.0), dw(hidden, 0.0);
  ASSERT_TRUE(k->rmsnorm_backward(dx.data(), Write::Overwrite, dw.data(), Write::Accumulate, R.data(), x.data(),
                                  w.data(), saved_rstd.data(), rows, hidden)
                  .ok());
  EXPECT_TRUE(grad_check(x, dx, loss));
  EXPECT_TRUE(grad_check(w, dw, loss));

  const Vec dx0 = random_vec(x.size(), 6), dw0 = random_vec(hidden, 7);
  Vec dxa = dx0, dwa = dw0;
  ASSERT_TRUE(k->rmsnorm_backward(dxa.data(), Write::Accumulate, dwa.data(), Write::Accumulate, R.data(), x.data(),
                                  w.data(), saved_rstd.data(), rows, hidden)
                  .ok());
  for (std::size_t i = 0; i < dxa.size(); ++i)
    EXPECT_NEAR(dxa[i], dx0[i] + dx[i], 1e-13);
  for (std::size_t i = 0; i < dwa.size(); ++i)
    EXPECT_NEAR(dwa[i], dw0[i] + dw[i], 1e-13);
  Vec dw_only(hidden, 0.0); // dx null: only the weight gradient
  ASSERT_TRUE(k->rmsnorm_backward(nullptr, Write::Overwrite, dw_only.data(), Write::Accumulate, R.data(), x.data(),
                                  w.data(), saved_rstd.data(), rows, hidden)
                  .ok());
  EXPECT_TRUE(near_all(dw_only, dw, 0, 0));
  Vec dw_written(hidden, std::nan("")); // dw_mode Overwrite: what was there does not matter
  ASSERT_TRUE(k->rmsnorm_backward(nullptr, Write::Overwrite, dw_written.data(), Write::Overwrite, R.data(), x.data(),
                                  w.data(), saved_rstd.data(), rows, hidden)
                  .ok());
  EXPECT_EQ(dw_written, dw);
}

// The residual add and the norm after it (the decoder's layer boundary): the bytes of add then rmsnorm_forward,
// in place too; bad sizes are rmsnorm_forward's error with nothing written.
TEST(KernelsRmsNorm, AddRmsNormIsAddThenRmsNorm) {
  const i64 rows = 3, hidden = 16;
  const double eps = 1e-6;
  auto k = kernels(DType::F32);
  auto a = to_float(random_vec(rows * hidden, 3, -2, 2)), b = to_float(random_vec(rows * hidden, 4, -2, 2));
  const auto w = to_float(random_vec(hidden, 5, 0.5, 1.5));
  std::vector<float> sum(a.size()), y(a.size()), r(rows), want_sum(a.size()), want_y(a.size()), want_r(rows);
  ASSERT_TRUE(k->add(want_sum.data(), a.data(), b.data(), rows * hidden).ok());
  ASSERT_TRUE(k->rmsnorm_forward(want_y.data(), want_r.data(), want_sum.data(), w.data(), rows, hidden, eps).ok());
  ASSERT_TRUE(k->add_rmsnorm_forward(sum.data(), y.data(), r.data(), a.data(), b.data(), w.data(), rows, hidden, eps).ok());
  EXPECT_EQ(sum, want_sum);
  EXPECT_EQ(y, want_y);
  EXPECT_EQ(r, want_r);
  ASSERT_TRUE(k->add_rmsnorm_forward(a.data(), y.data(), r.data(), a.data(), b.data(), w.data(), rows, hidden, eps).ok());
  EXPECT_EQ(a, want_sum);
  EXPECT_EQ(y, want_y);
  std::vector<float> untouched = sum;
  EXPECT_EQ(err(k->add_rmsnorm_forward(sum.data(), y.data(), r.data(), a.data(), b.data(), w.data(), rows, 0, eps)),
            "rmsnorm_forward: hidden 0 must be positive");
  EXPECT_EQ(sum, untouched);
}

TEST(KernelsRmsNorm, BadArguments) {
  auto k = kernels(DType::F32);
  std::vector<float> x(8, 1.0f), w(4, 1.0f), y(8, 2.0f), r(2, 2.0f);
  EXPECT_EQ(err(k->rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), 2, 0, 1e-5)),
            "rmsnorm_forward: hidden 0 must be positive");
  EXPECT_THAT(err(k->rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), 2, 4, -1.0)), HasSubstr("eps"));
  EXPECT_THAT(err(k->rmsnorm_backward(y.data(), Write::Overwrite, nullptr, Write::Accumulate, x.data(), x.data(),
                                      w.data(), r.data(), 2, 4)),
              HasSubstr("rmsnorm_backward: pointer argument 0 is null"));
  EXPECT_EQ(y, std::vector<float>(8, 2.0f));
  EXPECT_EQ(r, std::vector<float>(2, 2.0f));
}

TEST(KernelsEmbedding, FullTableAndVocabParallelSlices) {
  const i64 vocab = 10, hidden = 3, rows = 6;
  const Vec table = random_vec(vocab * hidden, 8);
  const std::vector<std::int32_t> ids = {3, 9, 0, 3, 5, 7};
  auto k = kernels(DType::F64);
  Vec full(rows * hidden, -1.0);
  ASSERT_TRUE(k->embedding_forward(full.data(), table.data(), ids.data(), rows, hidden, {vocab, 0, vocab}).ok());
  for (i64 t = 0; t < rows; ++t)
    for (i64 j = 0; j < hidden; ++j)
      EXPECT_EQ(full[std::size_t(t * hidden + j)], table[std::size_t(ids[std::size_t(t)] * hidden + j)]);
  // two slices [0, 4) and [4, 10): each gives its rows and zeros elsewhere; their sum is the full lookup
  Vec sum(full.size(), 0.0);
  for (auto [b, e] : {std::pair<i64, i64>{0, 4}, {4, 10}}) {
    const Vec slice(table.begin() + b * hidden, table.begin() + e * hidden);
    Vec part(full.size(), -1.0);
    ASSERT_TRUE(k->embedding_forward(part.data(), slice.data(), ids.data(), rows, hidden, {vocab, b, e}).ok());
    for (i64 t = 0; t < rows; ++t) {
      const bool inside = ids[std::size_t(t)] >= b && ids[std::size_t(t)] < e;
      for (i64 j = 0; j < hidden; ++j) {
        if (!inside) {
          EXPECT_EQ(part[std::size_t(t * hidden + j)], 0.0) << "row " << t << " slice " << b;
        }
        sum[std::size_t(t * hidden + j)] += part[std::size_t(t * hidden + j)];
      }
    }
  }
  EXPECT_EQ(sum, full);

  // backward: scatter-add; id 3 appears twice, so its row gets both; the slice [4, 10) gets only its ids
  const Vec dout = random_vec(rows * hidden, 9);
  Vec dtable = random_vec(vocab * hidden, 10);
  const Vec dtable0 = dtable;
  ASSERT_TRUE(k->embedding_backward(dtable.data(), dout.data(), ids.data(), rows, hidden, {vocab, 0, vocab}).ok());
  for (i64 v = 0; v < vocab; ++v)
    for (i64 j = 0; j < hidden; ++j) {
      double want = dtable0[std::size_t(v * hidden + j)];
      for (i64 t = 0; t < rows; ++t)
        if (ids[std::size_t(t)] == v)
          want += dout[std::size_t(t * hidden + j)];
      EXPECT_NEAR(dtable[std::size_t(v * hidden + j)], want, 1e-15) << "vocab row " << v;
    }
  Vec dslice(6 * hidden, 0.0);
  ASSERT_TRUE(k->embedding_backward(dslice.data(), dout.data(), ids.data(), rows, hidden, {vocab, 4, 10}).ok());
  for (i64 v = 4; v < 10; ++v)
    for (i64 j = 0; j < hidden; ++j)
      EXPECT_NEAR(dslice[std::size_t((v - 4) * hidden + j)],
                  dtable[std::size_t(v * hidden + j)] - dtable0[std::size_t(v * hidden + j)], 1e-15);
}

TEST(KernelsEmbedding, BadIdsAndRangesWriteNothing) {
  auto k = kernels(DType::F32);
  const i64 hidden = 2;
  std::vector<float> table(8, 1.0f), out(6, -3.0f);
  const std::vector<std::int32_t> ids = {1, 4, 2};
  EXPECT_EQ(err(k->embedding_forward(out.data(), table.data(), ids.data(), 3, hidden, {4, 0, 4})),
            "embedding_forward: token id 4 at row 1 is outside the vocabulary [0, 4)");
  const std::vector<std::int32_t> negative = {0, 0, -1};
  EXPECT_EQ(err(k->embedding_backward(table.data(), out.data(), negative.data(), 3, hidden, {4, 0, 4})),
            "embedding_backward: token id -1 at row 2 is outside the vocabulary [0, 4)");
  EXPECT_EQ(err(k->embedding_forward(out.data(), table.data(), ids.data(), 3, hidden, {8, 4, 9})),
            "embedding_forward: vocab range [4, 9) is not a non-empty part of [0, 8)");
  EXPECT_EQ(out, std::vector<float>(6, -3.0f));
  EXPECT_EQ(table, std::vector<float>(8, 1.0f));
}

} // namespace
