/* kernels_cuda_norm.cu - RMSNorm forward and backward, on the GPU (kernels.h).

   As the CPU backend: rstd = 1 / sqrt(mean(x^2) + eps) with the sum of squares in double, y = w * (x * rstd)
   in float. Backward, with xhat = x * rstd and g = dy * w: dx = rstd * (g - xhat * mean(g * xhat)), the
   row's dot in double; one block per row, its sums through block_sum's fixed tree. dw's column sums go through
   column_sums_add (fixed row chunks, then the chunks in order, in double; no atomics: the same bits every run). */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_reduce.cuh"

namespace atp::kcuda {

namespace {

unsigned row_grid(i64 rows) { return unsigned(rows < 65535 * 4 ? rows : 65535 * 4); }

__global__ void rmsnorm_forward_kernel(float *y, float *rstd, const float *x, const float *w, i64 rows, i64 hidden,
                                       double eps) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const float *xr = x + t * hidden;
    double ss = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      ss += double(xr[j]) * double(xr[j]);
    ss = block_sum(ss);
    const float r = float(1.0 / sqrt(ss / double(hidden) + eps));
    if (threadIdx.x == 0)
      rstd[t] = r;
    float *yr = y + t * hidden; // y may equal x: each element is read before its own write
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      yr[j] = w[j] * (xr[j] * r);
  }
}

__global__ void rmsnorm_dx_kernel(float *dx, bool accumulate, const float *dy, const float *x, const float *w,
                                  const float *rstd, i64 rows, i64 hidden) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const float *xr = x + t * hidden, *dyr = dy + t * hidden;
    const double r = double(rstd[t]);
    double dot = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      dot += double(dyr[j]) * double(w[j]) * (double(xr[j]) * r);
    const double mean = block_sum(dot) / double(hidden);
    float *dxr = dx + t * hidden;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x) {
      const double v = r * (double(dyr[j]) * double(w[j]) - double(xr[j]) * r * mean);
      dxr[j] = accumulate ? float(double(dxr[j]) + v) : float(v);
    }
  }
}

/// dy * xhat of one element, for dw's column sums.
struct DwTerm {
  const float *dy, *x, *rstd;
  i64 hidden;
  __device__ double operator()(i64 t, i64 j) const {
    return double(dy[t * hidden + j]) * (double(x[t * hidden + j]) * double(rstd[t]));
  }
};

} // namespace

Status rmsnorm_forward(cudaStream_t st, float *y, float *rstd, const float *x, const float *w, i64 rows, i64 hidden,
                       double eps) {
  rmsnorm_forward_kernel<<<row_grid(rows), kBlock, 0, st>>>(y, rstd, x, w, rows, hidden, eps);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

Status rmsnorm_backward(cudaStream_t st, float *dx, Write mode, float *dw, const float *dy, const float *x,
                        const float *w, const float *rstd, i64 rows, i64 hidden) {
  if (dx) {
    rmsnorm_dx_kernel<<<row_grid(rows), kBlock, 0, st>>>(dx, mode == Write::Accumulate, dy, x, w, rstd, rows, hidden);
    ATP_CUDA_TRY(cudaGetLastError());
  }
  return column_sums_add(st, dw, rows, hidden, DwTerm{dy, x, rstd, hidden});
}

} // namespace atp::kcuda
