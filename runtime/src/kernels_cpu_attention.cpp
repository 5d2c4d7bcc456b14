/* kernels_cpu_attention.cpp - causal grouped-query attention, forward and backward, on the host.

   One task per (sequence, query head) in forward and per (sequence, kv head) in backward, spread over the
   CPU kernels' threads (parallel_tasks; each task writes its own outputs, so the bits do not depend on the
   thread count), with one [seq, seq] score block (two in backward) per thread: memory is quadratic in seq
   for those blocks only, never [batch, heads, seq, seq]. The products are
   CBLAS calls straight on the strided q/k/v columns of the head; the softmax runs in the element type
   with its sums in double and saves logsumexp per (sequence, head, row). Backward recomputes the
   probabilities from lse (P = exp(scale q k^T - lse)) and, with D_i = dout_i . out_i,
     dv += P^T dout,   dP = dout v^T,   dS = P * (dP - D),   dq = scale dS k,   dk += scale dS^T q,
   where the += runs over the query heads of a kv group in head order (the first one overwrites). */
#include "kernels_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace atp::cpu {

namespace {

/// The first key row s may attend: 0, or s - window + 1 with a sliding window.
i64 first_key(i64 s, i64 window) { return window > 0 ? std::max<i64>(0, s - window + 1) : 0; }

/// Threads only when a (sequence, head) block is worth one (the bits do not depend on it either way).
int workers_for(const AttentionDims &d) { return d.seq * d.seq * d.head_dim >= 4096 ? 1 << 20 : 1; }

} // namespace

template <class T> void attention_forward(T *out, T *lse, const T *q, const T *k, const T *v, const AttentionDims &d) {
  const i64 S = d.seq, D = d.head_dim, rep = d.q_heads / d.kv_heads, out_stride = d.q_heads * D;
  std::vector<std::vector<T>> scratch(static_cast<std::size_t>(gemm_threads())); // one [S, S] block per worker
  parallel_tasks(d.batch * d.q_heads, workers_for(d), [&](i64 task, int worker) {
    const i64 b = task / d.q_heads, h = task % d.q_heads, g = h / rep;
    std::vector<T> &P = scratch[std::size_t(worker)];
    P.resize(std::size_t(S * S));
    const T *qb = q + b * S * d.q_stride + h * D, *kb = k + b * S * d.k_stride + g * D;
    const T *vb = v + b * S * d.v_stride + g * D;
    blas_gemm(false, true, S, S, D, T(d.scale), qb, d.q_stride, kb, d.k_stride, T(0), P.data(), S);
    for (i64 i = 0; i < S; ++i) {
      T *row = P.data() + i * S;
      const i64 lo = first_key(i, d.sliding_window);
      T m = row[lo];
      for (i64 j = lo + 1; j <= i; ++j)
        m = std::max(m, row[j]);
      double sum = 0.0;
      for (i64 j = lo; j <= i; ++j) {
        row[j] = std::exp(row[j] - m);
        sum += double(row[j]);
      }
      const T inv = T(1.0 / sum);
      std::fill(row, row + lo, T(0));
      for (i64 j = lo; j <= i; ++j)
        row[j] *= inv;
      std::fill(row + i + 1, row + S, T(0));
      lse[(b * d.q_heads + h) * S + i] = T(double(m) + std::log(sum));
    }
    blas_gemm(false, false, S, D, S, T(1), P.data(), S, vb, d.v_stride, T(0), out + b * S * out_stride + h * D,
              out_stride);
  });
}

template <class T>
void attention_backward(T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, const T *out,
                        const T *lse, const AttentionDims &d) {
  const i64 S = d.seq, D = d.head_dim, rep = d.q_heads / d.kv_heads, o_stride = d.q_heads * D;
  struct Scratch {
    std::vector<T> P, dS;
    std::vector<double> Di;
  };
  std::vector<Scratch> scratch(static_cast<std::size_t>(gemm_threads()));
  // one task per (sequence, kv head): it alone writes that group's dk, dv and its query heads' dq
  parallel_tasks(d.batch * d.kv_heads, workers_for(d), [&](i64 task, int worker) {
    const i64 b = task / d.kv_heads, g = task % d.kv_heads;
    Scratch &sc = scratch[std::size_t(worker)];
    sc.P.resize(std::size_t(S * S)), sc.dS.resize(std::size_t(S * S)), sc.Di.resize(std::size_t(S));
    T *P = sc.P.data(), *dS = sc.dS.data();
    const T *kb = k + b * S * d.k_stride + g * D, *vb = v + b * S * d.v_stride + g * D;
    T *dkb = dk + b * S * d.k_stride + g * D, *dvb = dv + b * S * d.v_stride + g * D;
    for (i64 r = 0; r < rep; ++r) {
      const i64 h = g * rep + r;
      const T beta = r == 0 ? T(0) : T(1); // the group's first query head overwrites dk, dv
      const T *qb = q + b * S * d.q_stride + h * D;
      const T *ob = out + b * S * o_stride + h * D, *dob = dout + b * S * o_stride + h * D;
      const T *lb = lse + (b * d.q_heads + h) * S;
      T *dqb = dq + b * S * d.q_stride + h * D;

      blas_gemm(false, true, S, S, D, T(d.scale), qb, d.q_stride, kb, d.k_stride, T(0), P, S);
      for (i64 i = 0; i < S; ++i) {
        T *row = P + i * S;
        const i64 lo = first_key(i, d.sliding_window);
        std::fill(row, row + lo, T(0));
        for (i64 j = lo; j <= i; ++j)
          row[j] = std::exp(row[j] - lb[i]);
        std::fill(row + i + 1, row + S, T(0));
        double acc = 0.0;
        for (i64 c = 0; c < D; ++c)
          acc += double(dob[i * o_stride + c]) * double(ob[i * o_stride + c]);
        sc.Di[std::size_t(i)] = acc;
      }
      blas_gemm(true, false, S, D, S, T(1), P, S, dob, o_stride, beta, dvb, d.v_stride);
      blas_gemm(false, true, S, S, D, T(1), dob, o_stride, vb, d.v_stride, T(0), dS, S);
      for (i64 i = 0; i < S; ++i) {
        const T di = T(sc.Di[std::size_t(i)]);
        T *row = dS + i * S;
        const T *prow = P + i * S;
        for (i64 j = 0; j < S; ++j)
          row[j] = prow[j] * (row[j] - di); // masked entries: P = 0, so dS = 0
      }
      blas_gemm(false, false, S, D, S, T(d.scale), dS, S, kb, d.k_stride, T(0), dqb, d.q_stride);
      blas_gemm(true, false, S, D, S, T(d.scale), dS, S, qb, d.q_stride, beta, dkb, d.k_stride);
    }
  });
}

#define ATP_INSTANTIATE(T)                                                                                      \
  template void attention_forward<T>(T *, T *, const T *, const T *, const T *, const AttentionDims &);         \
  template void attention_backward<T>(T *, T *, T *, const T *, const T *, const T *, const T *, const T *,     \
                                      const T *, const AttentionDims &);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
