/* kernels_cuda_norm.cu - RMSNorm forward and backward, on the GPU (kernels.h).

   As the CPU backend: rstd = 1 / sqrt(mean(x^2) + eps) with the sum of squares in double, y = w * (x * rstd)
   in float. Backward, with xhat = x * rstd and g = dy * w: dx = rstd * (g - xhat * mean(g * xhat)), the
   row's dot in double; one block per row, its sums through block_sum's fixed tree. dw's column sums go through
   column_sums_add (fixed row chunks, then the chunks in order, in double; no atomics: the same bits every run).
   BF16: the same arithmetic on widened elements, each output rounded once to bf16; rstd stays float. Rows of
   up to 8192 bf16 (4096 floats) with aligned pointers go through the vectorized kernels: 16-byte loads, the
   row read once into registers and kept there between its sum and its output. */
#include "atp/check_cuda.h"
#include "kernels_cuda.h"
#include "kernels_cuda_elem.cuh"
#include "kernels_cuda_reduce.cuh"

#include <type_traits>

namespace atp::kcuda {

namespace {

unsigned row_grid(i64 rows) { return unsigned(rows < 65535 * 4 ? rows : 65535 * 4); }

template <class T>
__global__ void rmsnorm_forward_kernel(T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const T *xr = x + t * hidden;
    double ss = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      ss += double(to_f32(xr[j])) * double(to_f32(xr[j]));
    ss = block_sum(ss);
    const float r = float(1.0 / sqrt(ss / double(hidden) + eps));
    if (threadIdx.x == 0)
      rstd[t] = r;
    T *yr = y + t * hidden; // y may equal x: each element is read before its own write
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      yr[j] = round_to<T>(to_f32(w[j]) * (to_f32(xr[j]) * r));
  }
}

template <class T>
__global__ void rmsnorm_dx_kernel(T *dx, bool accumulate, const T *dy, const T *x, const T *w, const float *rstd,
                                  i64 rows, i64 hidden) {
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const T *xr = x + t * hidden, *dyr = dy + t * hidden;
    const double r = double(rstd[t]);
    double dot = 0.0;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x)
      dot += double(to_f32(dyr[j])) * double(to_f32(w[j])) * (double(to_f32(xr[j])) * r);
    const double mean = block_sum(dot) / double(hidden);
    T *dxr = dx + t * hidden;
    for (i64 j = threadIdx.x; j < hidden; j += blockDim.x) {
      const double v = r * (double(to_f32(dyr[j])) * double(to_f32(w[j])) - double(to_f32(xr[j])) * r * mean);
      dxr[j] = accumulate ? round_to<T>(double(to_f32(dxr[j])) + v) : round_to<T>(v);
    }
  }
}

/// Vectors of a row one thread holds in registers in the vectorized kernels: rows up to kMaxVecs x kBlock x
/// (16 / sizeof(T)) elements (8192 bf16, 4096 floats) are read from memory once.
constexpr int kMaxVecs = 4;

/// The forward with 16-byte loads, each thread keeping its share of the row in registers between the sum of
/// squares and the output.
template <class T>
__global__ void rmsnorm_forward_vec_kernel(T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden,
                                           double eps) {
  constexpr int kN = Vec<T>::kN;
  const i64 vecs = hidden / kN;
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    Vec<T> xv[kMaxVecs];
    double ss = 0.0;
#pragma unroll
    for (int k = 0; k < kMaxVecs; ++k) {
      const i64 j = threadIdx.x + i64(k) * blockDim.x;
      if (j < vecs) {
        xv[k] = load16(x + t * hidden + j * kN);
#pragma unroll
        for (int e = 0; e < kN; ++e)
          ss += double(to_f32(xv[k].v[e])) * double(to_f32(xv[k].v[e]));
      }
    }
    ss = block_sum(ss);
    const float r = float(1.0 / sqrt(ss / double(hidden) + eps));
    if (threadIdx.x == 0)
      rstd[t] = r;
#pragma unroll
    for (int k = 0; k < kMaxVecs; ++k) {
      const i64 j = threadIdx.x + i64(k) * blockDim.x;
      if (j < vecs) {
        const Vec<T> wv = load16(w + j * kN);
        Vec<T> out;
#pragma unroll
        for (int e = 0; e < kN; ++e)
          out.v[e] = round_to<T>(to_f32(wv.v[e]) * (to_f32(xv[k].v[e]) * r));
        store16(y + t * hidden + j * kN, out);
      }
    }
  }
}

/// dx with 16-byte loads, dy and x kept in registers between the row's dot and the output.
template <class T>
__global__ void rmsnorm_dx_vec_kernel(T *dx, bool accumulate, const T *dy, const T *x, const T *w, const float *rstd,
                                      i64 rows, i64 hidden) {
  constexpr int kN = Vec<T>::kN;
  const i64 vecs = hidden / kN;
  for (i64 t = blockIdx.x; t < rows; t += gridDim.x) {
    const double r = double(rstd[t]);
    // x and g = dy * w in registers. The product of two bf16 is exact in float; float inputs keep it in double
    // (the scalar kernel's arithmetic).
    using G = std::conditional_t<std::is_same_v<T, float>, double, float>;
    Vec<T> xv[kMaxVecs];
    G g[kMaxVecs][Vec<T>::kN];
    double dot = 0.0;
#pragma unroll
    for (int k = 0; k < kMaxVecs; ++k) {
      const i64 j = threadIdx.x + i64(k) * blockDim.x;
      if (j < vecs) {
        xv[k] = load16(x + t * hidden + j * kN);
        const Vec<T> dyv = load16(dy + t * hidden + j * kN), wv = load16(w + j * kN);
#pragma unroll
        for (int e = 0; e < kN; ++e) {
          const double dyw = double(to_f32(dyv.v[e])) * double(to_f32(wv.v[e]));
          g[k][e] = G(dyw);
          dot += dyw * (double(to_f32(xv[k].v[e])) * r);
        }
      }
    }
    const double mean = block_sum(dot) / double(hidden);
#pragma unroll
    for (int k = 0; k < kMaxVecs; ++k) {
      const i64 j = threadIdx.x + i64(k) * blockDim.x;
      if (j < vecs) {
        T *dst = dx + t * hidden + j * kN;
        Vec<T> old;
        if (accumulate)
          old = load16(dst);
        Vec<T> out;
#pragma unroll
        for (int e = 0; e < kN; ++e) {
          const double v = r * (double(g[k][e]) - double(to_f32(xv[k].v[e])) * r * mean);
          out.v[e] = accumulate ? round_to<T>(double(to_f32(old.v[e])) + v) : round_to<T>(v);
        }
        store16(dst, out);
      }
    }
  }
}

/// dy * xhat of one element, for dw's column sums.
template <class T> struct DwTerm {
  const T *dy, *x;
  const float *rstd;
  i64 hidden;
  __device__ double operator()(i64 t, i64 j) const {
    return double(to_f32(dy[t * hidden + j])) * (double(to_f32(x[t * hidden + j])) * double(rstd[t]));
  }
};

} // namespace

/// Rows short enough to stay in registers, every pointer 16-byte aligned.
template <class T> bool row_in_registers(std::initializer_list<const void *> ptrs, i64 hidden) {
  return vectorizable<T>(ptrs, {hidden}) && hidden / Vec<T>::kN <= i64(kMaxVecs) * kBlock;
}

template <class T>
Status rmsnorm_forward(cudaStream_t st, T *y, float *rstd, const T *x, const T *w, i64 rows, i64 hidden, double eps) {
  if (row_in_registers<T>({y, x, w}, hidden)) {
    rmsnorm_forward_vec_kernel<<<row_grid(rows), kBlock, 0, st>>>(y, rstd, x, w, rows, hidden, eps);
    ATP_CUDA_TRY(cudaGetLastError());
    return {};
  }
  rmsnorm_forward_kernel<<<row_grid(rows), kBlock, 0, st>>>(y, rstd, x, w, rows, hidden, eps);
  ATP_CUDA_TRY(cudaGetLastError());
  return {};
}

template <class T>
Status rmsnorm_backward(cudaStream_t st, T *dx, Write mode, T *dw, const T *dy, const T *x, const T *w,
                        const float *rstd, i64 rows, i64 hidden) {
  if (dx && row_in_registers<T>({dx, dy, x, w}, hidden)) {
    rmsnorm_dx_vec_kernel<<<row_grid(rows), kBlock, 0, st>>>(dx, mode == Write::Accumulate, dy, x, w, rstd, rows,
                                                             hidden);
    ATP_CUDA_TRY(cudaGetLastError());
  } else if (dx) {
    rmsnorm_dx_kernel<<<row_grid(rows), kBlock, 0, st>>>(dx, mode == Write::Accumulate, dy, x, w, rstd, rows, hidden);
    ATP_CUDA_TRY(cudaGetLastError());
  }
  return column_sums_add(st, dw, rows, hidden, DwTerm<T>{dy, x, rstd, hidden});
}

#define ATP_INSTANTIATE(T)                                                                                             \
  template Status rmsnorm_forward<T>(cudaStream_t, T *, float *, const T *, const T *, i64, i64, double);              \
  template Status rmsnorm_backward<T>(cudaStream_t, T *, Write, T *, const T *, const T *, const T *, const float *,   \
                                      i64, i64);
ATP_KCUDA_FOR_EACH_ELEMENT(ATP_INSTANTIATE)
#undef ATP_INSTANTIATE

} // namespace atp::kcuda
