/* kernels_cpu_linear.cpp - GEMM and the linear layer, forward and backward, on the host (kernels.h).

   Every product is one par_gemm (kernels_cpu_gemm.cpp): y = x w^T (NoTrans, Trans), dx = dy w
   (NoTrans, NoTrans, beta 0 or 1 for Write::Accumulate), dw += dy^T x (Trans, NoTrans, beta 1). The bias is
   copied into y first and the product added to it (beta 1), as torch's addmm does; db sums dy's rows in row order, in double. */
#include "kernels_cpu.h"

#include <vector>

namespace atp::cpu {

template <class T> void gemm(const GemmArgs &g, const T *a, const T *b, T *c) {
  par_gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, T(g.alpha), a, g.lda, b, g.ldb, T(g.beta), c, g.ldc);
}

template <class T> void linear_forward(T *y, const T *x, const T *w, const T *bias, i64 rows, i64 in, i64 out) {
  T beta = 0;
  if (bias) {
    for (i64 t = 0; t < rows; ++t)
      for (i64 o = 0; o < out; ++o)
        y[t * out + o] = bias[o];
    beta = 1;
  }
  par_gemm(false, true, rows, out, in, T(1), x, in, w, in, beta, y, out);
}

template <class T>
void linear_backward(T *dx, Write mode, T *dw, T *db, Write dw_mode, const T *dy, const T *x, const T *w, i64 rows,
                     i64 in, i64 out) {
  const bool add = dw_mode == Write::Accumulate;
  if (dx)
    par_gemm(false, false, rows, in, out, T(1), dy, out, w, in, mode == Write::Accumulate ? T(1) : T(0), dx, in);
  if (dw)
    par_gemm(true, false, out, in, rows, T(1), dy, out, x, in, add ? T(1) : T(0), dw, in);
  if (db) {
    std::vector<double> sum(static_cast<std::size_t>(out), 0.0);
    for (i64 t = 0; t < rows; ++t)
      for (i64 o = 0; o < out; ++o)
        sum[static_cast<std::size_t>(o)] += double(dy[t * out + o]);
    for (i64 o = 0; o < out; ++o)
      db[o] = add ? T(double(db[o]) + sum[static_cast<std::size_t>(o)]) : T(sum[static_cast<std::size_t>(o)]);
  }
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template void gemm<T>(const GemmArgs &, const T *, const T *, T *);                                                  \
  template void linear_forward<T>(T *, const T *, const T *, const T *, i64, i64, i64);                                \
  template void linear_backward<T>(T *, Write, T *, T *, Write, const T *, const T *, const T *, i64, i64, i64);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
