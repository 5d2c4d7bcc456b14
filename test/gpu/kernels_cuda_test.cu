/* kernels_cuda_test.cu - every call of the CUDA kernels (make_cuda_kernels, F32 and BF16) against naive host loops.

   The references are written here, in double, straight from kernels.h's formulas (not the CPU backend: the
   GPU machine's runtime has no CBLAS, so make_cpu_kernels is a stub there). Small shapes that still reach
   every path: GEMMs in all four transpose modes with padded strides and beta 0 over NaN; the linear layer
   with and without bias, Overwrite and Accumulate; weight-gradient column sums over several row chunks; a
   vocab-parallel embedding slice with repeated ids; rows wider than a block; RoPE on a fused qkv row with partial
   rotary; fused SwiGLU, also in place; grouped-query attention (4 query heads on 2 kv heads) on the column blocks of
   one fused qkv buffer, head dims 16 and 40, plain causal and a sliding window, and the BF16 flash path's shapes
   (head dims 64, 96, 128, seq over several 64-row tiles and not a multiple of them, GQA ratios 1, 2, 4), each on
   cuDNN's fused attention where the runtime has it and on our flash kernels (ATP_ATTENTION=flash), with the
   shapes cuDNN must take on a Hopper checked to run there, its backward also one batch row at a time
   (ATP_CUDNN_WORKSPACE_LIMIT); cross-entropy
   with ignore_index -100 rows and vocabs below and above a block. Values must agree to 1e-5 of the tensor's largest
   reference element (plus 1e-5 relative); weight gradients start from random values, so accumulation is checked too;
   padding columns of strided outputs must keep their bytes. Every case runs twice from the same inputs and must give
   the same bytes (determinism). Bad ids and targets must fail with the row named and write nothing. The whole suite
   runs for F32, then for BF16: every input is rounded to bf16 first and the double reference is computed from the
   rounded values, tensors travel as bf16 (saved statistics as float), and computed values get the bf16 tolerance argued
   at kBf16Tol. Prints "kernels_cuda_test: N passed, M failed"; exits 1 on any failure. */
#include "atp/check_cuda.h"
#include "atp/kernels.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace atp;

namespace {

using Vec = std::vector<float>;
using Ref = std::vector<double>;
using i64 = std::int64_t;

int passed = 0, failed = 0;
cudaStream_t stream = nullptr;
Kernels *K = nullptr;
DType dt = DType::F32; // the dtype of the suite now running (K's)
std::mt19937_64 rng(20261204);

void expect(bool ok, const std::string &what) {
  ok ? ++passed : ++failed;
  if (!ok && failed <= 60)
    std::printf("FAIL [%s] %s\n", dtype_name(dt), what.c_str());
}

/// x as the current dtype holds it: itself (F32), or rounded to nearest even bf16 (BF16).
float stored(float x) { return dt == DType::BF16 ? __bfloat162float(__float2bfloat16_rn(x)) : x; }

/// Random inputs, already representable in the current dtype (so the reference sees what the kernels see).
Vec random_vec(std::size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Vec v(n);
  for (float &x : v)
    x = stored(u(rng));
  return v;
}

/// The tolerance of a computed F32 value (relative to |ref| + the tensor's largest |ref|, as expect_close measures):
/// fp32 arithmetic over at most a few hundred terms of these magnitudes.
constexpr double kF32Tol = 1e-5;
/// BF16: the kernels compute the same fp32 (or fp64) value y from the same (bf16-exact) inputs, so y is within
/// kF32Tol of the reference as above (cuBLASLt multiplies bf16 pairs exactly in fp32 and accumulates in fp32), then
/// round it ONCE to bf16, to nearest even: |got - y| <= 2^-8 |y| (8 significant bits; unit roundoff 2^-8). So
/// |got - ref| <= 2^-8 |ref| + (1 + 2^-8) kF32Tol (|ref| + largest) < (2^-8 + 2 kF32Tol)(|ref| + largest). Every
/// input of a call that another call produced (the rotary table, attention's out) is fed to the reference as the
/// kernels stored it, so no tensor carries two roundings into one comparison.
constexpr double kBf16Tol = 1.0 / 256 + 2 * kF32Tol;
/// The tolerance of a computed tensor of the current dtype. Saved statistics (rstd, lse) are float for both
/// dtypes and computed from the same exact inputs: kF32Tol.
double computed_tol() { return dt == DType::BF16 ? kBf16Tol : kF32Tol; }

/// A device copy of a host vector (float or int32); get() waits for the stream and reads it back.
template <class T> class Dev {
public:
  explicit Dev(const std::vector<T> &host) : n_(host.size()) {
    ATP_CUDA_CHECK(cudaMalloc(&p_, std::max<std::size_t>(n_, 1) * sizeof(T)));
    put(host);
  }
  ~Dev() { cudaFree(p_); }
  Dev(const Dev &) = delete;
  Dev &operator=(const Dev &) = delete;
  T *p() { return p_; }
  void put(const std::vector<T> &host) {
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    ATP_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    ATP_CUDA_CHECK(cudaDeviceSynchronize()); // a pageable upload may still be in flight; `stream` is non-blocking
  }
  std::vector<T> get() const {
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<T> host(n_);
    ATP_CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

private:
  T *p_ = nullptr;
  std::size_t n_;
};
using DevS = Dev<float>; // saved statistics (rstd, lse): float for every dtype
using DevI = Dev<std::int32_t>;

/// A device tensor of the current dtype, uploaded from and read back as floats (bf16 <-> float is exact for the
/// values random_vec makes; get() widens what the kernels stored). at(i) points at element i.
class DevX {
public:
  explicit DevX(const Vec &host) : n_(host.size()), elem_(dt == DType::BF16 ? 2 : 4) {
    ATP_CUDA_CHECK(cudaMalloc(&p_, std::max<std::size_t>(n_, 1) * elem_));
    put(host);
  }
  ~DevX() { cudaFree(p_); }
  DevX(const DevX &) = delete;
  DevX &operator=(const DevX &) = delete;
  void *p() { return p_; }
  void *at(i64 i) { return static_cast<char *>(p_) + std::size_t(i) * elem_; }
  void put(const Vec &host) {
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (elem_ == 4) {
      ATP_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * 4, cudaMemcpyHostToDevice));
    } else {
      std::vector<__nv_bfloat16> b(n_);
      for (std::size_t i = 0; i < n_; ++i)
        b[i] = __float2bfloat16_rn(host[i]);
      ATP_CUDA_CHECK(cudaMemcpy(p_, b.data(), n_ * 2, cudaMemcpyHostToDevice));
    }
    ATP_CUDA_CHECK(cudaDeviceSynchronize()); // a pageable upload may still be in flight; `stream` is non-blocking
  }
  Vec get() const {
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    Vec host(n_);
    if (elem_ == 4) {
      ATP_CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * 4, cudaMemcpyDeviceToHost));
    } else {
      std::vector<__nv_bfloat16> b(n_);
      ATP_CUDA_CHECK(cudaMemcpy(b.data(), p_, n_ * 2, cudaMemcpyDeviceToHost));
      for (std::size_t i = 0; i < n_; ++i)
        host[i] = __bfloat162float(b[i]);
    }
    return host;
  }

private:
  void *p_ = nullptr;
  std::size_t n_, elem_;
};

/// got within tol of ref: |got - ref| <= tol * (|ref| + max |ref|), elementwise; the first miss is named. tol < 0:
/// computed_tol().
void expect_close(const std::string &what, const Vec &got, const Ref &ref, double tol = -1) {
  if (tol < 0)
    tol = computed_tol();
  if (got.size() != ref.size())
    return expect(false, what + ": size " + std::to_string(got.size()) + " != " + std::to_string(ref.size()));
  double scale = 0.0;
  for (double r : ref)
    scale = std::max(scale, std::fabs(r));
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - ref[i]) <= tol * (std::fabs(ref[i]) + scale))) {
      char buf[200];
      std::snprintf(buf, sizeof buf, ": element %zu is %.9g, reference %.9g (largest %.3g)", i, double(got[i]), ref[i],
                    scale);
      return expect(false, what + buf);
    }
  expect(true, what);
}

/// (For BF16, the floats widened from bf16 are the same bytes exactly when the bf16 are.)
bool same_bytes(const Vec &a, const Vec &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Runs `once` (inputs uploaded fresh, outputs read back) twice; the outputs must be the same bytes.
std::vector<Vec> twice(const std::string &what, const std::function<std::vector<Vec>()> &once) {
  std::vector<Vec> a = once(), b = once();
  bool same = a.size() == b.size();
  for (std::size_t i = 0; same && i < a.size(); ++i)
    same = same_bytes(a[i], b[i]);
  expect(same, what + ": two runs give the same bytes");
  return a;
}

void expect_ok(const Status &s, const std::string &what) { expect(s.ok(), what + ": " + s.message()); }

// ---------------------------------------------------------------------------------------------- GEMM, linear

/// pad: odd shapes with padded strides; otherwise dense, with 16-byte multiples (the tensor-core algorithms' case).
void test_gemm(bool ta, bool tb, double beta, i64 m = 5, i64 n = 7, i64 k = 33, bool pad = true) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k, g.alpha = 0.7, g.beta = beta;
  const i64 a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  g.lda = a_cols + (pad ? 3 : 0), g.ldb = b_cols + (pad ? 1 : 0), g.ldc = n + (pad ? 2 : 0);
  const Vec a = random_vec(std::size_t(a_rows * g.lda)), b = random_vec(std::size_t(b_rows * g.ldb));
  Vec c0 = random_vec(std::size_t(m * g.ldc));
  if (beta == 0)
    for (i64 i = 0; i < m; ++i)
      c0[std::size_t(i * g.ldc)] =
          std::numeric_limits<float>::quiet_NaN(); // beta 0 must not read C (a NaN in bf16 too)
  const std::string what = std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " beta " +
                           std::to_string(beta) + " m " + std::to_string(m) + " n " + std::to_string(n) + " k " +
                           std::to_string(k);
  auto out = twice(what, [&] {
    DevX da(a), db(b), dc(c0);
    expect_ok(K->gemm(g, da.p(), db.p(), dc.p()), what);
    return std::vector<Vec>{dc.get()};
  });
  Ref ref(c0.begin(), c0.end());
  for (i64 i = 0; i < m; ++i)
    for (i64 j = 0; j < n; ++j) {
      double s = 0;
      for (i64 p = 0; p < k; ++p)
        s += double(ta ? a[p * g.lda + i] : a[i * g.lda + p]) * double(tb ? b[j * g.ldb + p] : b[p * g.ldb + j]);
      const double old = beta == 0 ? 0.0 : beta * double(c0[i * g.ldc + j]);
      ref[std::size_t(i * g.ldc + j)] = g.alpha * s + old;
    }
  expect_close(what, out[0], ref); // the padding columns keep c0's values (and are compared)
}

/// dw_mode Overwrite: dw and db start as NaN, which must not reach the result.
void test_linear(bool bias, Write mode, i64 rows, i64 in = 20, i64 out = 9, Write dw_mode = Write::Accumulate) {
  const Vec x = random_vec(rows * in), w = random_vec(out * in), bv = random_vec(out), dy = random_vec(rows * out);
  const bool dw_add = dw_mode == Write::Accumulate;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Vec dx0 = random_vec(rows * in), dw0 = dw_add ? random_vec(out * in) : Vec(out * in, nan),
            db0 = dw_add || !bias ? random_vec(out) : Vec(out, nan);
  const std::string what = std::string("linear rows ") + std::to_string(rows) + " in " + std::to_string(in) + " out " +
                           std::to_string(out) + " bias " + (bias ? "yes" : "no") +
                           (mode == Write::Accumulate ? " accumulate" : " overwrite") + (dw_add ? "" : " dw written");
  auto res = twice(what, [&] {
    DevX X(x), W(w), B(bv), DY(dy), Y{Vec(rows * out, -7.0f)}, DX(dx0), DW(dw0), DB(db0);
    expect_ok(K->linear_forward(Y.p(), X.p(), W.p(), bias ? B.p() : nullptr, rows, in, out), what + " forward");
    expect_ok(
        K->linear_backward(DX.p(), mode, DW.p(), bias ? DB.p() : nullptr, dw_mode, DY.p(), X.p(), W.p(), rows, in, out),
        what + " backward");
    return std::vector<Vec>{Y.get(), DX.get(), DW.get(), DB.get()};
  });
  Ref y(rows * out), dx(rows * in), dw(dw0.begin(), dw0.end()), db(db0.begin(), db0.end());
  if (!dw_add)
    std::fill(dw.begin(), dw.end(), 0.0);
  if (!dw_add && bias)
    std::fill(db.begin(), db.end(), 0.0);
  for (i64 t = 0; t < rows; ++t)
    for (i64 o = 0; o < out; ++o) {
      double s = bias ? double(bv[o]) : 0.0;
      for (i64 i = 0; i < in; ++i)
        s += double(x[t * in + i]) * double(w[o * in + i]);
      y[t * out + o] = s;
    }
  for (i64 t = 0; t < rows; ++t)
    for (i64 i = 0; i < in; ++i) {
      double s = mode == Write::Accumulate ? double(dx0[t * in + i]) : 0.0;
      for (i64 o = 0; o < out; ++o)
        s += double(dy[t * out + o]) * double(w[o * in + i]);
      dx[t * in + i] = s;
    }
  for (i64 o = 0; o < out; ++o)
    for (i64 t = 0; t < rows; ++t) {
      for (i64 i = 0; i < in; ++i)
        dw[o * in + i] += double(dy[t * out + o]) * double(x[t * in + i]);
      if (bias)
        db[o] += double(dy[t * out + o]);
    }
  expect_close(what + " y", res[0], y);
  expect_close(what + " dx", res[1], dx);
  expect_close(what + " dw", res[2], dw);
  expect_close(what + " db", res[3], db); // no bias: untouched
}

// ---------------------------------------------------------------------------------------------- embedding

void test_embedding() {
  const i64 rows = 40, hidden = 300;
  const VocabRange r{11, 3, 9};
  std::vector<std::int32_t> ids(rows);
  std::uniform_int_distribution<int> u(0, 10);
  for (auto &id : ids)
    id = u(rng);
  ids[7] = ids[3] = ids[39] = 5; // repeats, also the last row
  const Vec table = random_vec((r.end - r.begin) * hidden), dout = random_vec(rows * hidden);
  const Vec dtable0 = random_vec((r.end - r.begin) * hidden);
  int run = 0;
  auto res = twice("embedding", [&] { // the second run as the decoder calls it: ids checked on the host
    VocabRange checked = r;
    checked.ids_checked = run++ == 1;
    DevI I(ids);
    DevX T(table), O{Vec(rows * hidden, -3.0f)}, D(dout), DT(dtable0);
    expect_ok(K->embedding_forward(O.p(), T.p(), I.p(), rows, hidden, checked), "embedding_forward");
    expect_ok(K->embedding_backward(DT.p(), D.p(), I.p(), rows, hidden, checked), "embedding_backward");
    return std::vector<Vec>{O.get(), DT.get()};
  });
  Ref out(rows * hidden, 0.0), dt(dtable0.begin(), dtable0.end());
  for (i64 t = 0; t < rows; ++t)
    if (ids[t] >= r.begin && ids[t] < r.end)
      for (i64 j = 0; j < hidden; ++j) {
        out[t * hidden + j] = table[(ids[t] - r.begin) * hidden + j];
        dt[(ids[t] - r.begin) * hidden + j] += dout[t * hidden + j];
      }
  expect_close("embedding_forward", res[0], out, 0.0);
  expect_close("embedding_backward", res[1], dt);

  // A bad id: the error names it and its row; nothing is written.
  ids[17] = 11;
  DevI I(ids);
  const Vec poison(rows * hidden, -3.0f);
  DevX T(table), O(poison), D(dout), DT(dtable0);
  Status s = K->embedding_forward(O.p(), T.p(), I.p(), rows, hidden, r);
  expect(s.message().find("token id 11 at row 17") != std::string::npos, "embedding bad id: " + s.message());
  s = K->embedding_backward(DT.p(), D.p(), I.p(), rows, hidden, r);
  expect(s.message().find("token id 11 at row 17") != std::string::npos, "embedding_backward bad id: " + s.message());
  expect(same_bytes(O.get(), poison) && same_bytes(DT.get(), dtable0), "embedding bad id writes nothing");
}

// ---------------------------------------------------------------------------------------------- RMSNorm

/// hidden 300: wider than a block, one element per load for bf16 (16-byte loads for float); 2048 and up: the
/// vectorized register path (kernels_cuda_norm.cu). want_dx false passes a null dx (only dw is wanted).
/// dw_mode Overwrite: dw starts as NaN, which must not reach the result.
void test_rmsnorm(Write mode, i64 rows, i64 hidden = 300, bool want_dx = true, Write dw_mode = Write::Accumulate) {
  const double eps = 1e-5;
  const Vec x = random_vec(rows * hidden), w = random_vec(hidden, 0.5f, 1.5f), dy = random_vec(rows * hidden);
  const bool dw_add = dw_mode == Write::Accumulate;
  const Vec dx0 = random_vec(rows * hidden),
            dw0 = dw_add ? random_vec(hidden) : Vec(hidden, std::numeric_limits<float>::quiet_NaN());
  const std::string what = "rmsnorm rows " + std::to_string(rows) + " hidden " + std::to_string(hidden) +
                           (mode == Write::Accumulate ? " accumulate" : " overwrite") + (want_dx ? "" : " no dx") +
                           (dw_add ? "" : " dw written");
  auto res = twice(what, [&] {
    DevX X(x), W(w), DY(dy), Y{Vec(rows * hidden)}, DX(dx0), DW(dw0);
    DevS R{Vec(rows)};
    expect_ok(K->rmsnorm_forward(Y.p(), R.p(), X.p(), W.p(), rows, hidden, eps), what + " forward");
    expect_ok(K->rmsnorm_backward(want_dx ? DX.p() : nullptr, mode, DW.p(), dw_mode, DY.p(), X.p(), W.p(), R.p(), rows,
                                  hidden),
              what + " backward");
    return std::vector<Vec>{Y.get(), R.get(), DX.get(), DW.get()};
  });
  Ref y(rows * hidden), rstd(rows), dx(rows * hidden), dw(dw0.begin(), dw0.end());
  if (!dw_add)
    std::fill(dw.begin(), dw.end(), 0.0);
  for (i64 t = 0; t < rows; ++t) {
    double ss = 0, dot = 0;
    for (i64 j = 0; j < hidden; ++j)
      ss += double(x[t * hidden + j]) * x[t * hidden + j];
    const double r = 1.0 / std::sqrt(ss / hidden + eps);
    rstd[t] = r;
    for (i64 j = 0; j < hidden; ++j) {
      const double xhat = x[t * hidden + j] * r;
      y[t * hidden + j] = w[j] * xhat;
      dot += double(dy[t * hidden + j]) * w[j] * xhat;
      dw[j] += dy[t * hidden + j] * xhat;
    }
    for (i64 j = 0; j < hidden; ++j) {
      const double v = r * (double(dy[t * hidden + j]) * w[j] - x[t * hidden + j] * r * dot / hidden);
      dx[t * hidden + j] = want_dx ? (mode == Write::Accumulate ? double(dx0[t * hidden + j]) : 0.0) + v
                                   : double(dx0[t * hidden + j]); // no dx: DX keeps its values
    }
  }
  expect_close(what + " y", res[0], y);
  expect_close(what + " rstd", res[1], rstd, kF32Tol);
  expect_close(what + " dx", res[2], dx);
  expect_close(what + " dw", res[3], dw);
}

/// add_rmsnorm_forward is add then rmsnorm_forward in one pass: the same bytes as those two calls (which
/// test_add_scale and test_rmsnorm check against references), in place (sum = a) too. hidden 300: the unfused
/// fallback (bf16); 2048 / 8192: the fused vectorized kernel.
void test_add_rmsnorm(i64 rows, i64 hidden) {
  const double eps = 1e-5;
  const Vec a = random_vec(rows * hidden), b = random_vec(rows * hidden), w = random_vec(hidden, 0.5f, 1.5f);
  const std::string what = "add_rmsnorm_forward rows " + std::to_string(rows) + " hidden " + std::to_string(hidden);
  auto fused = twice(what, [&] {
    DevX A(a), B(b), W(w), S{Vec(rows * hidden)}, Y{Vec(rows * hidden)}, Y2{Vec(rows * hidden)};
    DevS R{Vec(rows)}, R2{Vec(rows)};
    expect_ok(K->add_rmsnorm_forward(S.p(), Y.p(), R.p(), A.p(), B.p(), W.p(), rows, hidden, eps), what);
    expect_ok(K->add_rmsnorm_forward(A.p(), Y2.p(), R2.p(), A.p(), B.p(), W.p(), rows, hidden, eps),
              what + " in place");
    return std::vector<Vec>{S.get(), Y.get(), R.get(), A.get(), Y2.get(), R2.get()};
  });
  DevX A(a), B(b), W(w), S{Vec(rows * hidden)}, Y{Vec(rows * hidden)};
  DevS R{Vec(rows)};
  expect_ok(K->add(S.p(), A.p(), B.p(), rows * hidden), what + ": add");
  expect_ok(K->rmsnorm_forward(Y.p(), R.p(), S.p(), W.p(), rows, hidden, eps), what + ": rmsnorm_forward");
  const Vec sum = S.get(), y = Y.get(), rstd = R.get();
  expect(same_bytes(fused[0], sum) && same_bytes(fused[1], y) && same_bytes(fused[2], rstd),
         what + ": the same bytes as add then rmsnorm_forward");
  expect(same_bytes(fused[3], sum) && same_bytes(fused[4], y) && same_bytes(fused[5], rstd),
         what + " in place: the same bytes");
}

// ---------------------------------------------------------------------------------------------- RoPE

/// head_dim 16, half rotary, odd row stride: one pair per thread; head_dim 32 with a 16-aligned stride: 16-byte
/// loads (kernels_cuda_elementwise.cu's rope_vec_kernel) for both dtypes.
void test_rope(i64 head_dim, bool vector_layout) {
  RopeConfig cfg;
  cfg.partial_rotary_factor = vector_layout ? 1.0 : 0.5;
  const i64 rot = vector_layout ? head_dim : head_dim / 2, half = rot / 2, positions = 12;
  RopeDims d;
  d.batch = 2, d.seq = 5, d.heads = 3, d.head_dim = head_dim, d.row_stride = 3 * head_dim + (vector_layout ? 16 : 5);
  d.rotary_dim = rot, d.table_positions = positions;
  const Vec x = random_vec(d.batch * d.seq * d.row_stride);
  auto res = twice("rope", [&] {
    DevX T{Vec(positions * rot)}, F(x), B(x);
    expect_ok(K->rope_table(T.p(), cfg, head_dim, positions), "rope_table");
    expect_ok(K->rope_forward(F.p(), d, T.p()), "rope_forward");
    expect_ok(K->rope_backward(B.p(), d, T.p()), "rope_backward");
    return std::vector<Vec>{T.get(), F.get(), B.get()};
  });
  const std::vector<double> inv = ATP_CHECK_OK(rope_inv_freq(cfg, head_dim));
  Ref table(positions * rot);
  for (i64 p = 0; p < positions; ++p)
    for (i64 i = 0; i < half; ++i) {
      table[p * rot + i] = std::cos(double(p) * inv[i]);
      table[p * rot + half + i] = std::sin(double(p) * inv[i]);
    }
  expect_close("rope_table", res[0], table);
  const Vec &used = res[0]; // the rotation's input: the table as stored (bf16-rounded for BF16)
  Ref fwd(x.begin(), x.end()), bwd(x.begin(), x.end()); // the columns past each head's rotary part pass through
  for (i64 t = 0; t < d.batch * d.seq; ++t)
    for (i64 h = 0; h < d.heads; ++h)
      for (i64 i = 0; i < half; ++i) {
        const i64 at = t * d.row_stride + h * head_dim + i, p = t % d.seq;
        const double c = used[p * rot + i], s = used[p * rot + half + i], x1 = x[at], x2 = x[at + half];
        fwd[at] = x1 * c - x2 * s, fwd[at + half] = x2 * c + x1 * s;
        bwd[at] = x1 * c + x2 * s, bwd[at + half] = x2 * c - x1 * s;
      }
  expect_close("rope_forward", res[1], fwd);
  expect_close("rope_backward", res[2], bwd);
}

// ---------------------------------------------------------------------------------------------- SwiGLU, add, scale

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

/// ffn 37: one element per thread; 64: 16-byte loads and stores (kernels_cuda_elementwise.cu), for both dtypes.
void test_swiglu(i64 ffn) {
  const i64 rows = 5, stride = 2 * ffn; // phi3's fused [gate | up]
  const Vec gu = random_vec(rows * stride, -4.0f, 4.0f), dout = random_vec(rows * ffn);
  auto res = twice("swiglu", [&] {
    DevX GU(gu), O{Vec(rows * ffn)}, D(dout), DGU{Vec(rows * stride, 9.0f)}, IN(gu);
    expect_ok(K->swiglu_forward(O.p(), GU.p(), GU.at(ffn), rows, ffn, stride), "swiglu_forward");
    expect_ok(K->swiglu_backward(DGU.p(), DGU.at(ffn), D.p(), GU.p(), GU.at(ffn), rows, ffn, stride),
              "swiglu_backward");
    expect_ok(K->swiglu_backward(IN.p(), IN.at(ffn), D.p(), IN.p(), IN.at(ffn), rows, ffn, stride),
              "swiglu_backward in place");
    return std::vector<Vec>{O.get(), DGU.get(), IN.get()};
  });
  Ref out(rows * ffn), dgu(rows * stride);
  for (i64 t = 0; t < rows; ++t)
    for (i64 j = 0; j < ffn; ++j) {
      const double g = gu[t * stride + j], u = gu[t * stride + ffn + j], s = sigmoid(g), d = dout[t * ffn + j];
      out[t * ffn + j] = g * s * u;
      dgu[t * stride + j] = d * u * s * (1 + g * (1 - s));
      dgu[t * stride + ffn + j] = d * g * s;
    }
  expect_close("swiglu_forward", res[0], out);
  expect_close("swiglu_backward", res[1], dgu);
  expect(same_bytes(res[1], res[2]), "swiglu_backward in place gives the same bytes");
}

/// n 100003: one element per thread; 100000: 16-byte loads and stores.
void test_add_scale(i64 n) {
  const Vec a = random_vec(n), b = random_vec(n);
  auto res = twice("add/scale", [&] {
    DevX A(a), B(b), O{Vec(n)};
    expect_ok(K->add(O.p(), A.p(), B.p(), n), "add");
    expect_ok(K->add(A.p(), A.p(), B.p(), n), "add in place");
    expect_ok(K->scale(B.p(), -0.25, n), "scale");
    return std::vector<Vec>{O.get(), A.get(), B.get()};
  });
  Ref sum(n), scaled(n);
  for (i64 i = 0; i < n; ++i)
    sum[i] = double(stored(a[i] + b[i])), scaled[i] = double(stored(b[i] * -0.25f)); // one float op, one rounding
  expect_close("add", res[0], sum, 0.0);
  expect_close("add in place", res[1], sum, 0.0);
  expect_close("scale", res[2], scaled, 0.0);
}

// ---------------------------------------------------------------------------------------------- attention

/// Causal GQA reference in double on a fused [T, (Hq + 2 Hkv) D + pad] qkv buffer (q, then k, then v).
/// Each result also has its magnitude sum (the *_abs): the sum of the absolute values of the terms that the
/// flash kernels round to bf16 before a product (kBf16Tol's note on the flash path).
struct AttnRef {
  Ref out, lse, dq, dk, dv;            // dq/dk/dv in the fused layout (padding and unused columns: 0)
  Ref out_abs, dq_abs, dk_abs, dv_abs; // out: sum_j p_j |v_j|; dv: sum_i p_i |dout_i|; dk, dq: scale sum |ds| |q or k|
};

/// `out_used` is the forward output as the kernels stored it, which backward reads back (D_i = dout_i . out_i).
AttnRef attention_reference(const Vec &qkv, const Vec &dout, const Vec &out_used, const AttentionDims &d, i64 kv_off,
                            i64 v_off) {
  const i64 S = d.seq, D = d.head_dim, rep = d.q_heads / d.kv_heads, od = d.q_heads * D, st = d.q_stride;
  AttnRef r;
  r.out.assign(d.batch * S * od, 0.0), r.lse.assign(d.batch * d.q_heads * S, 0.0);
  r.dq.assign(qkv.size(), 0.0), r.dk = r.dq, r.dv = r.dq;
  r.out_abs = r.out, r.dq_abs = r.dq, r.dk_abs = r.dq, r.dv_abs = r.dq;
  auto q = [&](i64 b, i64 i, i64 h, i64 c) { return double(qkv[(b * S + i) * st + h * D + c]); };
  auto k = [&](i64 b, i64 j, i64 g, i64 c) { return double(qkv[(b * S + j) * st + kv_off + g * D + c]); };
  auto v = [&](i64 b, i64 j, i64 g, i64 c) { return double(qkv[(b * S + j) * st + v_off + g * D + c]); };
  for (i64 b = 0; b < d.batch; ++b)
    for (i64 h = 0; h < d.q_heads; ++h) {
      const i64 g = h / rep;
      for (i64 i = 0; i < S; ++i) {
        const i64 lo = d.sliding_window > 0 ? std::max<i64>(0, i - d.sliding_window + 1) : 0;
        std::vector<double> p(S, 0.0), dp(S, 0.0);
        double m = -INFINITY, sum = 0, delta = 0;
        for (i64 j = lo; j <= i; ++j) {
          double s = 0;
          for (i64 c = 0; c < D; ++c)
            s += q(b, i, h, c) * k(b, j, g, c);
          p[j] = s * d.scale, m = std::max(m, p[j]);
        }
        for (i64 j = lo; j <= i; ++j)
          sum += std::exp(p[j] - m);
        for (i64 j = lo; j <= i; ++j)
          p[j] = std::exp(p[j] - m) / sum;
        r.lse[(b * d.q_heads + h) * S + i] = m + std::log(sum);
        for (i64 c = 0; c < D; ++c) {
          double o = 0, o_abs = 0;
          for (i64 j = lo; j <= i; ++j)
            o += p[j] * v(b, j, g, c), o_abs += p[j] * std::fabs(v(b, j, g, c));
          r.out[(b * S + i) * od + h * D + c] = o;
          r.out_abs[(b * S + i) * od + h * D + c] = o_abs;
        }
        for (i64 j = lo; j <= i; ++j)
          for (i64 c = 0; c < D; ++c)
            dp[j] += double(dout[(b * S + i) * od + h * D + c]) * v(b, j, g, c);
        for (i64 c = 0; c < D; ++c) // = sum_j p_j dp_j for the exact out
          delta += double(dout[(b * S + i) * od + h * D + c]) * double(out_used[(b * S + i) * od + h * D + c]);
        for (i64 j = lo; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - delta);
          for (i64 c = 0; c < D; ++c) {
            const double doc = dout[(b * S + i) * od + h * D + c];
            const i64 at_q = (b * S + i) * st + h * D + c, at_k = (b * S + j) * st + kv_off + g * D + c,
                      at_v = (b * S + j) * st + v_off + g * D + c;
            r.dq[at_q] += d.scale * ds * k(b, j, g, c);
            r.dk[at_k] += d.scale * ds * q(b, i, h, c);
            r.dv[at_v] += p[j] * doc;
            r.dq_abs[at_q] += d.scale * std::fabs(ds * k(b, j, g, c));
            r.dk_abs[at_k] += d.scale * std::fabs(ds * q(b, i, h, c));
            r.dv_abs[at_v] += p[j] * std::fabs(doc);
          }
        }
      }
    }
  return r;
}

/// The flash path (BF16, head_dim 64/96/128, 16-byte aligned rows: kernels_cuda_flash.cuh) rounds the
/// probabilities P to bf16 before P V (forward) and P^T dO (dv), and dS = P (dP - D) to bf16 before dS K (dq) and
/// dS^T Q (dk). Each rounded factor x~ = x (1 + e), |e| <= 2^-8, so a sum sum_n x~_n y_n (y bf16-exact, products
/// and sums in fp32) differs from sum_n x_n y_n by at most 2^-8 sum_n |x_n y_n|: the *_abs magnitude sums of
/// AttnRef (out divides by l, the fp32 sum of the UNrounded p, so its bound is 2^-8 sum_j p_j |v_j| with the
/// normalized p). This is more than one rounding of the result (the sum may cancel to much less than its
/// magnitude), so these results get |got - ref| <= kBf16Tol (|ref| + largest) + 2^-8 abs: the final rounding
/// and fp32 work as for every BF16 result, plus the rounded intermediate factors. The row-per-warp path (F32,
/// other head_dims, unaligned strides) rounds nothing but the result: abs_term 0.
double attention_abs_term(bool flash) { return flash ? 1.0 / 256 : 0.0; }

/// expect_close with an extra absolute allowance of abs_term * abs[i] for element i.
void expect_close_plus(const std::string &what, const Vec &got, const Ref &ref, const Ref &abs, double abs_term,
                       double tol = -1) {
  if (tol < 0)
    tol = computed_tol();
  double scale = 0.0;
  for (double r : ref)
    scale = std::max(scale, std::fabs(r));
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - ref[i]) <= tol * (std::fabs(ref[i]) + scale) + abs_term * abs[i])) {
      char buf[240];
      std::snprintf(buf, sizeof buf, ": element %zu is %.9g, reference %.9g (largest %.3g, magnitude sum %.3g)", i,
                    double(got[i]), ref[i], scale, abs[i]);
      return expect(false, what + buf);
    }
  expect(got.size() == ref.size(), what);
}

struct AttnCase {
  i64 batch = 2, seq = 9, q_heads = 4, kv_heads = 2, head_dim = 16, window = 0;
  i64 pad = 3; // pad columns of the fused qkv rows: 3 leaves rows unaligned (row-per-warp path), 8 aligned
};

/// A case's fused qkv rows (q, k, v column blocks, then pad columns), its dims and its name.
struct AttnLayout {
  AttentionDims d;
  i64 kv_off, v_off, width, stride, T, od;
  std::string name;
};

AttnLayout attention_layout(const AttnCase &ac) {
  AttnLayout l;
  AttentionDims &d = l.d;
  d.batch = ac.batch, d.seq = ac.seq, d.q_heads = ac.q_heads, d.kv_heads = ac.kv_heads, d.head_dim = ac.head_dim;
  const i64 D = ac.head_dim;
  l.kv_off = ac.q_heads * D, l.v_off = (ac.q_heads + ac.kv_heads) * D, l.width = (ac.q_heads + 2 * ac.kv_heads) * D;
  l.stride = l.width + ac.pad, l.T = d.batch * d.seq, l.od = d.q_heads * D;
  d.q_stride = d.k_stride = d.v_stride = l.stride;
  d.scale = 1.0 / std::sqrt(double(D)), d.sliding_window = ac.window;
  l.name = "attention b" + std::to_string(ac.batch) + " s" + std::to_string(ac.seq) + " h" +
           std::to_string(ac.q_heads) + "/" + std::to_string(ac.kv_heads) + " head_dim " + std::to_string(D) +
           " window " + std::to_string(ac.window) + " pad " + std::to_string(ac.pad);
  return l;
}

void test_attention(const AttnCase &ac) {
  const AttnLayout l = attention_layout(ac);
  const AttentionDims &d = l.d;
  const i64 D = ac.head_dim, kv_off = l.kv_off, v_off = l.v_off, width = l.width, stride = l.stride, T = l.T, od = l.od;
  const bool flash = dt == DType::BF16 && (D == 64 || D == 96 || D == 128) && stride % 8 == 0;
  const Vec qkv = random_vec(T * stride, -2.0f, 2.0f), dout = random_vec(T * od);
  const Vec fill(T * stride, 5.0f); // dq/dk/dv land in one fused buffer; the pad columns must stay 5
  const std::string what = l.name + (flash ? " (flash)" : "");
  auto res = twice(what, [&] {
    DevX QKV(qkv), O{Vec(T * od)}, DO(dout), G(fill);
    DevS L{Vec(d.batch * d.q_heads * d.seq)};
    expect_ok(K->attention_forward(O.p(), L.p(), QKV.p(), QKV.at(kv_off), QKV.at(v_off), d), what + " forward");
    expect_ok(K->attention_backward(G.p(), G.at(kv_off), G.at(v_off), DO.p(), QKV.p(), QKV.at(kv_off), QKV.at(v_off),
                                    O.p(), L.p(), d),
              what + " backward");
    return std::vector<Vec>{O.get(), L.get(), G.get()};
  });
  const AttnRef r = attention_reference(qkv, dout, res[0], d, kv_off, v_off);
  const double abs_term = attention_abs_term(flash);
  expect_close_plus(what + " out", res[0], r.out, r.out_abs, abs_term);
  expect_close(what + " lse", res[1], r.lse, kF32Tol);
  // q, k and v gradients have different magnitudes: compare each block against its own largest element
  for (int part = 0; part < 3; ++part) {
    const i64 lo = part == 0 ? 0 : part == 1 ? kv_off : v_off, hi = part == 0 ? kv_off : part == 1 ? v_off : width;
    const Ref &grads = part == 0 ? r.dq : part == 1 ? r.dk : r.dv;
    const Ref &abs = part == 0 ? r.dq_abs : part == 1 ? r.dk_abs : r.dv_abs;
    Vec got;
    Ref ref, mag;
    for (i64 t = 0; t < T; ++t)
      for (i64 c = lo; c < hi; ++c)
        got.push_back(res[2][t * stride + c]), ref.push_back(grads[t * stride + c]), mag.push_back(abs[t * stride + c]);
    expect_close_plus(what + (part == 0 ? " dq" : part == 1 ? " dk" : " dv"), got, ref, mag, abs_term);
  }
  bool pad_kept = true;
  for (i64 t = 0; t < T; ++t)
    for (i64 c = width; c < stride; ++c)
      pad_kept = pad_kept && res[2][t * stride + c] == 5.0f;
  expect(pad_kept, what + ": the padding columns of dqkv keep their bytes");
}

/// True where BF16 attention must run on cuDNN: the runtime has it (ATP_RUNTIME_HAS_CUDNN), the GPU is a Hopper and
/// the suite runs BF16.
bool cudnn_expected() {
#ifdef ATP_RUNTIME_HAS_CUDNN
  int device = 0;
  cudaDeviceProp prop{};
  ATP_CUDA_CHECK(cudaGetDevice(&device));
  ATP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return dt == DType::BF16 && prop.major == 9;
#else
  return false;
#endif
}

/// Where cudnn_expected(), BF16 attention of this shape must run on cuDNN, forward and backward: each direction is
/// run once with ATP_ATTENTION unset and once with "flash" on the same inputs (the backward fed by one forward's
/// out and lse), and the two must differ in some byte; cuDNN's sums and ours run in different orders, so equal
/// bytes over every element mean one path ran twice. (Their values are held to the double reference by
/// test_attention.)
void test_attention_runs_on_cudnn(const AttnCase &ac) {
  if (!cudnn_expected())
    return;
  const AttnLayout l = attention_layout(ac);
  const AttentionDims &d = l.d;
  DevX QKV(random_vec(l.T * l.stride, -2.0f, 2.0f)), DO(random_vec(l.T * l.od)), O{Vec(l.T * l.od)},
      O2{Vec(l.T * l.od)};
  DevX G1{Vec(l.T * l.stride)}, G2{Vec(l.T * l.stride)};
  DevS L{Vec(d.batch * d.q_heads * d.seq)}, L2{Vec(d.batch * d.q_heads * d.seq)};
  auto forward = [&](DevX &Out, DevS &Lse) {
    expect_ok(K->attention_forward(Out.p(), Lse.p(), QKV.p(), QKV.at(l.kv_off), QKV.at(l.v_off), d),
              l.name + " forward");
  };
  auto backward = [&](DevX &G) {
    expect_ok(K->attention_backward(G.p(), G.at(l.kv_off), G.at(l.v_off), DO.p(), QKV.p(), QKV.at(l.kv_off),
                                    QKV.at(l.v_off), O.p(), L.p(), d),
              l.name + " backward");
  };
  ::setenv("ATP_ATTENTION", "flash", 1);
  forward(O, L);
  backward(G2);
  ::unsetenv("ATP_ATTENTION");
  backward(G1);
  forward(O2, L2);
  expect(!same_bytes(O.get(), O2.get()), l.name + ": the forward runs on cuDNN (its out differs from our flash's)");
  expect(!same_bytes(G1.get(), G2.get()), l.name + ": the backward runs on cuDNN (its dqkv differs from our flash's)");
}

/// A bad ATP_CUDNN_WORKSPACE_LIMIT is an error that names it, before the backward writes anything.
void test_cudnn_workspace_limit_is_checked(const AttnCase &ac) {
  if (!cudnn_expected())
    return;
  const AttnLayout l = attention_layout(ac);
  const Vec fill(l.T * l.stride, 5.0f);
  DevX QKV(random_vec(l.T * l.stride, -2.0f, 2.0f)), DO(random_vec(l.T * l.od)), O{Vec(l.T * l.od)}, G(fill);
  DevS L{Vec(l.d.batch * l.d.q_heads * l.d.seq)};
  expect_ok(K->attention_forward(O.p(), L.p(), QKV.p(), QKV.at(l.kv_off), QKV.at(l.v_off), l.d), l.name + " forward");
  ::setenv("ATP_CUDNN_WORKSPACE_LIMIT", "4GB", 1);
  const Status s = K->attention_backward(G.p(), G.at(l.kv_off), G.at(l.v_off), DO.p(), QKV.p(), QKV.at(l.kv_off),
                                         QKV.at(l.v_off), O.p(), L.p(), l.d);
  ::unsetenv("ATP_CUDNN_WORKSPACE_LIMIT");
  expect(!s.ok() && s.message().find("ATP_CUDNN_WORKSPACE_LIMIT='4GB' is not a number of bytes") != std::string::npos,
         l.name + ": a bad ATP_CUDNN_WORKSPACE_LIMIT fails naming it, got: " + s.message());
  expect(same_bytes(G.get(), fill), l.name + ": the failed backward writes nothing");
}

// ---------------------------------------------------------------------------------------------- cross-entropy

/// rows: the targets below, repeated.
void test_cross_entropy(i64 vocab, i64 rows = 6) {
  const std::int32_t pattern[6] = {3, -100, 0, std::int32_t(vocab - 1), -100, 7};
  std::vector<std::int32_t> targets;
  for (i64 t = 0; t < rows; ++t)
    targets.push_back(pattern[t % 6]);
  const long long counted = std::count_if(targets.begin(), targets.end(), [](std::int32_t x) { return x != -100; });
  const Vec logits = random_vec(rows * vocab, -3.0f, 3.0f);
  CrossEntropyArgs a;
  a.rows = rows, a.vocab = vocab, a.denominator = 9, a.grad_scale = 2.0;
  const std::string what = "cross_entropy vocab " + std::to_string(vocab) + " rows " + std::to_string(rows);
  CrossEntropySum sums[2];
  int run = 0;
  auto res = twice(what, [&] { // the second run as the decoder calls it: targets checked on the host
    DevI TG(targets);
    DevX L(logits), E(logits);
    a.targets_checked = run == 1;
    auto s = K->cross_entropy(L.p(), TG.p(), a);
    expect_ok(s.status(), what);
    CrossEntropyArgs eval = a;
    eval.write_grad = false;
    auto e = K->cross_entropy(E.p(), TG.p(), eval);
    expect_ok(e.status(), what + " eval");
    if (s.ok() && e.ok()) {
      sums[run] = *s;
      expect(e->loss_sum == s->loss_sum && e->count == s->count, what + ": eval gives the same loss");
    }
    ++run;
    return std::vector<Vec>{L.get(), E.get()};
  });
  double loss = 0;
  Ref grad(rows * vocab, 0.0);
  const double g = a.grad_scale / double(a.denominator);
  for (i64 t = 0; t < rows; ++t) {
    if (targets[t] == -100)
      continue;
    double m = -INFINITY, sum = 0;
    for (i64 j = 0; j < vocab; ++j)
      m = std::max(m, double(logits[t * vocab + j]));
    for (i64 j = 0; j < vocab; ++j)
      sum += std::exp(logits[t * vocab + j] - m);
    const double lse = m + std::log(sum);
    loss += lse - logits[t * vocab + targets[t]];
    for (i64 j = 0; j < vocab; ++j)
      grad[t * vocab + j] = g * (std::exp(logits[t * vocab + j] - lse) - (j == targets[t] ? 1.0 : 0.0));
  }
  expect(sums[0].count == counted, what + ": count " + std::to_string(sums[0].count) + " == " + std::to_string(counted));
  // the loss is a double sum of fp32 logsumexps of exact inputs, for both dtypes: kF32Tol
  expect(std::fabs(sums[0].loss_sum - loss) <= kF32Tol * std::fabs(loss),
         what + ": loss " + std::to_string(sums[0].loss_sum) + " vs " + std::to_string(loss));
  expect(sums[0].loss_sum == sums[1].loss_sum, what + ": the same loss bits twice");
  expect_close(what + " dlogits", res[0], grad);
  expect(same_bytes(res[1], logits), what + ": write_grad false leaves the logits");

  a.targets_checked = false;
  std::vector<std::int32_t> bad = targets;
  bad[2] = std::int32_t(vocab);
  DevI TG(bad);
  DevX L(logits);
  auto s = K->cross_entropy(L.p(), TG.p(), a);
  const std::string want = "target " + std::to_string(vocab) + " at row 2";
  expect(!s.ok() && s.status().message().find(want) != std::string::npos,
         what + " bad target: " + s.status().message());
  expect(same_bytes(L.get(), logits), what + " bad target writes nothing");
}

/// The 16-byte path's special values (vocab 1024): whole vectors of -inf logits and single -inf ones add nothing
/// to a row's sum (their dlogits are 0), and a NaN among a vector's -inf must still make the loss NaN.
void test_cross_entropy_special() {
  const i64 rows = 3, vocab = 1024;
  Vec logits = random_vec(rows * vocab, -3.0f, 3.0f);
  for (i64 j = 0; j < 512; ++j)
    logits[j] = -INFINITY; // row 0: its first 512 logits (64 or 128 whole vectors)
  for (i64 j = 3; j < vocab; j += 37)
    logits[vocab + j] = -INFINITY; // row 1: scattered
  const std::vector<std::int32_t> targets = {700, 5, -100};
  CrossEntropyArgs a;
  a.rows = rows, a.vocab = vocab, a.denominator = 2, a.grad_scale = 1.0;
  DevI TG(targets);
  DevX L(logits);
  auto s = K->cross_entropy(L.p(), TG.p(), a);
  expect_ok(s.status(), "cross_entropy -inf logits");
  double loss = 0;
  Ref grad(rows * vocab, 0.0);
  for (i64 t = 0; t < 2; ++t) {
    double m = -INFINITY, sum = 0;
    for (i64 j = 0; j < vocab; ++j)
      m = std::max(m, double(logits[t * vocab + j]));
    for (i64 j = 0; j < vocab; ++j)
      sum += std::exp(double(logits[t * vocab + j]) - m); // exp(-inf) = 0
    const double lse = m + std::log(sum);
    loss += lse - logits[t * vocab + targets[t]];
    for (i64 j = 0; j < vocab; ++j)
      grad[t * vocab + j] = 0.5 * (std::exp(double(logits[t * vocab + j]) - lse) - (j == targets[t] ? 1.0 : 0.0));
  }
  if (s.ok())
    expect(std::fabs(s->loss_sum - loss) <= kF32Tol * std::fabs(loss),
           "cross_entropy -inf logits: loss " + std::to_string(s->loss_sum) + " vs " + std::to_string(loss));
  expect_close("cross_entropy -inf logits dlogits", L.get(), grad);

  Vec poisoned = logits;
  poisoned[100] = NAN; // inside row 0's -inf vectors
  DevX P(poisoned);
  CrossEntropyArgs eval = a;
  eval.write_grad = false;
  auto n = K->cross_entropy(P.p(), TG.p(), eval);
  expect_ok(n.status(), "cross_entropy NaN among -inf");
  if (n.ok())
    expect(std::isnan(n->loss_sum),
           "cross_entropy: a NaN among -inf logits makes the loss NaN, got " + std::to_string(n->loss_sum));
}

/// Every check, for the current dtype `dt` and kernels K.
void run_suite() {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (double beta : {0.0, 0.3})
        test_gemm(ta, tb, beta), test_gemm(ta, tb, beta, 64, 128, 256, false);
  for (bool bias : {false, true})
    for (Write mode : {Write::Overwrite, Write::Accumulate})
      test_linear(bias, mode, 6);
  test_linear(true, Write::Accumulate, 259);          // db's column sums over three row chunks
  test_linear(true, Write::Accumulate, 256, 128, 64); // aligned: tensor-core algorithms with the bias epilogue
  test_linear(false, Write::Overwrite, 256, 128, 64);
  test_linear(true, Write::Overwrite, 259, 20, 9, Write::Overwrite);    // dw and db written over NaN
  test_linear(false, Write::Overwrite, 256, 128, 64, Write::Overwrite); // tensor-core algorithms, beta 0
  test_embedding();
  test_rmsnorm(Write::Overwrite, 7);
  test_rmsnorm(Write::Accumulate, 7);
  test_rmsnorm(Write::Accumulate, 300); // dw's column sums over three row chunks
  test_rmsnorm(Write::Overwrite, 9, 2048);
  test_rmsnorm(Write::Accumulate, 9, 2048);
  test_rmsnorm(Write::Accumulate, 203, 2048);       // the fused backward's partials of 7 blocks, the last one short
  test_rmsnorm(Write::Accumulate, 37, 2056);        // a row one vector wider than a block's loads (bf16)
  test_rmsnorm(Write::Overwrite, 70, 4096);         // 2 (bf16) and 4 (float) vectors a thread
  test_rmsnorm(Write::Accumulate, 33, 8192);        // 4 vectors a thread (bf16); float: the scalar kernels
  test_rmsnorm(Write::Accumulate, 45, 2048, false); // no dx: dw only
  test_rmsnorm(Write::Accumulate, 203, 2048, true, Write::Overwrite); // dw written over NaN: the fused backward
  test_rmsnorm(Write::Accumulate, 300, 300, true, Write::Overwrite);  // ... and the column sums
  test_add_rmsnorm(7, 300);
  test_add_rmsnorm(9, 2048);
  test_add_rmsnorm(33, 8192);
  test_rope(16, false);
  test_rope(32, true);
  test_swiglu(37);
  test_swiglu(64);
  test_add_scale(100003);
  test_add_scale(100000);
  for (i64 head_dim : {16, 40})
    for (i64 window : {0, 3}) {
      AttnCase ac;
      ac.head_dim = head_dim, ac.window = window;
      test_attention(ac);
    }
  // The flash path's shapes (BF16; F32 runs them on its row-per-warp kernels): tiles of 64, so seq 77..150 has
  // 2-3 tiles and a partial last one; windows inside one tile and across tiles; GQA ratios 1, 2 and 4; aligned
  // fused-qkv rows (pad 8), and an unaligned one that falls back.
  const AttnCase flash_cases[] = {
      {2, 150, 4, 1, 64, 0, 8},   {2, 150, 4, 2, 64, 70, 8}, {1, 100, 2, 2, 128, 0, 8}, {2, 77, 4, 2, 96, 5, 8},
      {1, 130, 4, 1, 128, 33, 8}, {1, 64, 2, 1, 64, 0, 8},   {1, 70, 2, 1, 64, 0, 3},
  };
  for (const AttnCase &ac : flash_cases)
    test_attention(ac); // BF16's forward: cuDNN's fused attention where the runtime has cuDNN and it takes the case
  // Shapes cuDNN's backward takes on every cuDNN 9 (up to 9.15 it leaves keys not a multiple of 128 to ours):
  // GQA ratios 4, 1 and 2, head dims 64, 128 and 96.
  const AttnCase cudnn_cases[] = {{2, 256, 4, 1, 64, 0, 8}, {1, 128, 2, 2, 128, 0, 8}, {2, 128, 4, 2, 96, 0, 8}};
  for (const AttnCase &ac : cudnn_cases) {
    test_attention(ac);
    test_attention_runs_on_cudnn(ac);
  }
  // cuDNN's backward one batch row at a time: a workspace limit below two rows' dP
  ::setenv("ATP_CUDNN_WORKSPACE_LIMIT", std::to_string(4 * 256 * 256 * 2).c_str(), 1);
  test_attention(cudnn_cases[0]);
  test_attention_runs_on_cudnn(cudnn_cases[0]);
  ::unsetenv("ATP_CUDNN_WORKSPACE_LIMIT");
  test_cudnn_workspace_limit_is_checked(cudnn_cases[0]);
  ::setenv("ATP_ATTENTION", "flash", 1); // and our flash kernels on every case
  for (const AttnCase &ac : flash_cases)
    test_attention(ac);
  for (const AttnCase &ac : cudnn_cases)
    test_attention(ac);
  ::unsetenv("ATP_ATTENTION");
  test_cross_entropy(50);
  test_cross_entropy(700);
  test_cross_entropy(1024); // 16-byte loads for both dtypes
  // Llama 3's vocabulary (a 250 KB bf16 row, many 16-byte vectors a thread) over more rows than a GPU holds
  // blocks at once
  test_cross_entropy(128256, 300);
  test_cross_entropy_special();
  // A bad argument is rejected by the shared checks before anything runs.
  expect(!K->add(nullptr, nullptr, nullptr, 4).ok(), "add with null pointers fails");
}

} // namespace

int main() {
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  expect(!make_cuda_kernels(DType::F16, stream).ok(), "F16 is not a CUDA kernels dtype");
  for (DType d : {DType::F32, DType::BF16}) {
    dt = d;
    std::unique_ptr<Kernels> kernels = ATP_CHECK_OK(make_cuda_kernels(d, stream));
    K = kernels.get();
    expect(std::string(K->name()) == "cuda" && K->dtype() == d && K->stat_dtype() == DType::F32, "identity");
    run_suite();
    ATP_CUDA_CHECK(cudaStreamSynchronize(stream));
    K = nullptr;
  }
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  std::printf("kernels_cuda_test: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
