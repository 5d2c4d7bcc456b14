/* kernels_cpu.h - the CPU kernels of kernels.h as templates over the element type (float, double).

   kernels_cpu.cpp wraps them in the Kernels interface after kernels_check.h has accepted the arguments, so
   these functions assume valid dimensions. The same code runs in float (the training path) and double
   (the tests' finite-difference checks). Reductions accumulate in double, in a fixed order; GEMMs go to
   the CBLAS (blas_gemm below), the large ones through par_gemm, so results do not depend on a thread
   count. Each kernel family lives in its own file (kernels_cpu_<family>.cpp) and is explicitly
   instantiated there for float and double. */
#pragma once

#include "atp/kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace atp::cpu {

using i64 = std::int64_t;

/// Row-major C = alpha op(A) op(B) + beta C through cblas_sgemm / cblas_dgemm (dims already checked to fit int).
inline void blas_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, float alpha, const float *a, i64 lda, const float *b,
                      i64 ldb, float beta, float *c, i64 ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
inline void blas_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, double alpha, const double *a, i64 lda,
                      const double *b, i64 ldb, double beta, double *c, i64 ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// kernels_cpu_gemm.cpp: blas_gemm cut into fixed blocks over gemm_threads() threads, OpenBLAS single-threaded,
// so the bits depend on the dimensions only (not on the thread count). set_gemm_threads(0): every core.
void set_gemm_threads(int threads);
int gemm_threads();
template <class T>
void par_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T *a, i64 lda, const T *b, i64 ldb, T beta,
              T *c, i64 ldc);

/// Runs fn(task, worker) for every task in [0, tasks), spread round-robin over up to gemm_threads() workers
/// (worker < that count: an index for per-worker scratch). Tasks must write disjoint outputs, so the result
/// does not depend on the worker count.
template <class F> void parallel_tasks(i64 tasks, int max_workers, const F &fn) {
  const int workers = int(std::min<i64>(std::min(gemm_threads(), max_workers), tasks));
  if (workers <= 1) {
    for (i64 t = 0; t < tasks; ++t)
      fn(t, 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (i64 t = w; t < tasks; t += workers)
        fn(t, w);
    });
  for (i64 t = 0; t < tasks; t += workers)
    fn(t, 0);
  for (auto &th : pool)
    th.join();
}

// kernels_cpu_linear.cpp
template <class T> void gemm(const GemmArgs &g, const T *a, const T *b, T *c);
template <class T> void linear_forward(T *y, const T *x, const T *w, const T *bias, i64 rows, i64 in, i64 out);
template <class T>
void linear_backward(T *dx, Write mode, T *dw, T *db, Write dw_mode, const T *dy, const T *x, const T *w, i64 rows,
                     i64 in, i64 out);

// kernels_cpu_embedding.cpp (forward returns the first bad id's error before writing)
template <class T>
Status embedding_forward(T *out, const T *table, const std::int32_t *ids, i64 rows, i64 hidden,
                         const VocabRange &r);
template <class T>
Status embedding_backward(T *dtable, const T *dout, const std::int32_t *ids, i64 rows, i64 hidden,
                          const VocabRange &r);

// kernels_cpu_norm.cpp (S: the stat type, float for float and double for double)
template <class T> void rmsnorm_forward(T *y, T *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps);
template <class T>
void rmsnorm_backward(T *dx, Write mode, T *dw, Write dw_mode, const T *dy, const T *x, const T *w, const T *rstd,
                      i64 rows, i64 hidden);

// kernels_cpu_rope.cpp
template <class T> Status rope_table(T *table, const RopeConfig &cfg, i64 head_dim, i64 positions);
template <class T> void rope_apply(T *x, const RopeDims &d, const T *table, bool transpose);

// kernels_cpu_elementwise.cpp
template <class T> void swiglu_forward(T *out, const T *gate, const T *up, i64 rows, i64 ffn, i64 in_stride);
template <class T>
void swiglu_backward(T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows, i64 ffn,
                     i64 in_stride);
template <class T> void add(T *out, const T *a, const T *b, i64 n);
template <class T> void scale(T *x, double alpha, i64 n);

// kernels_cpu_attention.cpp
template <class T> void attention_forward(T *out, T *lse, const T *q, const T *k, const T *v, const AttentionDims &d);
template <class T>
void attention_backward(T *dq, T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, const T *out,
                        const T *lse, const AttentionDims &d);

// kernels_cpu_loss.cpp (checks every target before writing)
template <class T>
Result<CrossEntropySum> cross_entropy(T *logits, const std::int32_t *targets, const CrossEntropyArgs &a);

} // namespace atp::cpu
