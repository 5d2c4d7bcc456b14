/* kernels_cpu_norm.cpp - RMSNorm forward and backward, on the host (kernels.h).

   As HF's LlamaRMSNorm in fp32: rstd = 1 / sqrt(mean(x^2) + eps), y = w * (x * rstd), with the sum of
   squares in double. Backward, with xhat = x * rstd and g = dy * w:
     dx = rstd * (g - xhat * mean(g * xhat)),   dw += sum over rows of dy * xhat,
   the row sums in double and dw's column sums in double, in row order. */
#include "kernels_cpu.h"

#include <cmath>
#include <vector>

namespace atp::cpu {

template <class T> void rmsnorm_forward(T *y, T *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps) {
  for (i64 t = 0; t < rows; ++t) {
    const T *xr = x + t * hidden;
    double ss = 0.0;
    for (i64 j = 0; j < hidden; ++j)
      ss += double(xr[j]) * double(xr[j]);
    const T r = T(1.0 / std::sqrt(ss / double(hidden) + eps));
    rstd[t] = r;
    T *yr = y + t * hidden;
    for (i64 j = 0; j < hidden; ++j)
      yr[j] = w[j] * T(xr[j] * r);
  }
}

template <class T>
void rmsnorm_backward(T *dx, Write mode, T *dw, Write dw_mode, const T *dy, const T *x, const T *w, const T *rstd,
                      i64 rows, i64 hidden) {
  std::vector<double> dw_sum(static_cast<std::size_t>(hidden), 0.0);
  for (i64 t = 0; t < rows; ++t) {
    const T *xr = x + t * hidden, *dyr = dy + t * hidden;
    const double r = double(rstd[t]);
    double dot = 0.0; // sum_j g_j * xhat_j
    for (i64 j = 0; j < hidden; ++j) {
      const double xhat = double(xr[j]) * r;
      dot += double(dyr[j]) * double(w[j]) * xhat;
      dw_sum[static_cast<std::size_t>(j)] += double(dyr[j]) * xhat;
    }
    if (!dx)
      continue;
    const double mean = dot / double(hidden);
    T *dxr = dx + t * hidden;
    for (i64 j = 0; j < hidden; ++j) {
      const double v = r * (double(dyr[j]) * double(w[j]) - double(xr[j]) * r * mean);
      dxr[j] = mode == Write::Accumulate ? T(double(dxr[j]) + v) : T(v);
    }
  }
  for (i64 j = 0; j < hidden; ++j)
    dw[j] = dw_mode == Write::Accumulate ? T(double(dw[j]) + dw_sum[static_cast<std::size_t>(j)])
                                         : T(dw_sum[static_cast<std::size_t>(j)]);
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template void rmsnorm_forward<T>(T *, T *, const T *, const T *, i64, i64, double);                                  \
  template void rmsnorm_backward<T>(T *, Write, T *, Write, const T *, const T *, const T *, const T *, i64, i64);
ATP_INSTANTIATE(float)
ATP_INSTANTIATE(double)
#undef ATP_INSTANTIATE

} // namespace atp::cpu
