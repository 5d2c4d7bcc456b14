/* kernels_cpu_elementwise.cpp - SwiGLU forward/backward and the residual add and scale, on the host.

   SwiGLU: out = silu(g) * u with silu(g) = g * sigmoid(g); backward, with s = sigmoid(g):
     dg = dout * u * s * (1 + g * (1 - s)),   du = dout * silu(g).
   gate and up (and dgate and dup) share one row stride, so a fused [rows, 2 ffn] gate_up buffer is read
   and written in place of two, and the gradients may overwrite gate and up (in place). Plain loops on the calling thread, in element order. */
#include "kernels_cpu.h"

#include <cmath>

namespace atp::cpu {

namespace {

template <class T> T sigmoid(T g) { return T(1) / (T(1) + std::exp(-g)); }

} // namespace

template <class T> void swiglu_forward(T *out, const T *gate, const T *up, i64 rows, i64 ffn, i64 in_stride) {
  for (i64 t = 0; t < rows; ++t) {
    const T *g = gate + t * in_stride, *u = up + t * in_stride;
    T *o = out + t * ffn;
    for (i64 j = 0; j < ffn; ++j)
      o[j] = g[j] * sigmoid(g[j]) * u[j];
  }
}

template <class T>
void swiglu_backward(T *dgate, T *dup, const T *dout, const T *gate, const T *up, i64 rows, i64 ffn,
                     i64 in_stride) {
  for (i64 t = 0; t < rows; ++t) {
    const T *g = gate + t * in_stride, *u = up + t * in_stride, *d = dout + t * ffn;
    T *dg = dgate + t * in_stride, *du = dup + t * in_stride;
    for (i64 j = 0; j < ffn; ++j) {
      const T gj = g[j], uj = u[j], s = sigmoid(gj); // both read first: the gradients may overwrite them
      du[j] = d[j] * (gj * s);
      dg[j] = d[j] * uj * s * (T(1) + gj * (T(1) - s));
    }
  }
}

template <class T> void add(T *out, const T *a, const T *b, i64 n) {
  for (i64 i = 0; i < n; ++i)
    out[i] = a[i] + b[i];
}

template <class T> void scale(T *x, double alpha, i64 n) {
  const T a = T(alpha);
  for (i64 i = 0; i < n; ++i)
    x[i] *= a;
}

#define ATP_INSTANTIATE(T)                                                                                      \
  template void swiglu_forward<T>(T *, const T *, const T *, i64, i64, i64);                                    \
  template void swiglu_backward<T>(T *, T *, const T *, const T *, const T *, i64, i64, i64);                   \
  template void add<T>(T *, const T *, const T *, i64);                                                         \
  template void scale<T>(T *, double, i64);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
